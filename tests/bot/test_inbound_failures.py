"""bot.inbound's last answer, on the real core and a real SQLite: an update that fails now and then is simply
retried (the customer sees the normal answer, nobody is alerted); one that fails GIVE_UP_AFTER times gets
the polite answer once and one supervisors' alert, and a re-delivery after that does nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.evidence import EvidenceIntake
from bot.inbound import GIVE_UP_AFTER, Inbound
from dialogs.io import Event, EventKind, Outcome
from dialogs.outbox import CUSTOMER_TEXT
from dialogs.service import FileFetch, RefundService
from dialogs.settings import CoreSettings, SlaSettings
from dialogs.texts import Texts
from storage.models import OutboxRow
from storage.uow import Database

SUPERVISORS = -100500
CHAT = 424242
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


class Flaky(RefundService):
    """The real service, made to fail its first `fails` calls (what bad stored data does every time)."""

    fails = 0

    async def handle(self, event: Event, fetch_file: FileFetch | None = None) -> Outcome:
        if self.fails:
            self.fails -= 1
            raise OverflowError("date value out of range")
        return await super().handle(event, fetch_file)


class Sent:
    def __init__(self) -> None:
        self.texts: list[tuple[int, str]] = []

    async def send(self, chat_id: int, text: str, buttons: Any = (), **_: Any) -> int:
        self.texts.append((chat_id, text))
        return len(self.texts)

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        return None


def event(update_id: int = 7) -> Event:
    return Event(update_id=update_id, chat_id=CHAT, user_id=CHAT, kind=EventKind.COMMAND, text="/start",
                 at=datetime(2026, 11, 24, tzinfo=UTC), language_code="en")


async def alerts(database: Database) -> list[dict[str, Any]]:
    async with database.uow() as uow:
        rows = await uow.session.scalars(select(OutboxRow).where(OutboxRow.kind == CUSTOMER_TEXT))  # type: ignore[attr-defined]
        return [row.payload for row in rows if row.chat_id == SUPERVISORS]


def inbound(database: Database, tmp_path: Path, fails: int) -> tuple[Inbound, Sent]:
    service = Flaky(database.uow, CoreSettings(sla=SlaSettings(supervisors_chat_id=SUPERVISORS)))
    service.fails = fails
    sent = Sent()
    return Inbound(service, EvidenceIntake(tmp_path, service.settings.policy), sent), sent  # type: ignore[arg-type]


async def test_an_update_that_fails_now_and_then_is_retried_and_answered_normally(
        database: Database, tmp_path: Path) -> None:
    handler, sent = inbound(database, tmp_path, GIVE_UP_AFTER - 1)
    for _ in range(GIVE_UP_AFTER - 1):
        with pytest.raises(OverflowError):
            await handler.handle(event())  # raised: the poller (or Telegram) delivers it again
    await handler.handle(event())
    assert sent.texts and Texts("en")("update_failed") not in [text for _, text in sent.texts]
    assert await alerts(database) == []
    assert handler.failures == {}


async def test_an_update_that_keeps_failing_gets_one_polite_answer_and_one_alert(
        database: Database, tmp_path: Path) -> None:
    handler, sent = inbound(database, tmp_path, 100)
    for _ in range(GIVE_UP_AFTER - 1):
        with pytest.raises(OverflowError):
            await handler.handle(event())
    await handler.handle(event())  # the last try: answered, not raised
    assert sent.texts == [(CHAT, Texts("en")("update_failed"))]
    [alert] = await alerts(database)
    assert alert["text_key"] == "alert.update_failed" and alert["params"]["chat_id"] == str(CHAT)
    assert "OverflowError" in alert["params"]["why"]
    for _ in range(GIVE_UP_AFTER):  # delivered again: claimed with the answer, so nothing more is said
        try:
            await handler.handle(event())
        except OverflowError:
            pass
    assert len(sent.texts) == 1 and len(await alerts(database)) == 1
