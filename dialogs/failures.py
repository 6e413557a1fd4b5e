"""The last answer to an update the core cannot handle (bad stored data, a bug): the customer hears, in
their language, that the request cannot be handled now and that support knows; the supervisors get an alert
through the outbox naming the chat and update. Said once per update: the update is claimed with it, so a
re-delivery does not run (and fail) again."""

from __future__ import annotations

from datetime import datetime

from dialogs.domain import OutboxMessage
from dialogs.io import Event, Outcome, Reply
from dialogs.outbox import CUSTOMER_TEXT
from dialogs.ports import UnitOfWork
from dialogs.roster import current_desk
from dialogs.settings import CoreSettings
from dialogs.texts import Texts, pick_locale


async def give_up(uow: UnitOfWork, settings: CoreSettings, event: Event, why: str, at: datetime) -> Outcome:
    """Claim `event`, queue the supervisors' alert and return the customer's answer (none outside private
    chats, nor for an update claimed already). The caller commits."""
    if not await uow.updates.claim(event.update_id, event.chat_id, at):
        return Outcome(duplicate=True)
    for supervisor in await _supervisors(uow, settings, at):
        await uow.outbox.add(OutboxMessage(
            kind=CUSTOMER_TEXT, chat_id=supervisor, dedupe_key=f"update_failed:{event.update_id}:{supervisor}",
            payload={"text_key": "alert.update_failed", "locale": settings.i18n.default_locale,
                     "params": {"chat_id": str(event.chat_id), "update_id": str(event.update_id),
                                "why": why[:200]}},
            created_at=at))
    if not event.private:
        return Outcome()
    locale = pick_locale(event.language_code, settings.i18n.default_locale)
    text = Texts(locale)("update_failed")
    return Outcome(replies=(Reply(text),), toast=text if event.callback_id is not None else None)


async def _supervisors(uow: UnitOfWork, settings: CoreSettings, at: datetime) -> list[int]:
    # The supervisors' chat where there is one (as for the money alerts), else each supervisor on the roster.
    if settings.sla.supervisors_chat_id:
        return [settings.sla.supervisors_chat_id]
    return list((await current_desk(uow, settings.desk, at)).supervisors)
