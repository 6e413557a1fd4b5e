"""A banned or muted customer: their updates change nothing. The bot says so once (per mute, or per day
for a ban) in the customer's language, and otherwise stays silent; a button press gets the notice as
its toast the first time and nothing after. The desk bans and mutes (dialogs.desk.staffing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from dialogs.io import Event, EventKind, Outcome, Reply
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.texts import Texts, pick_locale, when

BAN_NOTICE_EVERY = timedelta(days=1)


async def held(uow: UnitOfWork, event: Event, now: datetime, settings: CoreSettings) -> Outcome | None:
    """None when the chat may go on (one lookup by key); else what the customer hears, the notice
    recorded (the caller commits)."""
    restriction = await uow.moderation.get(event.chat_id)
    if restriction is None or not restriction.active(now):
        return None
    noticed = restriction.noticed_at
    due = noticed is None if restriction.until is not None else noticed is None or now - noticed >= BAN_NOTICE_EVERY
    if not due or event.edited:
        return Outcome()
    conv = await uow.conversations.load(event.chat_id)
    t = Texts(conv.locale if conv else pick_locale(event.language_code, settings.i18n.default_locale))
    if restriction.until is None:
        notice = t("moderation.banned")
    else:
        notice = t("moderation.muted", until=when(restriction.until, settings.i18n.timezone))
    await uow.moderation.noticed(event.chat_id, at=now)
    if event.kind is EventKind.BUTTON:
        return Outcome(toast=notice, locale=t.locale)
    return Outcome(replies=(Reply(notice),), locale=t.locale)
