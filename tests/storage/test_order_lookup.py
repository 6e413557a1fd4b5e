"""Order lookup through `RefundService.handle` on the real database (SQLite and PostgreSQL): the parts
Telegram adds nothing to; tests/e2e/test_order_ownership.py drives the same flow through the emulator."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

from dialogs.io import Event, EventKind
from dialogs.service import RefundService
from dialogs.settings import CoreSettings
from dialogs.texts import Texts
from storage.uow import Database
from tests.storage.factories import make_order

SETTINGS = CoreSettings()
ZH = Texts("zh_CN")
NUMBER = "KM20261101000015"
_updates = itertools.count(1)


def said(chat: int, text: str) -> Event:
    return Event(update_id=next(_updates), chat_id=chat, user_id=chat, kind=EventKind.TEXT,
                 at=datetime.now(UTC), text=text, language_code="zh-hans")


async def test_two_chats_guessing_the_last_try_at_once_get_one_check_between_them(database: Database) -> None:
    # Four failures on record: the limit of five leaves one guess. Two chats (two bot processes)
    # send digits at the same moment: the second must wait for the first and find the number
    # paused, not check its digits too.
    now = datetime.now(UTC)
    window = timedelta(minutes=SETTINGS.orders.failed_lookup_window_minutes)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(NUMBER, buyer_telegram_id=None))
        for _ in range(SETTINGS.orders.max_failed_lookups - 1):
            await uow.lookups.record(NUMBER, at=now, window=window, forget_before=now - window)
        await uow.commit()
    services = [RefundService(database.uow, SETTINGS) for _ in range(2)]
    for chat, service in zip((1, 2), services, strict=True):
        outcome = await service.handle(said(chat, NUMBER))
        assert [r.text for r in outcome.replies] == [ZH("ask_phone")]

    await asyncio.gather(*(service.handle(said(chat, "0000"))
                           for chat, service in zip((1, 2), services, strict=True)))

    async with database.uow() as uow:
        tally = await uow.lookups.get(NUMBER)
    assert tally is not None and tally.failures == SETTINGS.orders.max_failed_lookups
