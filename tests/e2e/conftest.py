"""End-to-end harness: the real bot (on aiogram and on python-telegram-bot: every test here runs on
both, see `framework`; SQLite or PostgreSQL) against the emulator over HTTP, customers played through
the emulator's control API."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.app import Running, running_bot, seed_demo_orders, serve
from bot.config import AppConfig
from sandbox.server import Emulator

TOKEN = "7000000001:e2e-token"
FRAMEWORKS = ("aiogram", "ptb")
CASE_NO = re.compile(r"R\d{8}-\d{4}")


def png_bytes(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_config(tmp_path: Path, database_url: str | None = None, framework: str = "aiogram",
                **telegram: Any) -> AppConfig:
    return AppConfig.model_validate({
        "telegram": {"token": TOKEN, "poll_timeout": 1, "listen_port": 0, "framework": framework, **telegram},
        "database": {"url": database_url or f"sqlite:///{tmp_path}/refundbot.db"},
        "storage": {"evidence_dir": str(tmp_path / "evidence")},
    })


class Control:
    """The emulator's control API: act as users, read what the bot sent."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = base_url.rstrip("/") + "/control/"
        self.http = session

    async def post(self, path: str, **body: Any) -> Any:
        async with self.http.post(self.base + path, json=body) as resp:
            assert resp.status == 200, (path, resp.status, await resp.text())
            return await resp.json()

    async def post_file(self, path: str, data: bytes, **fields: Any) -> Any:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, str(value))
        form.add_field("file", data, filename=fields.get("filename", "shot.png"))
        async with self.http.post(self.base + path, data=form) as resp:
            assert resp.status == 200, (path, resp.status, await resp.text())
            return await resp.json()

    async def get(self, path: str, **params: Any) -> Any:
        async with self.http.get(self.base + path, params={k: str(v) for k, v in params.items()}) as resp:
            assert resp.status == 200, (path, resp.status, await resp.text())
            return await resp.json()

    async def wait(self, update_id: int, timeout: float = 15) -> None:
        params = {"update_id": str(update_id), "timeout": str(timeout)}
        async with self.http.get(self.base + "wait", params=params) as resp:
            assert resp.status == 200, f"update {update_id} was not confirmed within {timeout}s"

    async def messages(self, chat_id: int, after: int = 0) -> list[dict[str, Any]]:
        return list(await self.get("messages", chat_id=chat_id, after=after))


@dataclass
class Customer:
    control: Control
    user_id: int
    language_code: str = "zh-hans"
    seen: int = 0  # highest bot message id already read
    last_update: int = 0
    transcript: list[str] = field(default_factory=list)

    async def register(self, first_name: str = "Test") -> Customer:
        await self.control.post("users", user_id=self.user_id, first_name=first_name,
                                language_code=self.language_code)
        return self

    # > 0 for a bot whose polling confirms an update before handling it (aiogram's and PTB's own, in an
    # operator's bot): then an answer is awaited until one appears and nothing more comes for `settle` s.
    settle: float = 0

    async def _after(self, sent: dict[str, Any]) -> list[dict[str, Any]]:
        self.last_update = sent["update_id"]
        await self.control.wait(sent["update_id"])
        if self.settle:
            deadline = asyncio.get_running_loop().time() + 15
            while not await self.control.messages(self.user_id, after=self.seen):
                assert asyncio.get_running_loop().time() < deadline, f"no answer; the bot said {self.transcript[-3:]}"
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.settle)
        return await self.read()

    async def read(self) -> list[dict[str, Any]]:
        new = await self.control.messages(self.user_id, after=self.seen)
        if new:
            self.seen = max(m["message_id"] for m in new)
        self.transcript.extend(m.get("text") or "" for m in new)
        return new

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self._after(await self.control.post("send_text", user_id=self.user_id, text=text))

    async def send_nowait(self, text: str) -> int:
        sent = await self.control.post("send_text", user_id=self.user_id, text=text)
        return int(sent["update_id"])

    async def press(self, label: str) -> list[dict[str, Any]]:
        message = await self.message_with_button(label)
        return await self._after(await self.control.post(
            "press", user_id=self.user_id, message_id=message["message_id"], button_text=label))

    async def press_data(self, message_id: int, data: str) -> list[dict[str, Any]]:
        return await self._after(await self.control.post("press", user_id=self.user_id, message_id=message_id,
                                                         data=data))

    async def photo(self, data: bytes) -> list[dict[str, Any]]:
        return await self._after(await self.control.post_file("send_photo", data, user_id=self.user_id))

    async def document(self, data: bytes, filename: str, mime_type: str) -> list[dict[str, Any]]:
        return await self._after(await self.control.post_file(
            "send_document", data, user_id=self.user_id, filename=filename, mime_type=mime_type))

    async def other(self, kind: str) -> list[dict[str, Any]]:
        return await self._after(await self.control.post(f"send_{kind}", user_id=self.user_id))

    async def message_with_button(self, label: str) -> dict[str, Any]:
        for message in reversed(await self.control.messages(self.user_id)):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                if any(b["text"] == label for b in row):
                    return message
        raise AssertionError(f"no message with a {label!r} button; the bot said: {self.transcript[-3:]}")

    async def toast(self) -> str | None:
        answers = [a for a in await self.control.get("callback_answers") if a["answered"]]
        return (answers[-1]["answer"] or {}).get("text") if answers else None


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


def buttons(messages: list[dict[str, Any]]) -> list[str]:
    return [b["text"] for m in messages for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
            for b in row]


@dataclass
class BotHandle:
    running: Running
    task: asyncio.Task[None]
    stop: asyncio.Event

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    """The library the bot runs on. Every end-to-end test uses it (through `start_bot` or by hand), so
    each scenario runs on both; tests/test_framework_parity.py fails a scenario that runs on one only."""
    return str(request.param)


def on_framework(config: AppConfig, framework: str) -> AppConfig:
    return config.model_copy(update={"telegram": config.telegram.model_copy(update={"framework": framework})})


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(host="127.0.0.1", port=0) as emu:
        yield emu


@pytest.fixture
async def control(emulator: Emulator) -> AsyncIterator[Control]:
    async with aiohttp.ClientSession() as session:
        yield Control(emulator.base_url, session)


@pytest.fixture
async def start_bot(emulator: Emulator, tmp_path: Path, framework: str):  # type: ignore[no-untyped-def]
    """Start the real bot on the emulator, on `framework`; stops every bot it started at teardown."""
    handles: list[BotHandle] = []
    stacks: list[Any] = []

    async def start(config: AppConfig | None = None, demo: bool = True) -> BotHandle:
        config = on_framework(config or make_config(tmp_path), framework)
        context = running_bot(config, TOKEN, emulator.base_url)
        running = await context.__aenter__()
        stacks.append(context)
        if demo:
            await seed_demo_orders(running.database)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(running, config, stop))
        handle = BotHandle(running, task, stop)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        if not handle.task.done():
            await handle.shutdown()
    for context in reversed(stacks):
        await context.__aexit__(None, None, None)


@pytest.fixture
async def bot(start_bot):  # type: ignore[no-untyped-def]
    return await start_bot()


@pytest.fixture
def customer(control: Control):  # type: ignore[no-untyped-def]
    async def make(user_id: int = 10001, language_code: str = "zh-hans") -> Customer:
        return await Customer(control, user_id, language_code).register()

    return make
