"""The Bot API methods a bot calls, implemented on EmulatorState with Telegram's validation and errors."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from . import formatting, media
from .errors import (
    BLOCKED,
    CANT_INITIATE,
    DEFAULT_DESCRIPTIONS,
    NOT_MODIFIED,
    POLLING_CONFLICT,
    QUERY_TOO_OLD,
    WEBHOOK_CONFLICT,
    ApiError,
    bad_request,
    too_many_requests,
)
from .forum import GENERAL_TOPIC_ID, ThreadError, ThreadTarget
from .state import GETFILE_MAX_BYTES, Chat, EmulatorState, FaultRule, Message, StoredFile, WebhookConfig

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_UPLOAD = 50 * 1024 * 1024
MAX_POLL_TIMEOUT = 60
# Fields that arrive as JSON strings in form/multipart bodies and must be decoded.
JSON_FIELDS = frozenset({
    "reply_markup", "media", "commands", "scope", "reply_parameters", "entities", "caption_entities",
    "allowed_updates", "link_preview_options", "menu_button", "results", "message_ids", "reaction",
    "options", "explanation_entities", "question_entities", "rights",
})
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
    "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
SEND_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendsticker", "sendvoice", "sendvideo", "sendaudio",
    "sendanimation", "sendlocation", "sendmediagroup", "copymessage", "forwardmessage", "copymessages",
    "forwardmessages",
})
# Calls that count against Telegram's flood limits (/control/limits): sends and edits.
RATE_LIMITED_METHODS = SEND_METHODS | {"editmessagetext", "editmessagecaption", "editmessagereplymarkup"}
INLINE_BUTTON_ACTIONS = ("callback_data", "url", "web_app", "login_url", "switch_inline_query",
                         "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
                         "callback_game", "pay")


@dataclass
class Upload:
    """A file part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes

    def describe(self) -> dict[str, Any]:
        return {"upload": self.filename, "size": len(self.data), "content_type": self.content_type}


class Params:
    """Typed access to request parameters, whichever encoding the client used."""

    def __init__(self, raw: dict[str, Any], uploads: dict[str, Upload] | None = None, token: str = "") -> None:
        self.token = token
        self.uploads = uploads or {}
        self.raw: dict[str, Any] = {}
        for key, value in raw.items():
            if key in JSON_FIELDS and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise bad_request(f"can't parse {key} JSON object") from exc
            self.raw[key] = value

    def for_log(self) -> dict[str, Any]:
        logged = dict(self.raw)
        for name, up in self.uploads.items():
            logged.setdefault(name, up.describe())
        return logged

    def has(self, name: str) -> bool:
        return self.raw.get(name) not in (None, "")

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.raw.get(name)
        return default if value is None else str(value)

    def integer(self, name: str, default: int | None = None, required: bool = False) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return default
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid {name} specified") from exc

    def req_int(self, name: str) -> int:
        value = self.integer(name, required=True)
        assert value is not None
        return value

    def number(self, name: str) -> float:
        try:
            return float(self.raw[name])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_request(f"invalid {name} specified") from exc

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1", "yes")

    def obj(self, name: str) -> Any:
        return self.raw.get(name)

    def file(self, name: str) -> Upload | str | None:
        """A file parameter: an upload (direct or attach://name) or a file_id / URL string."""
        if name in self.uploads:
            return self.uploads[name]
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        return self.resolve_media(str(value))

    def resolve_media(self, value: str) -> Upload | str:
        if value.startswith("attach://"):
            up = self.uploads.get(value[len("attach://"):])
            if up is None:
                raise bad_request(f"file {value} not found in the request")
            return up
        return value


