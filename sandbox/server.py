"""HTTP face of the emulator: the Bot API at /bot{token}/{method}, files at /file/bot{token}/{path},
the control API (what tests and people use to act as Telegram users) under /control/, and the web
chat page (sandbox/web/) at / with its live feed at /control/events.

Handlers stay thin: they decode the request and call EmulatorState / BotApi.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from . import media
from .botapi import BotApi, read_multipart
from .errors import ControlError
from .state import BOT_USER_ID, EmulatorState
from .webhook import WebhookDeliverer

if TYPE_CHECKING:
    from .client import EmulatorClient

DEFAULT_TOKEN = f"{BOT_USER_ID}:AAsandbox-token-for-tests"
MAX_BODY = 64 * 1024 * 1024  # above the 50 MB Bot API upload limit, so that limit answers, not aiohttp

STATE_KEY = web.AppKey("state", EmulatorState)
API_KEY = web.AppKey("api", BotApi)
DELIVERER_KEY = web.AppKey("deliverer", WebhookDeliverer)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ResetHook = Callable[[], Awaitable[None] | None]
WEB_DIR = Path(__file__).with_name("web")
WEB_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
EVENTS_HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle live feed
EVENTS_COALESCE = 0.03  # a burst of changes (a reply and its edit) becomes one event


@dataclass
class Hooks:
    """What the emulator's owner plugs in: `on_reset` runs after POST /control/demo_reset cleared the chats
    (the bot's demo data lives with the owner; the emulator cannot restore it)."""

    on_reset: ResetHook | None = None


HOOKS_KEY = web.AppKey("hooks", Hooks)


@dataclass(frozen=True)
class PageOptions:
    """What the web page takes from the emulator's owner: `timezone`, the IANA zone its times are shown in
    (the platform's, e.g. Asia/Shanghai); None shows them in the browser's own zone."""

    timezone: str | None = None


PAGE_KEY = web.AppKey("page", PageOptions)


def check_timezone(name: str | None) -> str | None:
    """The zone name when the system knows it: a typo fails at start, not silently in every browser."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


# ---- request decoding ------------------------------------------------------------------------

async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """Query + body parameters in any encoding Bot API clients use, and multipart file parts."""
    raw: dict[str, Any] = dict(request.query)
    uploads: dict[str, Any] = {}
    if request.method != "POST" or not request.body_exists:
        return raw, uploads
    ctype = request.content_type
    if ctype == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("JSON body must be an object")
        raw.update(body)
    elif ctype.startswith("multipart/"):
        fields, uploads = await read_multipart(await request.multipart())
        raw.update(fields)
    else:
        form = await request.post()
        raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    return raw, uploads


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return dict(request.query)
    try:
        body = await request.json()
    except ValueError as exc:
        raise ControlError(400, f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ControlError(400, "JSON body must be an object")
    return body


def _int(source: Any, name: str, default: int | None = None) -> int:
    value = source.get(name)
    if value is None or value == "":
        if default is None:
            raise ControlError(400, f"{name} is required")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"{name} must be an integer") from exc


def _float(source: Any, name: str, default: float) -> float:
    try:
        return float(source.get(name, default))
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"{name} must be a number") from exc


def _opt_str(source: Any, name: str) -> str | None:
    value = source.get(name)
    return None if value is None or value == "" else str(value)


def _opt_int(source: Any, name: str) -> int | None:
    value = source.get(name)
    return None if value is None or value == "" else _int(source, name)


def _where(source: Any) -> dict[str, int | None]:
    """The optional chat_id (a group; default the user's private chat) and message_thread_id of a user act."""
    return {"chat_id": _opt_int(source, "chat_id"), "message_thread_id": _opt_int(source, "message_thread_id")}


def _uid(rec: Any) -> int | None:
    """The update the bot gets, or None when it gets none (a group message its privacy mode hides)."""
    return None if rec is None else int(rec.update_id)


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


@web.middleware
async def _control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        return _ok({"error": exc.message}, status=exc.status)


# ---- Bot API -----------------------------------------------------------------------------------

async def bot_api(request: web.Request) -> web.Response:
    api = request.app[API_KEY]
    try:
        raw, uploads = await read_params(request)
    except ValueError as exc:
        return _ok({"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}, status=400)
    status, body = await api.call(request.match_info["token"], request.match_info["method"], raw, uploads)
    return _ok(body, status=status)


async def file_download(request: web.Request) -> web.Response:
    f = request.app[STATE_KEY].files_by_path.get(request.match_info["path"])
    if f is None:
        return _ok({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
    return web.Response(body=f.content(), content_type="application/octet-stream")


# ---- control API: acting as users --------------------------------------------------------------

async def c_users(request: web.Request) -> web.Response:
    body = await _json_body(request)
    state = request.app[STATE_KEY]
    user = state.add_user(_int(body, "user_id"), str(body.get("first_name") or f"User{body.get('user_id')}"),
                          _opt_str(body, "last_name"), _opt_str(body, "username"), _opt_str(body, "language_code"),
                          started=bool(body.get("started", True)))
    return _ok({"user": user.to_api(), "chat": state.chat_to_api(user.id), "started": user.started})


async def c_block(request: web.Request) -> web.Response:
    body = await _json_body(request)
    user_id, blocked = _int(body, "user_id"), bool(body.get("blocked", True))
    rec = request.app[STATE_KEY].set_blocked(user_id, blocked, quiet=bool(body.get("quiet", False)))
    return _ok({"user_id": user_id, "blocked": blocked, "update_id": _uid(rec)})


def _sent(rec: Any, msg: Any) -> web.Response:
    return _ok({"update_id": _uid(rec), "message_id": msg.message_id, "chat_id": msg.chat_id,
                "message_thread_id": msg.message_thread_id, "is_topic_message": msg.is_topic_message})


async def c_send_text(request: web.Request) -> web.Response:
    body = await _json_body(request)
    rec, msg = request.app[STATE_KEY].user_send_text(
        _int(body, "user_id"), str(body.get("text") or ""), _opt_int(body, "reply_to_message_id"), **_where(body))
    return _sent(rec, msg)


async def c_press(request: web.Request) -> web.Response:
    body = await _json_body(request)
    data = body.get("data")
    rec, cq = request.app[STATE_KEY].user_press(
        _int(body, "user_id"), _int(body, "message_id"), None if data is None else str(data),
        _opt_str(body, "button_text"), _opt_int(body, "chat_id"))
    return _ok({"update_id": rec.update_id, "callback_query_id": cq.id, "data": cq.data})


async def _upload_form(request: web.Request) -> tuple[dict[str, Any], Any]:
    if not request.content_type.startswith("multipart/"):
        raise ControlError(400, "send multipart/form-data with user_id and a file part named 'file'")
    fields, uploads = await read_multipart(await request.multipart())
    upload = uploads.get("file")
    if upload is None:
        raise ControlError(400, "missing file part 'file'")
    return fields, upload


def _file_answer(state: EmulatorState, rec: Any, msg: Any) -> web.Response:
    f = state.files.get(msg.file_id)
    return _ok({"update_id": _uid(rec), "message_id": msg.message_id, "chat_id": msg.chat_id,
                "message_thread_id": msg.message_thread_id, "is_topic_message": msg.is_topic_message,
                "file_id": msg.file_id, "file_unique_id": f.file_unique_id if f else None})


async def c_send_photo(request: web.Request) -> web.Response:
    fields, upload = await _upload_form(request)
    state = request.app[STATE_KEY]
    # Decoding and thumbnailing take milliseconds; in the loop they would stall every other chat.
    facts = await asyncio.to_thread(media.photo_facts, upload.data)
    rec, msg = state.user_send_photo(_int(fields, "user_id"), upload.data, _opt_str(fields, "caption"), facts,
                                     **_where(fields))
    return _file_answer(state, rec, msg)


async def c_send_document(request: web.Request) -> web.Response:
    fields, upload = await _upload_form(request)
    state = request.app[STATE_KEY]
    filename = _opt_str(fields, "filename") or upload.filename
    # The claimed mime type is kept verbatim: lying senders are part of what a bot must survive.
    mime = _opt_str(fields, "mime_type") or upload.content_type
    rec, msg = state.user_send_document(_int(fields, "user_id"), upload.data, filename, mime,
                                        _opt_str(fields, "caption"), **_where(fields))
    return _file_answer(state, rec, msg)


async def c_send_video(request: web.Request) -> web.Response:
    fields, upload = await _upload_form(request)
    state = request.app[STATE_KEY]
    filename = _opt_str(fields, "filename") or upload.filename or "video.mp4"
    mime = _opt_str(fields, "mime_type") or media.guess_mime(filename, upload.content_type)
    rec, msg = state.user_send_video(_int(fields, "user_id"), upload.data, filename, mime,
                                     _opt_str(fields, "caption"), duration=_int(fields, "duration", 0),
                                     width=_int(fields, "width", 0), height=_int(fields, "height", 0),
                                     **_where(fields))
    return _file_answer(state, rec, msg)


async def c_send_sticker(request: web.Request) -> web.Response:
    body = await _json_body(request)
    state = request.app[STATE_KEY]
    rec, msg = state.user_send_sticker(_int(body, "user_id"), str(body.get("emoji") or "\U0001f44d"),
                                       **_where(body))
    return _file_answer(state, rec, msg)


async def c_send_voice(request: web.Request) -> web.Response:
    body = await _json_body(request)
    state = request.app[STATE_KEY]
    rec, msg = state.user_send_voice(_int(body, "user_id"), _int(body, "duration", 3), **_where(body))
    return _file_answer(state, rec, msg)


async def c_send_location(request: web.Request) -> web.Response:
    body = await _json_body(request)
    rec, msg = request.app[STATE_KEY].user_send_location(
        _int(body, "user_id"), _float(body, "latitude", 31.2304), _float(body, "longitude", 121.4737),
        **_where(body))
    return _sent(rec, msg)


async def c_send_file_ref(request: web.Request) -> web.Response:
    body = await _json_body(request)
    state = request.app[STATE_KEY]
    rec, msg = state.user_send_file_ref(_int(body, "user_id"), str(body.get("kind") or "document"),
                                        _int(body, "file_size"), _opt_str(body, "mime_type"),
                                        _opt_str(body, "filename"), _int(body, "duration", 0))
    return _file_answer(state, rec, msg)


async def c_edit_text(request: web.Request) -> web.Response:
    body = await _json_body(request)
    rec, msg = request.app[STATE_KEY].user_edit_text(_int(body, "user_id"), _int(body, "message_id"),
                                                     str(body.get("text") or ""), _opt_int(body, "chat_id"))
    return _sent(rec, msg)


async def c_redeliver(request: web.Request) -> web.Response:
    body = await _json_body(request)
    rec = request.app[STATE_KEY].redeliver(_int(body, "update_id"))
    return _ok({"update_id": rec.update_id})


async def c_raw_update(request: web.Request) -> web.Response:
    body = await _json_body(request)
    update = body.get("update")
    if not isinstance(update, dict) or not update:
        raise ControlError(400, "update must be a non-empty object")
    rec = request.app[STATE_KEY].queue_raw(update)
    return _ok({"update_id": rec.update_id})


# ---- control API: observing the bot ------------------------------------------------------------

def _thread_filter(request: web.Request, chat_id: int) -> Callable[[Any], bool]:
    """?message_thread_id=N keeps one topic (1: General) or reply thread; without it, every message."""
    state = request.app[STATE_KEY]
    thread = _opt_int(request.query, "message_thread_id")
    chat = state.chats.get(chat_id)
    if thread is None or chat is None:
        return lambda m: True
    return lambda m: state.in_thread(chat, m, thread)


async def c_messages(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    chat_id = _int(request.query, "chat_id")
    after = _int(request.query, "after", 0)
    timeout = _float(request.query, "timeout", 0.0)
    in_thread = _thread_filter(request, chat_id)

    def found() -> list[Any]:
        return [m for m in state.chat_messages(chat_id) if m.outgoing and m.message_id > after and in_thread(m)]

    if timeout > 0:  # long poll for the first new bot message
        await state.changed.wait_until(lambda: bool(found()) or request.app[API_KEY].closing, min(timeout, 60))
    return _ok([state.message_to_control(m) for m in found()])


async def c_chat(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    chat_id = _int(request.query, "chat_id")
    if chat_id not in state.chats:
        raise ControlError(404, f"unknown chat {chat_id}")
    in_thread = _thread_filter(request, chat_id)
    found = [m for m in state.chat_messages(chat_id) if in_thread(m)]
    last = _opt_int(request.query, "last")  # only the latest N, as a chat window shows
    if last is not None:
        found = found[-last:] if last > 0 else []
    return _ok([state.message_to_control(m) for m in found])


async def c_callback_answers(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    wanted = request.query.get("callback_query_id")
    out = []
    for cq in state.callback_queries.values():
        if wanted is None or cq.id == wanted:
            out.append({"callback_query_id": cq.id, "user_id": cq.user_id, "chat_id": cq.chat_id,
                        "message_id": cq.message_id,
                        "data": cq.data, "answered": cq.answer is not None, "answer": cq.answer})
    return _ok(out)


def _update_record(request: web.Request) -> Any:
    uid = _int(request.query, "update_id")
    rec = request.app[STATE_KEY].updates.get(uid)
    if rec is None:
        raise ControlError(404, f"unknown update {uid}")
    return rec


async def c_update(request: web.Request) -> web.Response:
    rec = _update_record(request)
    return _ok({**rec.to_control(), "update": rec.payload})


async def c_updates(request: web.Request) -> web.Response:
    wanted = request.query.get("status")
    recs = request.app[STATE_KEY].updates.values()
    return _ok([r.to_control() for r in recs if wanted is None or r.status == wanted])


async def c_wait(request: web.Request) -> web.Response:
    rec = _update_record(request)
    timeout = min(_float(request.query, "timeout", 10.0), 120.0)
    api = request.app[API_KEY]
    await request.app[STATE_KEY].changed.wait_until(lambda: rec.status == "confirmed" or api.closing, timeout)
    return _ok(rec.to_control(), status=200 if rec.status == "confirmed" else 408)


async def c_calls(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _ok(state.calls_to_control(request.query.get("method"), _int(request.query, "after", 0)))


async def c_commands(request: web.Request) -> web.Response:
    return _ok(request.app[STATE_KEY].commands_to_control())


async def c_chat_actions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    chat = request.query.get("chat_id")
    return _ok([a for a in state.chat_actions if chat is None or str(a["chat_id"]) == chat])


async def c_file(request: web.Request) -> web.Response:
    f = request.app[STATE_KEY].files.get(request.query.get("file_id", ""))
    if f is None:
        raise ControlError(404, "unknown file_id")
    return web.Response(body=f.content(), content_type=f.mime_type or "application/octet-stream")


# ---- control API: groups, members and forum topics ---------------------------------------------

async def c_groups(request: web.Request) -> web.Response:
    body = await _json_body(request)
    members = body.get("members") or []
    if not isinstance(members, list) or not all(isinstance(m, dict) and "user_id" in m for m in members):
        raise ControlError(400, "members must be a list of {user_id, status, rights?, custom_title?}")
    bot_rights = body.get("bot_rights")
    if bot_rights is not None and not isinstance(bot_rights, dict):
        raise ControlError(400, "bot_rights must be an object of administrator rights")
    state = request.app[STATE_KEY]
    chat = state.create_group(str(body.get("title") or ""), _opt_int(body, "chat_id"),
                              is_forum=bool(body.get("is_forum", True)), username=_opt_str(body, "username"),
                              creator_id=_opt_int(body, "creator_id"),
                              bot_status=str(body.get("bot_status") or "administrator"), bot_rights=bot_rights,
                              members=members)
    return _ok({"chat": chat.to_api(), "members": [state.member_to_api(chat, uid) for uid in chat.members]})


async def c_members(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.method == "GET":
        chat = state.require_group(_int(request.query, "chat_id"))
        return _ok([state.member_to_api(chat, uid) for uid in chat.members])
    body = await _json_body(request)
    rights = body.get("rights")
    if rights is not None and not isinstance(rights, dict):
        raise ControlError(400, "rights must be an object of administrator rights")
    member, recs = state.set_member(_int(body, "chat_id"), _int(body, "user_id"), str(body.get("status") or ""),
                                    rights, _opt_str(body, "custom_title"), _opt_int(body, "by_user_id"),
                                    bool(body.get("quiet", False)))
    chat = state.require_group(_int(body, "chat_id"))
    return _ok({"member": state.member_to_api(chat, member.user_id), "update_ids": [r.update_id for r in recs]})


async def c_create_topic(request: web.Request) -> web.Response:
    body = await _json_body(request)
    topic, root, rec = request.app[STATE_KEY].user_create_topic(
        _int(body, "chat_id"), _int(body, "user_id"), str(body.get("name") or ""), _opt_int(body, "icon_color"),
        _opt_str(body, "icon_custom_emoji_id"))
    return _ok({"update_id": _uid(rec), "message_thread_id": topic.message_thread_id,
                "message_id": root.message_id, "topic": topic.to_control()})


def _topic_action(action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        body = await _json_body(request)
        icon = body.get("icon_custom_emoji_id")
        rec = request.app[STATE_KEY].user_topic_action(
            _int(body, "chat_id"), _int(body, "user_id"), _int(body, "message_thread_id"), action,
            _opt_str(body, "name"), None if icon is None else str(icon))
        return _ok({"update_id": _uid(rec), action: True})

    return handler


async def c_topics(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    chat = state.require_group(_int(request.query, "chat_id"))
    with_deleted = request.query.get("include_deleted", "").lower() in ("1", "true", "yes")
    return _ok([t.to_control() for t in chat.topics.values() if with_deleted or not t.deleted])


async def c_bot(request: web.Request) -> web.Response:
    """The bot's BotFather settings that change what it meets: privacy mode in groups."""
    bot = request.app[STATE_KEY].bot
    if request.method == "POST":
        body = await _json_body(request)
        if "can_read_all_group_messages" in body:
            bot.can_read_all_group_messages = bool(body["can_read_all_group_messages"])
    return _ok(bot.get_me())


# ---- control API: the world ------------------------------------------------------------------

async def c_faults_add(request: web.Request) -> web.Response:
    body = await _json_body(request)
    method = _opt_str(body, "method")
    if method is None:
        raise ControlError(400, "method is required (a Bot API method name or '*')")
    code = _int(body, "error_code", 0)
    if code not in (0, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504):
        raise ControlError(400, f"unsupported error_code {code}")
    retry = body.get("retry_after")
    rule = request.app[STATE_KEY].add_fault(
        method, code, _int(body, "count", 1), body.get("chat_id"), int(retry) if retry is not None else None,
        _opt_str(body, "description"), _float(body, "delay", 0.0), bool(body.get("answer_late", False)))
    return _ok({"fault_id": rule.id})


async def c_faults_list(request: web.Request) -> web.Response:
    return _ok(request.app[STATE_KEY].summary()["faults"])


async def c_faults_clear(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return _ok({"cleared": True})


async def c_limits(request: web.Request) -> web.Response:
    limits = request.app[STATE_KEY].limits
    if request.method == "POST":
        body = await _json_body(request)
        limits.enabled = bool(body.get("enabled", True))
        if not limits.enabled:
            limits.forget()
        limits.per_chat_per_s = _int(body, "per_chat_per_s", limits.per_chat_per_s)
        limits.per_group_per_min = _int(body, "per_group_per_min", limits.per_group_per_min)
        limits.global_per_s = _int(body, "global_per_s", limits.global_per_s)
        if body.get("reset_counters"):
            limits.reset_counters()
    return _ok(limits.to_dict())


async def c_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return _ok({"reset": True})


async def c_demo_reset(request: web.Request) -> web.Response:
    """The web page's reset button: clear every chat (unless clear_chats is false), then await the owner's
    on_reset hook, which restores what only it knows (the bot's demo data)."""
    body = await _json_body(request)
    state = request.app[STATE_KEY]
    if body.get("clear_chats", True) not in (False, "false", "0", 0):
        state.clear_chats()
    hook = request.app[HOOKS_KEY].on_reset
    if hook is not None:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # said to the page, which shows it
            raise ControlError(500, f"the reset hook failed: {exc!r}") from exc
        state.touch()
    return _ok({"reset": True, "hook": hook is not None, "revision": state.revision})


async def c_language(request: web.Request) -> web.Response:
    """The user switches their Telegram app's language: later updates carry the new language_code."""
    body = await _json_body(request)
    user = request.app[STATE_KEY].set_language(_int(body, "user_id"), _opt_str(body, "language_code"))
    return _ok({"user": user.to_api()})


async def c_directory(request: web.Request) -> web.Response:
    return _ok({**request.app[STATE_KEY].directory(), "timezone": request.app[PAGE_KEY].timezone})


async def c_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `event: changed` with the state's revision whenever something people see changes
    (a message, an edit, a deletion, a topic, a member, a user, a reset); a comment every 15 s otherwise."""
    state = request.app[STATE_KEY]
    api = request.app[API_KEY]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    sent: int | None = None
    last_write = time.monotonic()
    try:
        await resp.write(b"retry: 1000\n\n")
        while not api.closing:
            if state.revision != sent:
                sent = state.revision
                await resp.write(f"event: changed\ndata: {json.dumps({'revision': sent})}\n\n".encode())
                last_write = time.monotonic()
                await asyncio.sleep(EVENTS_COALESCE)
                continue
            idle = time.monotonic() - last_write
            if idle >= EVENTS_HEARTBEAT:
                await resp.write(b": keep-alive\n\n")
                last_write, idle = time.monotonic(), 0.0
            await state.changed.wait(EVENTS_HEARTBEAT - idle)
    except ConnectionResetError:  # the page went away
        pass
    return resp


# ---- the web page ------------------------------------------------------------------------------

async def web_asset(request: web.Request) -> web.Response:
    """sandbox/web/index.html at / and /web/, its scripts and styles at /web/{name}; nothing else."""
    name = request.match_info.get("name") or "index.html"
    path = WEB_DIR / name
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in WEB_TYPES or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=WEB_TYPES[path.suffix], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def c_state(request: web.Request) -> web.Response:
    return _ok(request.app[STATE_KEY].summary())


async def c_ping(request: web.Request) -> web.Response:
    return _ok({"ok": True, "bot": request.app[STATE_KEY].bot.get_me()})


# ---- application -------------------------------------------------------------------------------

def create_app(state: EmulatorState | None = None, *, webhook_timeout: float = 30.0,
               on_reset: ResetHook | None = None, timezone: str | None = None) -> web.Application:
    state = state or EmulatorState()
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_control_errors])
    api = BotApi(state)
    app[STATE_KEY] = state
    app[API_KEY] = api
    app[HOOKS_KEY] = Hooks(on_reset)
    app[PAGE_KEY] = PageOptions(check_timezone(timezone))
    app[DELIVERER_KEY] = WebhookDeliverer(state, api, request_timeout=webhook_timeout)

    async def on_startup(app: web.Application) -> None:
        state.changed.bind(asyncio.get_running_loop())
        await app[DELIVERER_KEY].start()

    async def on_shutdown(app: web.Application) -> None:
        api.closing = True  # ends long polls promptly
        state.changed.notify()

    async def on_cleanup(app: web.Application) -> None:
        await app[DELIVERER_KEY].stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)

    r = app.router
    r.add_route("*", "/bot{token}/{method}", bot_api)
    r.add_get("/file/bot{token}/{path:.+}", file_download)
    c = "/control/"
    for name, handler in (
        ("users", c_users), ("block", c_block), ("send_text", c_send_text), ("press", c_press),
        ("send_photo", c_send_photo), ("send_document", c_send_document), ("send_video", c_send_video),
        ("send_sticker", c_send_sticker),
        ("send_voice", c_send_voice), ("send_location", c_send_location), ("send_file_ref", c_send_file_ref),
        ("edit_text", c_edit_text), ("redeliver", c_redeliver), ("raw_update", c_raw_update),
        ("faults", c_faults_add), ("reset", c_reset), ("groups", c_groups), ("members", c_members),
        ("create_topic", c_create_topic), ("edit_topic", _topic_action("edit")),
        ("close_topic", _topic_action("close")), ("reopen_topic", _topic_action("reopen")),
        ("delete_topic", _topic_action("delete")), ("bot", c_bot), ("demo_reset", c_demo_reset),
        ("language", c_language),
    ):
        r.add_post(c + name, handler)
    for name, handler in (
        ("messages", c_messages), ("chat", c_chat), ("callback_answers", c_callback_answers),
        ("update", c_update), ("updates", c_updates), ("wait", c_wait), ("calls", c_calls),
        ("commands", c_commands), ("chat_actions", c_chat_actions), ("file", c_file), ("faults", c_faults_list),
        ("state", c_state), ("ping", c_ping), ("limits", c_limits), ("members", c_members), ("topics", c_topics),
        ("bot", c_bot), ("directory", c_directory), ("events", c_events),
    ):
        r.add_get(c + name, handler)
    r.add_post(c + "limits", c_limits)
    r.add_delete(c + "faults", c_faults_clear)
    r.add_get("/", web_asset)
    r.add_get("/web", _to_web)
    r.add_get("/web/", web_asset)
    r.add_get("/web/{name}", web_asset)
    return app


async def _to_web(request: web.Request) -> web.Response:
    raise web.HTTPFound("/web/")


class Emulator:
    """The emulator as a server: `async with Emulator() as emu:` or `start_in_thread()` for sync callers.

    Touch `emu.state` directly only from the emulator's own loop (async mode); from other threads,
    go through the control API (EmulatorClient). `timezone` (an IANA name) is the zone the web page shows
    times in; None: the browser's.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, state: EmulatorState | None = None,
                 token: str = DEFAULT_TOKEN, webhook_timeout: float = 30.0,
                 on_reset: ResetHook | None = None, timezone: str | None = None) -> None:
        self.host = host
        self.port = port
        self.state = state or EmulatorState()
        self.token = token
        self.app = create_app(self.state, webhook_timeout=webhook_timeout, on_reset=on_reset, timezone=timezone)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # ---- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What a bot library takes as its API server base, e.g. http://127.0.0.1:43123."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/control"

    @property
    def web_url(self) -> str:
        """The web chat page: a customer and the agents' forum group, side by side."""
        return f"{self.base_url}/"

    @property
    def on_reset(self) -> ResetHook | None:
        """Called (and awaited when it returns an awaitable) on the emulator's loop by the page's reset
        button, after every chat was cleared: restore the bot's demo data here. May be set after start."""
        return self.app[HOOKS_KEY].on_reset

    @on_reset.setter
    def on_reset(self, hook: ResetHook | None) -> None:
        self.app[HOOKS_KEY].on_reset = hook

    def api_url(self, token: str | None = None) -> str:
        """The per-bot API prefix: {base}/bot{token} (append /{method})."""
        return f"{self.base_url}/bot{token or self.token}"

    def file_url(self, token: str | None = None) -> str:
        return f"{self.base_url}/file/bot{token or self.token}"

    def client(self) -> EmulatorClient:
        from .client import EmulatorClient

        return EmulatorClient(self.base_url)

    # ---- async lifecycle -------------------------------------------------------------------

    async def start(self) -> Emulator:
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:  # e.g. the port is taken: leave nothing open behind
            await self.close()
            raise
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- background-thread lifecycle (for sync callers such as a CLI) ----------------------

    def start_in_thread(self, timeout: float = 10.0) -> Emulator:
        """Run the emulator on its own event loop in a daemon thread; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("emulator already running in a thread")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except Exception as exc:  # noqa: BLE001 - re-raised in the caller thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.close())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="sandbox-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("emulator did not start in time")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop an emulator started with start_in_thread()."""
        if self._thread is None or self._thread_loop is None:
            raise RuntimeError("not running in a thread; use `await emulator.close()`")
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._thread_loop = None

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
