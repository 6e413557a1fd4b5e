"""A terminal chat: a person plays a Telegram user against the bot through the emulator.

I/O is injectable (input_fn, output) so tests can script a conversation; input is read in a worker
thread so a blocking stdin never stalls the event loop that prints the bot's messages.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import ControlAPIError, EmulatorClient

ANSWER_WAIT = 15.0

HELP = """\
Type a line to send it as text. The bot's messages appear as they arrive.
  <number>       press button <number> of the latest message with buttons
  'text          send text literally (e.g. '1 sends "1")
  :photo PATH    send a picture as a photo
  :doc PATH      send a file as a document
  :sticker       send a sticker
  :voice         send a voice note
  :location      send a location
  :help          show this help
  :quit          leave the chat"""


@dataclass
class Button:
    label: str
    message_id: int
    callback_data: str | None = None  # inline callback button
    url: str | None = None
    reply_text: str | None = None  # reply-keyboard button: pressing sends its text


@dataclass
class ChatView:
    """What the terminal has shown so far, to print only news and to map numbers to buttons."""

    output: Callable[[str], Any]
    seen: dict[int, tuple[int, bool]] = field(default_factory=dict)  # message_id -> (edits, deleted)
    buttons: list[Button] = field(default_factory=list)
    awaiting_answers: dict[str, float] = field(default_factory=dict)  # callback_query_id -> give-up time

    def update(self, messages: list[dict[str, Any]], quiet: bool = False) -> None:
        for msg in messages:
            mid = msg["message_id"]
            state = (msg.get("edits", 0), bool(msg.get("deleted")))
            before = self.seen.get(mid)
            self.seen[mid] = state
            if quiet or before == state:
                continue
            if before is None:
                if not state[1]:
                    self._show(msg, "")
            elif state[1] and not before[1]:
                self.output(f"(deleted) bot message #{mid}")
            elif state[0] != before[0]:
                self._show(msg, "(edited) ")
        self.buttons = self._latest_buttons(messages)

    def _show(self, msg: dict[str, Any], prefix: str) -> None:
        self.output(prefix + "bot: " + describe(msg))
        rows = button_rows(msg)
        if rows:
            n = 0  # numbering restarts per message: numbers always refer to the latest keyboard
            for row in rows:
                cells = []
                for button in row:
                    n += 1
                    cells.append(f"[{n}] {button.label}" + (f" -> {button.url}" if button.url else ""))
                self.output("  " + "  ".join(cells))

    @staticmethod
    def _latest_buttons(messages: list[dict[str, Any]]) -> list[Button]:
        for msg in sorted(messages, key=lambda m: m["message_id"], reverse=True):
            if msg.get("deleted"):
                continue
            rows = button_rows(msg)
            if rows:
                return [b for row in rows for b in row]
        return []


def button_rows(msg: dict[str, Any]) -> list[list[Button]]:
    markup = msg.get("reply_markup") or {}
    rows: list[list[Button]] = []
    for row in markup.get("inline_keyboard") or []:
        rows.append([Button(str(b.get("text", "")), msg["message_id"], callback_data=b.get("callback_data"),
                            url=b.get("url")) for b in row])
    for row in markup.get("keyboard") or []:
        cells = [b if isinstance(b, dict) else {"text": str(b)} for b in row]
        rows.append([Button(str(b.get("text", "")), msg["message_id"], reply_text=str(b.get("text", "")))
                     for b in cells])
    return rows


def describe(msg: dict[str, Any]) -> str:
    kind = msg.get("kind", "text")
    if kind == "text":
        body = msg.get("text") or ""
    else:
        detail = kind
        if kind == "document":
            detail = f"document {msg.get('file_name') or ''} ({msg.get('mime_type') or '?'}, {msg.get('file_size')} B)"
        elif kind == "location" and msg.get("location"):
            detail = f"location {msg['location'].get('latitude')},{msg['location'].get('longitude')}"
        body = f"[{detail.strip()}]" + (f" {msg['caption']}" if msg.get("caption") else "")
    if msg.get("media_group_id"):
        body += f"  (album {msg['media_group_id']})"
    return body.replace("\n", "\n     ")


async def run_terminal_chat(base_url: str, user_id: int, first_name: str, language_code: str | None = None,
                            input_fn: Callable[[str], str] = input, output: Callable[[str], Any] = print,
                            *, poll_interval: float = 0.3, prompt: str = "") -> None:
    """Chat as user `user_id` until :quit or end of input."""
    async with EmulatorClient(base_url) as tg:
        await tg.create_user(user_id, first_name, language_code=language_code)
        view = ChatView(output)
        view.update(await tg.messages(user_id), quiet=True)  # history stays quiet; only news is printed
        output(f"Chatting with the bot as {first_name} (id {user_id}). Type :help for help, :quit to leave.")
        poller = asyncio.create_task(_poll(tg, view, user_id, poll_interval))
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input_fn, prompt)
                except (EOFError, KeyboardInterrupt):
                    break
                try:
                    keep_going = await _handle(tg, view, user_id, line.rstrip("\n"), output)
                except (ControlAPIError, OSError) as exc:
                    output(f"! {exc}")
                    continue
                if not keep_going:
                    break
                await _refresh(tg, view, user_id)
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        output("Bye.")


async def _refresh(tg: EmulatorClient, view: ChatView, user_id: int) -> None:
    # Answers first: a bot usually answers the press before editing, so the toast reads in order.
    for cq_id, give_up in list(view.awaiting_answers.items()):
        answers = await tg.callback_answers(cq_id)
        answer = answers[0]["answer"] if answers else None
        if answer is not None or time.monotonic() > give_up:
            del view.awaiting_answers[cq_id]
        if answer is not None and answer.get("text"):
            view.output(("(alert) " if answer.get("show_alert") else "(toast) ") + answer["text"])
    view.update(await tg.messages(user_id))


async def _poll(tg: EmulatorClient, view: ChatView, user_id: int, interval: float) -> None:
    while True:
        try:
            await _refresh(tg, view, user_id)
        except (ControlAPIError, OSError) as exc:
            view.output(f"! lost the emulator: {exc}")
        await asyncio.sleep(interval)


async def _handle(tg: EmulatorClient, view: ChatView, user_id: int, line: str, output: Callable[[str], Any]) -> bool:
    stripped = line.strip()
    if not stripped:
        return True
    if stripped.startswith("'"):
        await tg.send_text(user_id, line.split("'", 1)[1])
        return True
    if stripped.isdigit() and 1 <= int(stripped) <= len(view.buttons):
        await _press(tg, view, view.buttons[int(stripped) - 1], user_id)
        return True
    command, _, arg = stripped.partition(" ")
    arg = arg.strip()
    if command in (":quit", ":q", ":exit"):
        return False
    if command == ":help":
        output(HELP)
    elif command == ":photo" and arg:
        await tg.send_photo(user_id, Path(arg).expanduser())
    elif command == ":doc" and arg:
        path = Path(arg).expanduser()
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await tg.send_document(user_id, path, filename=path.name, mime_type=mime)
    elif command == ":sticker":
        await tg.send_sticker(user_id)
    elif command == ":voice":
        await tg.send_voice(user_id)
    elif command == ":location":
        await tg.send_location(user_id)
    elif command in (":photo", ":doc"):
        output(f"usage: {command} PATH")
    else:
        await tg.send_text(user_id, line)
    return True


async def _press(tg: EmulatorClient, view: ChatView, button: Button, user_id: int) -> None:
    if button.reply_text is not None:
        await tg.send_text(user_id, button.reply_text)
    elif button.callback_data is not None:
        pressed = await tg.press(user_id, button.message_id, data=button.callback_data)
        # Telegram shows the answer as a toast for a while; wait that long for the bot to answer.
        view.awaiting_answers[pressed["callback_query_id"]] = time.monotonic() + ANSWER_WAIT
    elif button.url:
        view.output(f"(opens {button.url})")
    else:
        view.output("(this button does nothing here)")