async def read_multipart(reader: aiohttp.MultipartReader | aiohttp.multipart.MultipartResponseWrapper) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Form fields and file parts of a multipart body (requests to us, or webhook answers)."""
    fields: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            continue  # nested multipart: not used by Bot API clients
        name = part.name or ""
        data = await part.read(decode=True)
        if part.filename is not None:
            ctype = part.headers.get("Content-Type", "application/octet-stream")
            uploads[name] = Upload(name, part.filename, ctype, bytes(data))
        else:
            fields[name] = bytes(data).decode("utf-8", errors="replace")
    return fields, uploads


Handler = Callable[[Params], Awaitable[Any]]


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request("can't parse inline keyboard button: Text must be non-empty")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= MAX_CALLBACK_DATA:
                        raise bad_request("BUTTON_DATA_INVALID")
                if not any(k in button for k in INLINE_BUTTON_ACTIONS):
                    raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the "
                                      "inline keyboard")
                url = button.get("url")
                if url is not None and not re.match(r"(https?|tg)://\S+$", str(url)):
                    raise bad_request("BUTTON_URL_INVALID")
    elif not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def inline_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    return markup if markup and "inline_keyboard" in markup else None


def fault_error(rule: FaultRule) -> ApiError:
    code = rule.error_code
    if code == 429:
        retry = rule.retry_after if rule.retry_after is not None else 3
        err = too_many_requests(retry)
        if rule.description:
            err.description = rule.description
        return err
    return ApiError(code, rule.description or DEFAULT_DESCRIPTIONS.get(code, "Bad Request"))


class BotApi:
    """Dispatches `{base}/bot{token}/{method}` calls; one instance per emulator."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.closing = False
        self._methods: dict[str, tuple[str, Handler]] = {}
        for name in (
            "getMe", "logOut", "close", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo",
            "sendMessage", "forwardMessage", "copyMessage", "sendPhoto", "sendDocument", "sendSticker",
            "sendVoice", "sendVideo", "sendAudio", "sendAnimation", "sendLocation", "sendMediaGroup",
            "sendChatAction", "editMessageText", "editMessageCaption", "editMessageReplyMarkup", "deleteMessage",
            "deleteMessages", "answerCallbackQuery", "getFile", "setMyCommands", "getMyCommands",
            "deleteMyCommands", "setMyDescription", "getMyDescription", "setMyShortDescription",
            "getMyShortDescription", "setMyName", "getMyName", "setChatMenuButton", "getChatMenuButton", "getChat",
            "copyMessages", "forwardMessages", "getChatMember", "getChatAdministrators", "getChatMemberCount",
            "leaveChat", "createForumTopic", "editForumTopic", "closeForumTopic", "reopenForumTopic",
            "deleteForumTopic", "unpinAllForumTopicMessages", "editGeneralForumTopic", "closeGeneralForumTopic",
            "reopenGeneralForumTopic", "hideGeneralForumTopic", "unhideGeneralForumTopic",
            "unpinAllGeneralForumTopicMessages", "getForumTopicIconStickers",
        ):
            self._methods[name.lower()] = (name, getattr(self, "_" + name))

    async def call(self, token: str, method: str, raw: dict[str, Any],
                   uploads: dict[str, Upload] | None = None) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call; returns (HTTP status, Telegram-shaped body). Every call is logged."""
        state = self.state
        state.tokens.add(token)
        entry = self._methods.get(method.lower())
        name = entry[0] if entry else method
        logged: dict[str, Any] = dict(raw)
        try:
            params = Params(raw, uploads, token)
            logged = params.for_log()
            if entry is None:
                raise ApiError(404, "Not Found")
            limited = name.lower() in RATE_LIMITED_METHODS
            rule = state.take_fault(name, params.raw.get("chat_id"))
            late = rule is not None and rule.answer_late
            if rule is not None and not late:
                if rule.delay:
                    await asyncio.sleep(rule.delay)
                if rule.error_code:
                    if rule.error_code == 429 and limited:
                        state.limits.injected_429 += 1
                    raise fault_error(rule)
            if limited:
                self._check_flood(params)
                state.limits.accepted += 1
            result = await entry[1](params)
            if late:
                assert rule is not None
                await asyncio.sleep(rule.delay)
                if rule.error_code:
                    raise fault_error(rule)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.error_code, exc.to_api()
        state.log_call(name, token, logged, status, body.get("description"))
        return status, body

    def _check_flood(self, p: Params) -> None:
        try:
            chat_id: int | None = int(p.raw["chat_id"])
        except (KeyError, TypeError, ValueError):
            chat_id = None
        now = time.time()
        wait = self.state.limits.check(chat_id, now)
        if wait is not None:
            self.state.limits.throttled += 1
            raise too_many_requests(wait)
        self.state.limits.record(chat_id, now)

    # ---- helpers -----------------------------------------------------------------------------

    def _chat_id(self, p: Params, name: str = "chat_id", sending: bool = False, write: bool | None = None) -> int:
        """The chat a call names. `sending`: a private chat must be open to the bot. `write` (default: as
        `sending`): in a group, the bot must still be in it, as for any change it makes there."""
        value = p.raw.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        try:
            chat_id = int(value)
        except (TypeError, ValueError):
            chat_id = self._by_username(str(value))  # @username resolves public chats only
        chat = self.state.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        user = self.state.users.get(chat_id)
        if sending and user is not None and user.blocked_bot:
            raise ApiError(403, BLOCKED)
        if sending and user is not None and not user.started:
            raise ApiError(403, CANT_INITIATE)
        if (sending if write is None else write) and chat.is_group:
            self._require_bot_in(chat)
        return chat_id

    def _by_username(self, value: str) -> int:
        wanted = value.removeprefix("@").lower()
        for chat in self.state.chats.values():
            if chat.is_group and chat.username and value.startswith("@") and chat.username.lower() == wanted:
                return chat.id
        raise bad_request("chat not found")

    def _require_bot_in(self, chat: Chat) -> None:
        status = chat.member(self.state.bot.id).status
        if status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        if status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat.type} chat")

    def _reply_to(self, p: Params, chat_id: int) -> int | None:
        params = p.obj("reply_parameters")
        allow = p.flag("allow_sending_without_reply")
        mid: int | None
        if isinstance(params, dict) and params.get("message_id") is not None:
            mid = int(params["message_id"])
            allow = allow or bool(params.get("allow_sending_without_reply"))
        else:
            mid = p.integer("reply_to_message_id")
        if mid is None:
            return None
        target = self.state.get_message(chat_id, mid)
        if target is None or target.deleted:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return mid

    def _text(self, p: Params, name: str, limit: int, entities_name: str) -> tuple[str, list[dict[str, Any]]]:
        raw = p.string(name) or ""
        entities = p.obj(entities_name)
        text, ents = formatting.render(raw, p.string("parse_mode"), entities if isinstance(entities, list) else None)
        if len(text) > limit:
            raise bad_request("message is too long" if name == "text" else "message caption is too long")
        return text, ents

    def _target(self, p: Params, chat_id: int, reply_to: int | None) -> ThreadTarget:
        """Where the bot's new message lands: Telegram's checks on message_thread_id in groups and forums.
        In a private chat message_thread_id is ignored."""
        chat = self.state.chats[chat_id]
        thread = p.integer("message_thread_id")
        try:
            return self.state.resolve_thread(chat, self.state.bot.id, thread, reply_to)
        except ThreadError as exc:
            if exc.reason == "reply_not_found":
                if self._allow_without_reply(p):
                    return self._target(p, chat_id, None)
                raise bad_request("message to be replied not found") from None
            raise thread_error(exc) from None

    def _allow_without_reply(self, p: Params) -> bool:
        params = p.obj("reply_parameters")
        return p.flag("allow_sending_without_reply") or (
            isinstance(params, dict) and bool(params.get("allow_sending_without_reply")))

    def _common_fields(self, p: Params, chat_id: int) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if p.flag("protect_content"):
            extra["has_protected_content"] = True
        markup = check_reply_markup(p.obj("reply_markup"))
        target = self._target(p, chat_id, self._reply_to(p, chat_id))
        return {
            "reply_markup": markup,
            "reply_to_message_id": target.reply_to_message_id,
            "message_thread_id": target.message_thread_id,
            "is_topic_message": target.is_topic_message,
            "extra": extra,
        }

    def _bot_message(self, chat_id: int, kind: str, **fields: Any) -> Message:
        return self.state.add_message(chat_id, self.state.bot.id, True, kind, **fields)

    def _existing_file(self, file_id: str, kind: str) -> StoredFile:
        if re.match(r"https?://", file_id):
            raise bad_request("failed to get HTTP URL content")
        f = self.state.files.get(file_id)
        if f is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if kind in ("photo", "sticker") and f.kind != kind:
            raise bad_request(f"can't use file of type {f.kind.capitalize()} as {kind.capitalize()}")
        return f

    def _media_value(self, kind: str, source: Upload | str, p: Params | None = None) -> tuple[Any, str]:
        """The Bot API attachment object for `kind` plus its main file_id, storing uploads."""
        state = self.state
        if isinstance(source, Upload):
            if len(source.data) > MAX_UPLOAD:
                raise ApiError(413, "Request Entity Too Large")
            if kind == "photo":
                if media.image_size(source.data) is None:
                    raise bad_request("IMAGE_PROCESS_FAILED")
                sizes = state.store_photo(source.data)
                return sizes, sizes[-1]["file_id"]
            mime = media.guess_mime(source.filename, source.content_type)
            dims = media.image_size(source.data) or (0, 0)
            f = state.store_file(source.data, kind, mime_type=mime,
                                 file_name=source.filename if kind in ("document", "audio", "video",
                                                                       "animation") else None,
                                 width=dims[0], height=dims[1])
        else:
            f = self._existing_file(source, kind)
            if kind == "photo":
                return [state.photo_size(f)], f.file_id
        duration = (p.integer("duration", 0) if p else 0) or 0
        if kind == "sticker":
            value: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "type": "regular",
                                     "width": f.width or 512, "height": f.height or 512, "is_animated": False,
                                     "is_video": False, "file_size": f.size}
        elif kind == "voice":
            value = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "duration": duration,
                     "mime_type": f.mime_type or "audio/ogg", "file_size": f.size}
        elif kind in ("video", "animation"):
            value = {**state.document_dict(f), "width": f.width, "height": f.height, "duration": duration}
        elif kind == "audio":
            value = {**state.document_dict(f), "duration": duration}
        else:
            value = state.document_dict(f)
        return value, f.file_id

    def _editable(self, p: Params) -> Message:
        if p.has("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # no inline mode in the sandbox
        chat_id = self._chat_id(p, write=True)
        msg = self.state.get_message(chat_id, p.req_int("message_id"))
        if msg is None or msg.deleted:
            raise bad_request("message to edit not found")
        if not msg.outgoing:
            raise bad_request("message can't be edited")
        return msg

    # ---- identity and updates ----------------------------------------------------------------

    async def _getMe(self, p: Params) -> Any:
        return self.state.bot.get_me()

    async def _logOut(self, p: Params) -> Any:
        return True

    async def _close(self, p: Params) -> Any:
        return True

    async def _getUpdates(self, p: Params) -> Any:
        state = self.state
        if state.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        limit = min(max(p.integer("limit", 100) or 100, 1), 100)
        timeout = min(max(p.integer("timeout", 0) or 0, 0), MAX_POLL_TIMEOUT)
        allowed = p.obj("allowed_updates")
        if isinstance(allowed, list):
            state.allowed_updates = [str(a) for a in allowed] or None
        state.apply_offset(p.integer("offset"))
        # A newer getUpdates ends this one with 409, exposing two bot instances polling at once.
        state.polling_generation += 1
        generation = state.polling_generation
        state.changed.notify()
        deadline = time.monotonic() + timeout
        while True:
            taken = state.take_updates(limit)
            if taken:
                return [rec.payload for rec in taken]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing:
                return []
            await state.changed.wait(remaining)
            if state.polling_generation != generation:
                raise ApiError(409, POLLING_CONFLICT)
            if state.webhook is not None:
                raise ApiError(409, WEBHOOK_CONFLICT)

    async def _setWebhook(self, p: Params) -> Any:
        url = p.string("url") or ""
        if not url:
            return await self._deleteWebhook(p)
        if not re.match(r"https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.string("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        max_conn = p.integer("max_connections", 40) or 40
        if not 1 <= max_conn <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = p.obj("allowed_updates")
        previous = self.state.webhook
        self.state.webhook = WebhookConfig(
            url=url, token=p.token, secret_token=secret or None, max_connections=max_conn,
            allowed_updates=[str(a) for a in allowed] if isinstance(allowed, list) else (
                previous.allowed_updates if previous else None),
        )
        if p.flag("drop_pending_updates"):
            self.state.drop_pending()
        self.state.changed.notify()
        return True

    async def _deleteWebhook(self, p: Params) -> Any:
        self.state.webhook = None
        if p.flag("drop_pending_updates"):
            self.state.drop_pending()
        self.state.changed.notify()
        return True

    async def _getWebhookInfo(self, p: Params) -> Any:
        wh = self.state.webhook
        info: dict[str, Any] = {"url": wh.url if wh else "", "has_custom_certificate": False,
                                "pending_update_count": len(self.state.queue)}
        if wh is not None:
            info["max_connections"] = wh.max_connections
            info["ip_address"] = "127.0.0.1"
            if wh.allowed_updates:
                info["allowed_updates"] = wh.allowed_updates
            if wh.last_error_date is not None:
                info["last_error_date"] = wh.last_error_date
                info["last_error_message"] = wh.last_error_message
        return info

    # ---- sending -----------------------------------------------------------------------------

    async def _sendMessage(self, p: Params) -> Any:
        chat_id = self._chat_id(p, sending=True)
        text, entities = self._text(p, "text", MAX_TEXT, "entities")
        if not text.strip():
            raise bad_request("message text is empty")
        msg = self._bot_message(chat_id, "text", text=text, entities=entities, parse_mode=p.string("parse_mode"),
                                source_text=p.string("text"), **self._common_fields(p, chat_id))
        return self.state.message_to_api(msg)

    async def _send_media(self, p: Params, kind: str) -> Any:
        chat_id = self._chat_id(p, sending=True)
        source = p.file(kind)
        if source is None:
            raise bad_request(f"there is no {kind} in the request")
        caption, caption_entities = self._text(p, "caption", MAX_CAPTION, "caption_entities")
        value, file_id = self._media_value(kind, source, p)
        msg = self._bot_message(chat_id, kind, media=value, file_id=file_id, caption=caption or None,
                                caption_entities=caption_entities, parse_mode=p.string("parse_mode"),
                                source_text=p.string("caption"), **self._common_fields(p, chat_id))
        return self.state.message_to_api(msg)

    async def _sendPhoto(self, p: Params) -> Any:
        return await self._send_media(p, "photo")

    async def _sendDocument(self, p: Params) -> Any:
        return await self._send_media(p, "document")

    async def _sendSticker(self, p: Params) -> Any:
        return await self._send_media(p, "sticker")

    async def _sendVoice(self, p: Params) -> Any:
        return await self._send_media(p, "voice")

    async def _sendVideo(self, p: Params) -> Any:
        return await self._send_media(p, "video")

    async def _sendAudio(self, p: Params) -> Any:
        return await self._send_media(p, "audio")

    async def _sendAnimation(self, p: Params) -> Any:
        return await self._send_media(p, "animation")

    async def _sendLocation(self, p: Params) -> Any:
        chat_id = self._chat_id(p, sending=True)
        location = {"latitude": p.number("latitude"), "longitude": p.number("longitude")}
        msg = self._bot_message(chat_id, "location", media=location, **self._common_fields(p, chat_id))
        return self.state.message_to_api(msg)

    async def _sendMediaGroup(self, p: Params) -> Any:
        chat_id = self._chat_id(p, sending=True)
        items = p.obj("media")
        if not isinstance(items, list) or not 2 <= len(items) <= 10:
            raise bad_request("media must contain 2-10 items")
        kinds = {item.get("type") for item in items if isinstance(item, dict)}
        if not kinds <= {"photo", "video", "document", "audio"} or len(kinds) == 0:
            raise bad_request("unsupported media type in the media group")
        if len(kinds) > 1 and kinds & {"document", "audio"}:
            raise bad_request("documents and audio can't be mixed with other media types in a media group")
        common = self._common_fields(p, chat_id)
        common.pop("reply_markup")  # albums carry no keyboard
        prepared = []
        for item in items:  # validate and store every item before creating any message
            kind = str(item["type"])
            source = p.resolve_media(str(item.get("media", "")))
            sub = Params({k: v for k, v in item.items() if k != "media"}, p.uploads)
            caption, caption_entities = self._text(sub, "caption", MAX_CAPTION, "caption_entities")
            value, file_id = self._media_value(kind, source, sub)
            prepared.append((kind, value, file_id, caption, caption_entities, sub.string("parse_mode")))
        group_id = self.state.new_media_group_id()
        out = []
        for kind, value, file_id, caption, caption_entities, parse_mode in prepared:
            msg = self._bot_message(chat_id, kind, media=value, file_id=file_id, caption=caption or None,
                                    caption_entities=caption_entities, parse_mode=parse_mode,
                                    media_group_id=group_id, **common)
            common["reply_to_message_id"] = common["message_thread_id"] if common["is_topic_message"] else None
            out.append(self.state.message_to_api(msg))
        return out

    def _from_chat(self, p: Params) -> int:
        from_chat = self._chat_id(p, "from_chat_id")
        chat = self.state.chats[from_chat]
        if chat.is_group:
            self._require_bot_in(chat)
        return from_chat

    async def _copy_source(self, p: Params, verb: str) -> tuple[int, Message]:
        chat_id = self._chat_id(p, sending=True)
        from_chat = self._from_chat(p)
        src = self.state.get_message(from_chat, p.req_int("message_id"))
        if src is None or src.deleted:
            raise bad_request(f"message to {verb} not found")
        if src.kind == "service":
            raise bad_request(f"message can't be {'copied' if verb == 'copy' else 'forwarded'}")
        return chat_id, src

    @staticmethod
    def _content(src: Message) -> dict[str, Any]:
        return {"text": src.text, "entities": list(src.entities), "media": src.media, "file_id": src.file_id,
                "caption": src.caption, "caption_entities": list(src.caption_entities)}

    async def _copyMessage(self, p: Params) -> Any:
        chat_id, src = await self._copy_source(p, "copy")
        fields = self._content(src)
        if "caption" in p.raw and src.kind != "text":
            caption, caption_entities = self._text(p, "caption", MAX_CAPTION, "caption_entities")
            fields.update(caption=caption or None, caption_entities=caption_entities)
        msg = self._bot_message(chat_id, src.kind, **fields, **self._common_fields(p, chat_id))
        return {"message_id": msg.message_id}

    def _forward_fields(self, p: Params, chat_id: int, src: Message) -> dict[str, Any]:
        origin = {"type": "user", "sender_user": self.state.user_to_api(src.from_id), "date": src.date}
        target = self._target(p, chat_id, None)
        return {**self._content(src), "message_thread_id": target.message_thread_id,
                "is_topic_message": target.is_topic_message, "reply_to_message_id": target.reply_to_message_id,
                "extra": {"forward_origin": origin}}

    async def _forwardMessage(self, p: Params) -> Any:
        chat_id, src = await self._copy_source(p, "forward")
        msg = self._bot_message(chat_id, src.kind, **self._forward_fields(p, chat_id, src))
        return self.state.message_to_api(msg)

    async def _copy_many(self, p: Params, verb: str) -> list[dict[str, int]]:
        """copyMessages / forwardMessages: missing and service messages are skipped, albums stay albums."""
        chat_id = self._chat_id(p, sending=True)
        from_chat = self._from_chat(p)
        ids = p.obj("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad_request("message_ids must contain 1-100 identifiers")
        try:
            wanted = [int(i) for i in ids]
        except (TypeError, ValueError):
            raise bad_request("message_ids must be an Array of Integer") from None
        if wanted != sorted(set(wanted)):
            raise bad_request("message identifiers must be in a strictly increasing order")
        sources = [m for m in (self.state.get_message(from_chat, i) for i in wanted)
                   if m is not None and not m.deleted and m.kind != "service"]
        if not sources:
            raise bad_request(f"message to {verb} not found")
        target = self._target(p, chat_id, None)
        groups: dict[str, str] = {}
        out = []
        for src in sources:
            fields = self._content(src)
            if verb == "copy" and p.flag("remove_caption"):
                fields.update(caption=None, caption_entities=[])
            if verb == "forward":
                fields["extra"] = {"forward_origin": {"type": "user", "date": src.date,
                                                      "sender_user": self.state.user_to_api(src.from_id)}}
            group_id = None
            if src.media_group_id is not None:
                group_id = groups.setdefault(src.media_group_id, self.state.new_media_group_id())
            msg = self._bot_message(chat_id, src.kind, **fields, message_thread_id=target.message_thread_id,
                                    is_topic_message=target.is_topic_message,
                                    reply_to_message_id=target.reply_to_message_id, media_group_id=group_id)
            out.append({"message_id": msg.message_id})
        return out

    async def _copyMessages(self, p: Params) -> Any:
        return await self._copy_many(p, "copy")

    async def _forwardMessages(self, p: Params) -> Any:
        return await self._copy_many(p, "forward")

    async def _sendChatAction(self, p: Params) -> Any:
        chat_id = self._chat_id(p, sending=True)
        action = p.string("action") or ""
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        chat = self.state.chats[chat_id]
        thread = p.integer("message_thread_id") if chat.is_group else None
        if chat.is_forum and thread not in (None, 0, GENERAL_TOPIC_ID) and chat.live_topic(thread) is None:
            raise bad_request("message thread not found")  # typing in General may name topic 1
        self.state.chat_actions.append({"chat_id": chat_id, "action": action, "at": time.time(),
                                        "message_thread_id": thread})
        return True

    # ---- editing and deleting ----------------------------------------------------------------

    async def _editMessageText(self, p: Params) -> Any:
        msg = self._editable(p)
        if msg.kind != "text":
            raise bad_request("there is no text in the message to edit")
        text, entities = self._text(p, "text", MAX_TEXT, "entities")
        if not text.strip():
            raise bad_request("message text is empty")
        # Like Telegram, an edit without reply_markup drops the inline keyboard.
        markup = inline_markup(check_reply_markup(p.obj("reply_markup")))
        if text == msg.text and entities == msg.entities and markup == inline_markup(msg.reply_markup):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self.state.record_edit(msg)
        msg.text, msg.entities, msg.reply_markup = text, entities, markup
        msg.parse_mode, msg.source_text = p.string("parse_mode"), p.string("text")
        return self.state.message_to_api(msg)

    async def _editMessageCaption(self, p: Params) -> Any:
        msg = self._editable(p)
        if msg.kind == "text":
            raise bad_request("there is no caption in the message to edit")
        caption, entities = self._text(p, "caption", MAX_CAPTION, "caption_entities")
        markup = inline_markup(check_reply_markup(p.obj("reply_markup")))
        if (caption or None) == msg.caption and entities == msg.caption_entities and markup == inline_markup(
                msg.reply_markup):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self.state.record_edit(msg)
        msg.caption, msg.caption_entities, msg.reply_markup = caption or None, entities, markup
        return self.state.message_to_api(msg)

    async def _editMessageReplyMarkup(self, p: Params) -> Any:
        msg = self._editable(p)
        markup = inline_markup(check_reply_markup(p.obj("reply_markup")))
        if markup == inline_markup(msg.reply_markup):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        self.state.record_edit(msg)
        msg.reply_markup = markup
        return self.state.message_to_api(msg)

    def _may_delete(self, msg: Message) -> bool:
        """In a group the bot deletes its own messages, and others' with can_delete_messages; the message that
        opens a forum topic goes only with the topic (deleteForumTopic)."""
        chat = self.state.chats[msg.chat_id]
        if not chat.is_group:
            return True
        if chat.is_forum and msg.kind == "service" and msg.message_id in chat.topics:
            return False
        return msg.outgoing or chat.member(self.state.bot.id).can("can_delete_messages")

    async def _deleteMessage(self, p: Params) -> Any:
        chat_id = self._chat_id(p, write=True)
        msg = self.state.get_message(chat_id, p.req_int("message_id"))
        if msg is None or msg.deleted:
            raise bad_request("message to delete not found")
        if not self._may_delete(msg):
            raise bad_request("message can't be deleted")
        msg.deleted = True
        self.state.touch()
        return True

    async def _deleteMessages(self, p: Params) -> Any:
        chat_id = self._chat_id(p, write=True)
        ids = p.obj("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad_request("message_ids must contain 1-100 identifiers")
        for mid in ids:
            msg = self.state.get_message(chat_id, int(mid))
            if msg is not None and self._may_delete(msg):  # the others are skipped, as Telegram does
                msg.deleted = True
        self.state.touch()
        return True

    # ---- callbacks and files -----------------------------------------------------------------

    async def _answerCallbackQuery(self, p: Params) -> Any:
        cq = self.state.callback_queries.get(p.string("callback_query_id") or "")
        if cq is None or cq.answer is not None:
            raise bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        text = p.string("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        cq.answer = {"callback_query_id": cq.id, "text": text, "show_alert": p.flag("show_alert"),
                     "url": p.string("url"), "cache_time": p.integer("cache_time", 0), "at": time.time()}
        self.state.touch()
        return True

    async def _getFile(self, p: Params) -> Any:
        f = self.state.files.get(p.string("file_id") or "")
        if f is None:
            raise bad_request("invalid file_id")
        if f.size > GETFILE_MAX_BYTES:
            raise bad_request("file is too big")
        path = self.state.assign_file_path(f)
        return {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "file_size": f.size, "file_path": path}

    # ---- bot settings ------------------------------------------------------------------------

    async def _setMyCommands(self, p: Params) -> Any:
        commands = p.obj("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be an array of at most 100 BotCommand")
        for cmd in commands:
            if not isinstance(cmd, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}", str(cmd.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self.state.commands_key(p.obj("scope"), p.string("language_code"))
        cleaned = [{"command": c["command"], "description": c["description"]} for c in commands]
        if cleaned:
            self.state.commands[key] = cleaned
        else:
            self.state.commands.pop(key, None)
        return True

    async def _getMyCommands(self, p: Params) -> Any:
        return self.state.commands.get(self.state.commands_key(p.obj("scope"), p.string("language_code")), [])

    async def _deleteMyCommands(self, p: Params) -> Any:
        self.state.commands.pop(self.state.commands_key(p.obj("scope"), p.string("language_code")), None)
        return True

    def _setting(self, kind: str, p: Params, value_name: str) -> bool:
        self.state.bot_settings[f"{kind}:{p.string('language_code') or ''}"] = p.string(value_name) or ""
        return True

    def _getting(self, kind: str, p: Params) -> str:
        return str(self.state.bot_settings.get(f"{kind}:{p.string('language_code') or ''}", ""))

    async def _setMyDescription(self, p: Params) -> Any:
        return self._setting("description", p, "description")

    async def _getMyDescription(self, p: Params) -> Any:
        return {"description": self._getting("description", p)}

    async def _setMyShortDescription(self, p: Params) -> Any:
        return self._setting("short_description", p, "short_description")

    async def _getMyShortDescription(self, p: Params) -> Any:
        return {"short_description": self._getting("short_description", p)}

    async def _setMyName(self, p: Params) -> Any:
        return self._setting("name", p, "name")

    async def _getMyName(self, p: Params) -> Any:
        return {"name": self._getting("name", p) or self.state.bot.first_name}

    async def _setChatMenuButton(self, p: Params) -> Any:
        button = p.obj("menu_button") or {"type": "default"}
        self.state.bot_settings[f"menu_button:{p.string('chat_id') or ''}"] = button
        return True

    async def _getChatMenuButton(self, p: Params) -> Any:
        settings = self.state.bot_settings
        return settings.get(f"menu_button:{p.string('chat_id') or ''}") or settings.get("menu_button:") or {
            "type": "commands"}

    async def _getChat(self, p: Params) -> Any:
        chat = self.state.chats[self._chat_id(p)]
        info: dict[str, Any] = {
            **chat.to_api(), "accent_color_id": 0, "max_reaction_count": 11,
            "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                                    "premium_subscription": False, "gifts_from_channels": False}}
        if chat.is_group:
            info["permissions"] = {
                "can_send_messages": True, "can_send_audios": True, "can_send_documents": True,
                "can_send_photos": True, "can_send_videos": True, "can_send_video_notes": True,
                "can_send_voice_notes": True, "can_send_polls": True, "can_send_other_messages": True,
                "can_add_web_page_previews": True, "can_change_info": False, "can_invite_users": True,
                "can_pin_messages": False, "can_manage_topics": False}
        return info

    # ---- members -----------------------------------------------------------------------------

    async def _getChatMember(self, p: Params) -> Any:
        chat_id = self._chat_id(p)
        user_id = p.integer("user_id", 0) or 0
        if user_id <= 0:
            raise bad_request("invalid user_id specified")
        state = self.state
        if user_id != state.bot.id and user_id not in state.users:
            raise bad_request("user not found")
        chat = state.chats[chat_id]
        user = state.user_to_api(user_id)
        if not chat.is_group:
            status = "member" if user_id in (chat_id, state.bot.id) else "left"
            return {"status": status, "user": user}
        if user_id != state.bot.id:
            self._require_bot_in(chat)
        return chat.member(user_id).to_api(user)

    async def _getChatAdministrators(self, p: Params) -> Any:
        chat = self.state.chats[self._chat_id(p)]
        if not chat.is_group:
            raise bad_request("there are no administrators in the private chat")
        self._require_bot_in(chat)
        return [m.to_api(self.state.user_to_api(uid)) for uid, m in chat.members.items()
                if m.status in ("creator", "administrator")]

    async def _getChatMemberCount(self, p: Params) -> Any:
        chat = self.state.chats[self._chat_id(p)]
        if not chat.is_group:
            return 1 + (chat.id != self.state.bot.id)
        return sum(m.present for m in chat.members.values())

    async def _leaveChat(self, p: Params) -> Any:
        chat = self.state.chats[self._chat_id(p)]
        if not chat.is_group:
            raise bad_request("chat member status can't be changed in private chats")
        self._require_bot_in(chat)
        self.state.set_member(chat.id, self.state.bot.id, "left", by_user_id=self.state.bot.id)
        return True

    # ---- forum topics ------------------------------------------------------------------------

    async def _getForumTopicIconStickers(self, p: Params) -> Any:
        return []  # the sandbox has no custom emoji

    async def _createForumTopic(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        topic, _root, _rec = self.state.create_topic(chat.id, self.state.bot.id, p.string("name"),
                                                     p.integer("icon_color"), p.string("icon_custom_emoji_id"))
        return topic.to_api()

    def _group_or_forum(self, p: Params) -> Chat:
        chat = self.state.chats[self._chat_id(p)]
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        self._require_bot_in(chat)
        return chat

    async def _editForumTopic(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        icon = p.string("icon_custom_emoji_id") if "icon_custom_emoji_id" in p.raw else None
        self.state.edit_topic(chat.id, self.state.bot.id, p.integer("message_thread_id", 0) or 0,
                              p.string("name"), icon)
        return True

    async def _closeForumTopic(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        self.state.set_topic_closed(chat.id, self.state.bot.id, p.integer("message_thread_id", 0) or 0, True)
        return True

    async def _reopenForumTopic(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        self.state.set_topic_closed(chat.id, self.state.bot.id, p.integer("message_thread_id", 0) or 0, False)
        return True

    async def _deleteForumTopic(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        self.state.delete_topic(chat.id, self.state.bot.id, p.integer("message_thread_id", 0) or 0)
        return True

    async def _unpinAllForumTopicMessages(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        thread = p.integer("message_thread_id", 0) or 0
        if thread <= 0:
            raise bad_request("invalid message thread identifier specified")
        if chat.live_topic(thread) is None:
            raise bad_request("TOPIC_ID_INVALID")
        if not chat.member(self.state.bot.id).can("can_pin_messages"):
            raise bad_request("not enough rights to unpin messages")
        return True  # nothing is pinned in the sandbox

    async def _editGeneralForumTopic(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        self.state.set_general(chat.id, self.state.bot.id, name=p.string("name") or "")
        return True

    async def _closeGeneralForumTopic(self, p: Params) -> Any:
        self.state.set_general(self._group_or_forum(p).id, self.state.bot.id, closed=True)
        return True

    async def _reopenGeneralForumTopic(self, p: Params) -> Any:
        self.state.set_general(self._group_or_forum(p).id, self.state.bot.id, closed=False)
        return True

    async def _hideGeneralForumTopic(self, p: Params) -> Any:
        self.state.set_general(self._group_or_forum(p).id, self.state.bot.id, hidden=True)
        return True

    async def _unhideGeneralForumTopic(self, p: Params) -> Any:
        self.state.set_general(self._group_or_forum(p).id, self.state.bot.id, hidden=False)
        return True

    async def _unpinAllGeneralForumTopicMessages(self, p: Params) -> Any:
        chat = self._group_or_forum(p)
        if not chat.member(self.state.bot.id).can("can_pin_messages"):
            raise bad_request("not enough rights to unpin messages")
        return True


def thread_error(exc: ThreadError) -> ApiError:
    """Telegram's answer to a send into a topic that refuses it."""
    if exc.reason == "closed":
        return bad_request("TOPIC_CLOSED")
    return bad_request("message thread not found")
