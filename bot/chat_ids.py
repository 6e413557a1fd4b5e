"""/id in a group: the chat's id, the sender's user id and whether the chat is a forum, so an operator
can find the ids `[desk] chat_id`, `agents` and `supervisors` want. Answered to the group's
administrators (getChatMember) and to the desk's staff; anyone else gets nothing (a group is not
spammed with refusals)."""

from __future__ import annotations

import logging

from bot.sending import Sender, SendError
from dialogs.io import Event, EventKind
from dialogs.roster import current_desk
from dialogs.service import RefundService
from dialogs.texts import Texts, pick_locale

log = logging.getLogger(__name__)
ADMINS = frozenset({"creator", "administrator"})


def asks_id(event: Event) -> bool:
    return event.kind is EventKind.COMMAND and not event.private and not event.edited and event.text.lower() == "id"


async def answer_id(service: RefundService, sender: Sender, event: Event) -> None:
    now = service.clock()
    async with service.uow_factory() as uow:
        if not await uow.updates.claim(event.update_id, event.chat_id, now):
            return  # answered before
        desk = await current_desk(uow, service.settings.desk, now)
        await uow.commit()
    allowed = desk.is_agent(event.user_id)
    if not allowed:
        try:
            allowed = await sender.member_status(event.chat_id, event.user_id) in ADMINS
        except SendError as exc:
            log.info("/id: no membership for %s in %s (%r)", event.user_id, event.chat_id, exc)
    if not allowed:
        return
    t = Texts(pick_locale(event.language_code, service.settings.i18n.default_locale))
    text = t("desk.id_answer", chat=str(event.chat_id), user=str(event.user_id),
             forum=t("desk.id_forum_yes" if event.forum else "desk.id_forum_no"))
    try:
        await sender.send(event.chat_id, text, thread_id=event.thread_id)
    except SendError as exc:  # not worth a retry: the operator asks again
        log.info("/id: the answer in %s did not go (%r)", event.chat_id, exc)
