"""Chats the relay cannot write to (403: the user blocked the bot, the bot is out of the group).

The chat is recorded as held (dialogs.reach: the desk's supervisors hear of it once) and its rows wait
unsent, in order, until the chat is reopened (the user writes again, my_chat_member says the bot is
back); nothing is retried blindly meanwhile. Rows of a chat already held are held as they are claimed.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialogs.clock import Clock
from dialogs.domain import Delivery
from dialogs.ports import UnitOfWork, UnitOfWorkFactory
from dialogs.reach import chat_lost
from dialogs.settings import CoreSettings

HELD_AT_CLAIM = "the chat is blocked: held until it is reopened"


async def hold_rows_of_held_chats(uow: UnitOfWork, claimed: Sequence[Delivery]) -> set[int]:
    """In the claim's unit of work: hold the claimed rows of chats already held; returns those chats."""
    blocked = await uow.chats.blocked(d.chat_id for d in claimed if d.chat_id is not None)
    for delivery in claimed:
        if delivery.chat_id in blocked:  # held until the chat is reopened (dialogs.reach)
            await uow.outbox.hold(delivery.id, error=HELD_AT_CLAIM)
    return blocked


async def hold_chat(uow: UnitOfWorkFactory, chat_id: int, deliveries: Sequence[Delivery], description: str,
                    wall_clock: Clock, settings: CoreSettings) -> None:
    """A 403 from `chat_id`: record the chat as held, and hold `deliveries` (its rows in hand)."""
    error = f"403: {description}"
    async with uow() as work:
        await chat_lost(work, chat_id, wall_clock(), description, settings)
        for delivery in deliveries:
            await work.outbox.hold(delivery.id, error=error)
        await work.commit()
