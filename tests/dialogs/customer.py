"""A customer in a private chat with the bot, driving `RefundService.handle` on the fakes: the events
the adapter would build, and the buttons of the last answer to press."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dialogs.domain import Case, CaseStatus, Conversation
from dialogs.io import Event, EventKind, FileInspection, FileRef, Outcome
from dialogs.service import RefundService
from dialogs.settings import CoreSettings
from dialogs.texts import Texts
from tests.fakes import FakeDatabase
from tests.storage.factories import T0, make_case, make_order

ZH = Texts("zh_CN")
CUSTOMER = 424242  # make_order's buyer and make_case's chat and user
STRANGER = 777
NUMBER = "KM20261124000001"  # a number the default settings' pattern accepts
NOW = T0 + timedelta(hours=1)  # inside the card claim window of make_order's purchase
_updates = itertools.count(1)


class Customer:
    def __init__(self, service: RefundService, chat_id: int = CUSTOMER, language: str = "zh-hans") -> None:
        self.service, self.chat_id, self.language = service, chat_id, language
        self.last = Outcome()

    def event(self, kind: EventKind, text: str = "", **more: Any) -> Event:
        return Event(update_id=next(_updates), chat_id=self.chat_id, user_id=self.chat_id, kind=kind, at=NOW,
                     text=text, language_code=self.language, **more)

    async def send(self, event: Event) -> Outcome:
        self.last = await self.service.handle(event)
        return self.last

    async def says(self, text: str) -> Outcome:
        return await self.send(self.event(EventKind.TEXT, text))

    async def command(self, name: str, args: str = "") -> Outcome:
        return await self.send(self.event(EventKind.COMMAND, name, args=args))

    async def presses(self, token: str) -> Outcome:
        return await self.send(self.event(EventKind.BUTTON, token))

    def button(self, action: str) -> str:
        """The token of the last answer's button for `action` (the part after the prompt's nonce)."""
        tokens = [b.token for reply in self.last.replies for row in reply.buttons for b in row]
        found = [t for t in tokens if t.split(".", 1)[1] == action]
        assert found, f"no {action!r} button in {tokens}"
        return found[0]

    async def photo(self, unique_id: str, *, ok: bool = True) -> Outcome:
        inspection = FileInspection(ok=ok, problem=None if ok else "not_image", path=f"data/{unique_id}.jpg",
                                    sha256=unique_id.ljust(64, "0"), mime_type="image/jpeg", width=800,
                                    height=600, size=1000)
        file = FileRef(file_id=f"file-{unique_id}", file_unique_id=unique_id, inspection=inspection)
        return await self.send(self.event(EventKind.PHOTO, file=file))

    def texts(self) -> list[str]:
        return [r.text for r in self.last.replies if not r.edit]


def service(database: FakeDatabase, settings: CoreSettings | None = None, at: datetime = NOW) -> RefundService:
    return RefundService(database.uow, settings or CoreSettings(), clock=lambda: at)


async def with_order(database: FakeDatabase, order_no: str = NUMBER, **changes: Any) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(order_no, **changes))
        await uow.commit()


async def with_case(database: FakeDatabase, status: CaseStatus, case_no: str = "R20261124-0001",
                    **changes: Any) -> Case:
    async with database.uow() as uow:
        if await uow.orders.get(NUMBER) is None:
            await uow.orders.upsert(make_order(NUMBER))
        case = make_case(case_no, NUMBER, status=status, locale="zh_CN", **changes)
        await uow.cases.add(case)
        await uow.commit()
    return replace(case, version=1)


async def conversation(database: FakeDatabase, chat_id: int = CUSTOMER) -> Conversation | None:
    async with database.uow() as uow:
        return await uow.conversations.load(chat_id)


async def case_of(database: FakeDatabase, case_no: str = "R20261124-0001") -> Case:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case
