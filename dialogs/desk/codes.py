""""查看卡密" / "Show codes": an agent (supervisors are agents) asks for a case's delivered 卡密 and the bot
posts them whole in the case's topic. Every view is an event in the case's history ("客服小李 查看了卡密")
and a row in the desk's audit, so who saw a code is never a guess. Anyone else's press is refused before
anything is read (dialogs.desk.service._act) and changes nothing.

The codes come from the case's snapshot (Case.delivered_codes, kept when it was filed), not from the
order as the shop has it now. Only the topic gets them: a private chat or General gets the short answer.
"""

from __future__ import annotations

from dialogs.desk.base import DeskBase, Turn
from dialogs.domain import DeskItem
from dialogs.ports import UnitOfWork

ACTION = "codes"


class CodeViews(DeskBase):
    async def _show_codes(self, uow: UnitOfWork, turn: Turn, item: DeskItem) -> None:
        ev, now = turn.event, turn.now
        case = await uow.cases.get(item.case_no) if item.case_no is not None else None
        if case is None or not case.delivered_codes:
            await self._answer(uow, turn, "dk.codes.none", {"case": item.key})
            return
        await self._record(uow, ev.user_id, item, "codes", now)
        stamp = f"u{ev.update_id}"
        await self._desk_text(uow, item.key, "dk.codes.shown",
                              {"agent": self.label(ev.user_id, ev.user_name), "case_no": case.case_no,
                               "count": str(len(case.delivered_codes)), "codes": "\n".join(case.delivered_codes)},
                              now, f"desk:{item.key}:codes:{stamp}")
        await self._card(uow, item.key, now, stamp)  # its history now says who looked
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "dk.codes.posted")
