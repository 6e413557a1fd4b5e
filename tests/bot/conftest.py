"""The emulator and an aiogram Bot on it, for the relay's and the desk delivery's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from sandbox import Emulator, EmulatorState
from tests.sandbox.conftest import make_bot


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, state=EmulatorState(update_id_base=1)) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: Emulator) -> AsyncIterator[Bot]:
    b = make_bot(emu)
    try:
        yield b
    finally:
        await b.session.close()
