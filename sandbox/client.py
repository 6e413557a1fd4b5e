"""Async client for the emulator's control API: how tests and the terminal chat act as Telegram users."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import aiohttp


class ControlAPIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


FileSource = bytes | str | Path


def _read(source: FileSource) -> tuple[bytes, str | None]:
    if isinstance(source, bytes):
        return source, None
    path = Path(source)
    return path.read_bytes(), path.name


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class EmulatorClient:
    """`async with EmulatorClient(emu.base_url) as tg:`; every method maps to one /control/ endpoint."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                       data: Any = None, ok_statuses: tuple[int, ...] = (200,),
                       timeout: float = 30.0) -> Any:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self._http().request(method, f"{self.base_url}/control/{path}", json=json, params=query,
                                        data=data, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.json(content_type=None)
            if resp.status not in ok_statuses:
                message = body.get("error", body) if isinstance(body, dict) else body
                raise ControlAPIError(resp.status, str(message))
            return body

    async def _dict(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = await self._request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise ControlAPIError(200, f"expected a JSON object from {path}, got {body!r}")
        return body

    async def _list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        body = await self._request(method, path, **kwargs)
        if not isinstance(body, list):
            raise ControlAPIError(200, f"expected a JSON array from {path}, got {body!r}")
        return body

    # ---- users act ---------------------------------------------------------------------------

    async def create_user(self, user_id: int, first_name: str, last_name: str | None = None,
                          username: str | None = None, language_code: str | None = None,
                          started: bool = True) -> dict[str, Any]:
        """Register a user and their private chat (idempotent). started=False: the user never opened the
        bot, so the bot cannot message them until they write."""
        return await self._dict("POST", "users", json=_drop_none({
            "user_id": user_id, "first_name": first_name, "last_name": last_name, "username": username,
            "language_code": language_code, "started": started}))

    async def block_bot(self, user_id: int, blocked: bool = True, quiet: bool = False) -> dict[str, Any]:
        """The user blocks (blocked=False: unblocks) the bot. Unless quiet, the bot gets my_chat_member
        (its status kicked / member) and the answer's update_id names it (None: nothing changed)."""
        return await self._dict("POST", "block", json=_drop_none({"user_id": user_id, "blocked": blocked,
                                                                  "quiet": quiet or None}))

    # Every send takes chat_id (a group the user is in; default their private chat with the bot) and
    # message_thread_id (a forum topic; 1 or None: General). The answer's update_id is None when the bot
    # gets no update for it (a group message its privacy mode hides).

    async def send_text(self, user_id: int, text: str, reply_to_message_id: int | None = None,
                        chat_id: int | None = None, message_thread_id: int | None = None) -> dict[str, Any]:
        return await self._dict("POST", "send_text", json=_drop_none({
            "user_id": user_id, "text": text, "reply_to_message_id": reply_to_message_id, "chat_id": chat_id,
            "message_thread_id": message_thread_id}))

    async def press(self, user_id: int, message_id: int, data: str | None = None,
                    button_text: str | None = None, chat_id: int | None = None) -> dict[str, Any]:
        """Press an inline button of a bot message in the user's private chat or, with chat_id, in a group."""
        return await self._dict("POST", "press", json=_drop_none({
            "user_id": user_id, "message_id": message_id, "data": data, "button_text": button_text,
            "chat_id": chat_id}))

    @staticmethod
    def _where_fields(form: aiohttp.FormData, chat_id: int | None, message_thread_id: int | None) -> None:
        if chat_id is not None:
            form.add_field("chat_id", str(chat_id))
        if message_thread_id is not None:
            form.add_field("message_thread_id", str(message_thread_id))

    async def send_photo(self, user_id: int, photo: FileSource, caption: str | None = None,
                         filename: str | None = None, chat_id: int | None = None,
                         message_thread_id: int | None = None) -> dict[str, Any]:
        data, name = _read(photo)
        form = aiohttp.FormData()
        form.add_field("user_id", str(user_id))
        if caption is not None:
            form.add_field("caption", caption)
        self._where_fields(form, chat_id, message_thread_id)
        form.add_field("file", data, filename=filename or name or "photo.jpg", content_type="image/jpeg")
        return await self._dict("POST", "send_photo", data=form)

    async def send_document(self, user_id: int, document: FileSource, filename: str | None = None,
                            mime_type: str = "application/octet-stream",
                            caption: str | None = None, chat_id: int | None = None,
                            message_thread_id: int | None = None) -> dict[str, Any]:
        data, name = _read(document)
        form = aiohttp.FormData()
        form.add_field("user_id", str(user_id))
        form.add_field("filename", filename or name or "file.bin")
        form.add_field("mime_type", mime_type)
        if caption is not None:
            form.add_field("caption", caption)
        self._where_fields(form, chat_id, message_thread_id)
        form.add_field("file", data, filename=filename or name or "file.bin", content_type=mime_type)
        return await self._dict("POST", "send_document", data=form)

    async def send_video(self, user_id: int, video: FileSource, filename: str | None = None,
                         mime_type: str = "video/mp4", caption: str | None = None, duration: int = 0,
                         width: int = 0, height: int = 0, chat_id: int | None = None,
                         message_thread_id: int | None = None) -> dict[str, Any]:
        """A video message; `duration`, `width` and `height` are the client's claim, as in Telegram."""
        data, name = _read(video)
        form = aiohttp.FormData()
        form.add_field("user_id", str(user_id))
        form.add_field("filename", filename or name or "video.mp4")
        form.add_field("mime_type", mime_type)
        for key, value in (("duration", duration), ("width", width), ("height", height)):
            form.add_field(key, str(value))
        if caption is not None:
            form.add_field("caption", caption)
        self._where_fields(form, chat_id, message_thread_id)
        form.add_field("file", data, filename=filename or name or "video.mp4", content_type=mime_type)
        return await self._dict("POST", "send_video", data=form)

    async def send_sticker(self, user_id: int, emoji: str | None = None, chat_id: int | None = None,
                           message_thread_id: int | None = None) -> dict[str, Any]:
        return await self._dict("POST", "send_sticker", json=_drop_none({
            "user_id": user_id, "emoji": emoji, "chat_id": chat_id, "message_thread_id": message_thread_id}))

    async def send_voice(self, user_id: int, duration: int | None = None, chat_id: int | None = None,
                         message_thread_id: int | None = None) -> dict[str, Any]:
        return await self._dict("POST", "send_voice", json=_drop_none({
            "user_id": user_id, "duration": duration, "chat_id": chat_id, "message_thread_id": message_thread_id}))

    async def send_location(self, user_id: int, latitude: float | None = None,
                            longitude: float | None = None, chat_id: int | None = None,
                            message_thread_id: int | None = None) -> dict[str, Any]:
        return await self._dict("POST", "send_location", json=_drop_none({
            "user_id": user_id, "latitude": latitude, "longitude": longitude, "chat_id": chat_id,
            "message_thread_id": message_thread_id}))

    async def send_file_ref(self, user_id: int, kind: str, file_size: int, mime_type: str | None = None,
                            filename: str | None = None, duration: int | None = None) -> dict[str, Any]:
        """A photo, document or video that claims `file_size` bytes (and a video `duration`) without any."""
        return await self._dict("POST", "send_file_ref", json=_drop_none({
            "user_id": user_id, "kind": kind, "file_size": file_size, "mime_type": mime_type,
            "filename": filename, "duration": duration}))

    async def edit_text(self, user_id: int, message_id: int, text: str, chat_id: int | None = None
                        ) -> dict[str, Any]:
        """The user edits their own message (a text, or a media message's caption): an edited_message update."""
        return await self._dict("POST", "edit_text", json=_drop_none({
            "user_id": user_id, "message_id": message_id, "text": text, "chat_id": chat_id}))

    # ---- groups, members and forum topics ------------------------------------------------------

    async def create_group(self, title: str, chat_id: int | None = None, *, is_forum: bool = True,
                           creator_id: int | None = None, username: str | None = None,
                           bot_status: str = "administrator", bot_rights: dict[str, bool] | None = None,
                           members: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A supergroup (a forum unless is_forum=False) as it is before the test: no updates are queued.
        The bot is in it with `bot_status` (administrator: can_manage_topics and the usual rights, overridden
        by `bot_rights`); `members` are {"user_id", "status", "rights"?, "custom_title"?}. Returns
        {"chat": Chat, "members": [ChatMember]}; chat_id defaults to a fresh -100… id."""
        return await self._dict("POST", "groups", json=_drop_none({
            "title": title, "chat_id": chat_id, "is_forum": is_forum, "creator_id": creator_id,
            "username": username, "bot_status": bot_status, "bot_rights": bot_rights, "members": members}))

    async def set_member(self, chat_id: int, user_id: int, status: str, rights: dict[str, bool] | None = None,
                         custom_title: str | None = None, by_user_id: int | None = None,
                         quiet: bool = False) -> dict[str, Any]:
        """Add, promote, demote, remove (left) or ban (kicked) a user or the bot (user_id=BOT_USER_ID).
        Unless quiet, the bot gets my_chat_member / chat_member and a join/leave service message."""
        return await self._dict("POST", "members", json=_drop_none({
            "chat_id": chat_id, "user_id": user_id, "status": status, "rights": rights,
            "custom_title": custom_title, "by_user_id": by_user_id, "quiet": quiet or None}))

    async def members(self, chat_id: int) -> list[dict[str, Any]]:
        return await self._list("GET", "members", params={"chat_id": chat_id})

    async def create_topic(self, chat_id: int, user_id: int, name: str, icon_color: int | None = None
                           ) -> dict[str, Any]:
        """A person creates a topic in the app: {"message_thread_id", "message_id", "topic", "update_id"}."""
        return await self._dict("POST", "create_topic", json=_drop_none({
            "chat_id": chat_id, "user_id": user_id, "name": name, "icon_color": icon_color}))

    async def edit_topic(self, chat_id: int, user_id: int, message_thread_id: int, name: str | None = None,
                         icon_custom_emoji_id: str | None = None) -> dict[str, Any]:
        return await self._dict("POST", "edit_topic", json=_drop_none({
            "chat_id": chat_id, "user_id": user_id, "message_thread_id": message_thread_id, "name": name,
            "icon_custom_emoji_id": icon_custom_emoji_id}))

    async def close_topic(self, chat_id: int, user_id: int, message_thread_id: int) -> dict[str, Any]:
        """A person closes a topic (1: General): the bot gets the forum_topic_closed service message."""
        return await self._dict("POST", "close_topic", json={
            "chat_id": chat_id, "user_id": user_id, "message_thread_id": message_thread_id})

    async def reopen_topic(self, chat_id: int, user_id: int, message_thread_id: int) -> dict[str, Any]:
        return await self._dict("POST", "reopen_topic", json={
            "chat_id": chat_id, "user_id": user_id, "message_thread_id": message_thread_id})

    async def delete_topic(self, chat_id: int, user_id: int, message_thread_id: int) -> dict[str, Any]:
        """A person deletes a topic and all its messages; Telegram tells the bot nothing."""
        return await self._dict("POST", "delete_topic", json={
            "chat_id": chat_id, "user_id": user_id, "message_thread_id": message_thread_id})

    async def topics(self, chat_id: int, include_deleted: bool = False) -> list[dict[str, Any]]:
        return await self._list("GET", "topics", params={"chat_id": chat_id,
                                                         "include_deleted": "true" if include_deleted else None})

    async def topic_messages(self, chat_id: int, message_thread_id: int) -> list[dict[str, Any]]:
        """Every message of a topic (1: General), the service messages and deleted ones included."""
        return await self.chat(chat_id, message_thread_id)

    async def set_bot_privacy(self, can_read_all_group_messages: bool) -> dict[str, Any]:
        """BotFather's privacy mode: False (the default) hides ordinary group messages from a non-admin bot."""
        return await self._dict("POST", "bot", json={"can_read_all_group_messages": can_read_all_group_messages})

    async def set_language(self, user_id: int, language_code: str | None) -> dict[str, Any]:
        """The user switches their Telegram app's language (None: none set); their next updates carry it."""
        return await self._dict("POST", "language", json={"user_id": user_id, "language_code": language_code})

    async def directory(self) -> dict[str, Any]:
        """What the web page lists: {"revision", "bot", "users", "groups"}; each group with its present
        members and its topics (General first), each topic with a message count and its last message."""
        return await self._dict("GET", "directory")

    async def demo_reset(self, clear_chats: bool = True) -> dict[str, Any]:
        """The web page's reset button: clear every chat's history, then run the owner's on_reset hook."""
        return await self._dict("POST", "demo_reset", json={"clear_chats": clear_chats})

    async def redeliver(self, update_id: int) -> dict[str, Any]:
        return await self._dict("POST", "redeliver", json={"update_id": update_id})

    async def raw_update(self, update: dict[str, Any]) -> dict[str, Any]:
        return await self._dict("POST", "raw_update", json={"update": update})

    # ---- observing the bot -------------------------------------------------------------------

    async def messages(self, chat_id: int, after: int = 0, timeout: float = 0,
                       message_thread_id: int | None = None) -> list[dict[str, Any]]:
        """The bot's messages in a chat (or one topic of it; 1: General) with message_id > after; with
        timeout, long-polls for the first."""
        return await self._list("GET", "messages", params={
            "chat_id": chat_id, "after": after, "timeout": timeout or None, "message_thread_id": message_thread_id},
            timeout=timeout + 30)

    async def bot_messages(self, chat_id: int, after_message_id: int = 0,
                           message_thread_id: int | None = None) -> list[dict[str, Any]]:
        return await self.messages(chat_id, after_message_id, message_thread_id=message_thread_id)

    async def wait_bot_messages(self, chat_id: int, after_message_id: int = 0, count: int = 1,
                                timeout: float = 10.0,
                                predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
                                message_thread_id: int | None = None) -> list[dict[str, Any]]:
        """Wait until at least `count` new bot messages (or `predicate` on them holds); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.messages(chat_id, after_message_id, message_thread_id=message_thread_id)
            if (predicate(found) if predicate else len(found) >= count):
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"bot did not answer in chat {chat_id} within {timeout}s; got {found!r}")
            await asyncio.sleep(min(0.05, remaining))

    async def chat(self, chat_id: int, message_thread_id: int | None = None) -> list[dict[str, Any]]:
        """Every message of a chat (users', the bot's, service ones, deleted ones), or of one topic/thread."""
        return await self._list("GET", "chat", params={"chat_id": chat_id, "message_thread_id": message_thread_id})

    async def callback_answers(self, callback_query_id: str | None = None) -> list[dict[str, Any]]:
        return await self._list("GET", "callback_answers", params={"callback_query_id": callback_query_id})

    async def update_status(self, update_id: int) -> dict[str, Any]:
        return await self._dict("GET", "update", params={"update_id": update_id})

    async def updates(self, status: str | None = None) -> list[dict[str, Any]]:
        return await self._list("GET", "updates", params={"status": status})

    async def wait_confirmed(self, update_id: int, timeout: float = 10) -> dict[str, Any]:
        """Block until the bot confirmed the update (offset moved past it, or webhook answered 2xx).

        Raises TimeoutError when it did not within `timeout` seconds.
        """
        body = await self._dict("GET", "wait", params={"update_id": update_id, "timeout": timeout},
                                   ok_statuses=(200, 408), timeout=timeout + 30)
        if body.get("status") != "confirmed":
            raise TimeoutError(f"update {update_id} not confirmed within {timeout}s: {body}")
        return body

    async def calls(self, method: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return await self._list("GET", "calls", params={"method": method, "after": after or None})

    async def commands(self) -> list[dict[str, Any]]:
        return await self._list("GET", "commands")

    async def chat_actions(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        return await self._list("GET", "chat_actions", params={"chat_id": chat_id})

    async def download(self, file_id: str) -> bytes:
        """The bytes the emulator holds for a file_id (what the bot uploaded or a user sent)."""
        async with self._http().get(f"{self.base_url}/control/file", params={"file_id": file_id}) as resp:
            if resp.status != 200:
                raise ControlAPIError(resp.status, await resp.text())
            return await resp.read()

    # ---- shaping the world -------------------------------------------------------------------

    async def add_fault(self, method: str, error_code: int, count: int = 1, chat_id: int | None = None,
                        retry_after: int | None = None, description: str | None = None,
                        delay: float | None = None, answer_late: bool | None = None) -> dict[str, Any]:
        return await self._dict("POST", "faults", json=_drop_none({
            "method": method, "error_code": error_code, "count": count, "chat_id": chat_id,
            "retry_after": retry_after, "description": description, "delay": delay, "answer_late": answer_late}))

    async def faults(self) -> list[dict[str, Any]]:
        return await self._list("GET", "faults")

    async def clear_faults(self) -> dict[str, Any]:
        return await self._dict("DELETE", "faults")

    async def set_limits(self, enabled: bool = True, per_chat_per_s: int | None = None,
                         per_group_per_min: int | None = None, global_per_s: int | None = None,
                         reset_counters: bool = False) -> dict[str, Any]:
        """Switch Telegram's flood limits on (or off); reset_counters zeroes accepted/throttled/injected_429."""
        return await self._dict("POST", "limits", json=_drop_none({
            "enabled": enabled, "per_chat_per_s": per_chat_per_s, "per_group_per_min": per_group_per_min,
            "global_per_s": global_per_s, "reset_counters": reset_counters or None}))

    async def limits(self) -> dict[str, Any]:
        """The limits in force and the counters: accepted (rate-limited calls let through), throttled
        (429s from the limits), injected_429 (429s from fault rules)."""
        return await self._dict("GET", "limits")

    async def reset(self) -> dict[str, Any]:
        return await self._dict("POST", "reset")

    async def state(self) -> dict[str, Any]:
        return await self._dict("GET", "state")

    async def ping(self) -> dict[str, Any]:
        return await self._dict("GET", "ping")
