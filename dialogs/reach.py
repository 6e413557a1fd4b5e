"""Whether the bot can write to a chat now. A 403 (the customer blocked the bot, the bot was removed
from the desk group) or Telegram's my_chat_member saying so *holds* the chat: the relay keeps its
outbox rows unsent, in order, and sends nothing more there. It is not forever: any update from a
private chat (the customer wrote again) or my_chat_member saying the bot is back *reopens* it, and
what was held goes out (the status card edited or sent anew, the news in order).

While a customer's chat is held their needs_info clock does not run: a reminder or the silence close
that comes due then does nothing, and reopening gives each needs_info case its clock anew
(dialogs.sla). The desk's supervisors hear, in their private chats with the bot, once when the desk
becomes unreachable and once when it is back.
"""

from __future__ import annotations

from datetime import datetime

from dialogs.domain import OutboxMessage
from dialogs.outbox import CUSTOMER_TEXT
from dialogs.ports import UnitOfWork
from dialogs.roster import current_desk
from dialogs.settings import CoreSettings
from dialogs.sla import restart_info_clock

# my_chat_member statuses: the bot may write again / may not.
PRESENT = frozenset({"member", "administrator", "creator"})
GONE = frozenset({"kicked", "left"})


async def chat_lost(uow: UnitOfWork, chat_id: int, at: datetime, reason: str, settings: CoreSettings) -> bool:
    """Record the chat as held (the relay holds its rows); False when it already was."""
    if not await uow.chats.mark_blocked(chat_id, at=at, reason=reason):
        return False
    if _is_desk(chat_id, settings):
        await _tell_supervisors(uow, settings, "desk.unreachable", at, {"reason": reason})
    return True


async def chat_back(uow: UnitOfWork, chat_id: int, at: datetime, settings: CoreSettings) -> bool:
    """Reopen a held chat: its held rows are due again, a customer's needs_info clocks start anew, the
    supervisors hear the desk is back. False (and nothing done) when the chat was not held."""
    if not await uow.chats.unblock(chat_id):
        return False
    await uow.outbox.release_held(chat_id, at=at)
    if _is_desk(chat_id, settings):
        await _tell_supervisors(uow, settings, "desk.reachable", at, {})
    elif chat_id > 0:
        await restart_info_clock(uow, chat_id, at, settings)
    return True


def _is_desk(chat_id: int, settings: CoreSettings) -> bool:
    return bool(settings.desk.chat_id) and chat_id == settings.desk.chat_id


async def _tell_supervisors(uow: UnitOfWork, settings: CoreSettings, text_key: str, at: datetime,
                            params: dict[str, str]) -> None:
    # One message per supervisor per change: the key names the moment it was recorded.
    for supervisor in (await current_desk(uow, settings.desk, at)).supervisors:  # the staff of now
        await uow.outbox.add(OutboxMessage(
            kind=CUSTOMER_TEXT, chat_id=supervisor, dedupe_key=f"reach:{settings.desk.chat_id}:{text_key}:"
                                                               f"{at.isoformat()}:{supervisor}",
            payload={"text_key": text_key, "params": params, "locale": settings.i18n.default_locale},
            created_at=at))
