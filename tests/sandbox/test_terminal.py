"""The terminal chat, driven by scripted input against a tiny aiogram bot loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from sandbox import Emulator
from sandbox.terminal import run_terminal_chat

from .conftest import png_bytes

USER = 3003


async def echo_bot(bot: Bot) -> None:
    """Echo text with a two-button keyboard; a press is toasted and the message edited."""
    offset: int | None = None
    kb = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="卡密无效", callback_data="invalid"),
        InlineKeyboardButton(text="已被使用", callback_data="used"),
    ]])
    while True:
        for update in await bot.get_updates(offset=offset, timeout=1):
            offset = update.update_id + 1
            msg, cq = update.message, update.callback_query
            if msg is not None and msg.text is not None:
                await bot.send_message(msg.chat.id, f"echo: {msg.text}", reply_markup=kb)
            elif msg is not None and msg.photo:
                await bot.send_message(msg.chat.id, f"photo {msg.photo[-1].width}x{msg.photo[-1].height}")
            elif cq is not None and cq.message is not None:
                await bot.answer_callback_query(cq.id, text="收到")
                await bot.edit_message_text(f"you chose {cq.data}", chat_id=cq.message.chat.id,
                                            message_id=cq.message.message_id)


class Script:
    """input_fn for the terminal: each line is typed once the screen shows what it waits for."""

    def __init__(self, steps: list[tuple[str | None, str]], output: list[str]) -> None:
        self.steps = steps
        self.output = output
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.steps:
            raise EOFError
        wait_for, line = self.steps.pop(0)
        deadline = time.monotonic() + 5
        while wait_for is not None and not any(wait_for in o for o in self.output):
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {wait_for!r}; screen: {self.output!r}")
            time.sleep(0.02)
        return line


async def test_terminal_chat_shows_buttons_and_presses_them(emu: Emulator, bot: Bot, tmp_path: Path) -> None:
    picture = tmp_path / "receipt.png"
    picture.write_bytes(png_bytes(120, 80))
    screen: list[str] = []
    script = Script([
        (None, ":help"),
        (":quit", "hello"),
        ("  [1] 卡密无效  [2] 已被使用", "'1"),  # literal "1", not a button press
        ("bot: echo: 1", "2"),  # presses the latest message's second button
        ("(edited) bot: you chose used", f":photo {picture}"),
        ("bot: photo 120x80", ":quit"),
    ], screen)
    bot_task = asyncio.create_task(echo_bot(bot))
    try:
        await asyncio.wait_for(
            run_terminal_chat(emu.base_url, USER, "Carol", "zh-hans", input_fn=script, output=screen.append,
                              poll_interval=0.05),
            timeout=15,
        )
    finally:
        bot_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot_task

    text = "\n".join(screen)
    assert "bot: echo: hello" in text and "bot: echo: 1" in text
    assert screen.count("  [1] 卡密无效  [2] 已被使用") == 2
    assert "(toast) 收到" in text
    assert screen[-1] == "Bye."
    async with emu.client() as tg:
        chat = await tg.chat(USER)
    users_texts = [m["text"] for m in chat if not m["from_bot"] and m["kind"] == "text"]
    assert users_texts == ["hello", "1"]
    pressed = [m for m in chat if m["text"] == "you chose used"]
    assert len(pressed) == 1 and pressed[0]["message_id"] == 4  # the second echo, not the first
