"""/queue: the open items, oldest first, with a Take over button for the first unowned ones."""

from __future__ import annotations

from datetime import timedelta

from dialogs.desk.base import DeskBase, Turn
from dialogs.desk.commands import desk_token
from dialogs.io import Button, Reply
from dialogs.ports import UnitOfWork

_QUEUE_SHOWN = 30
_QUEUE_BUTTONS = 8


class DeskQueue(DeskBase):
    """The /queue answer."""

    async def _show_queue(self, uow: UnitOfWork, turn: Turn) -> None:
        t = self.t
        rows = await uow.desk.queue(limit=_QUEUE_SHOWN + 1)
        if not rows:
            await self._answer(uow, turn, "desk.queue_empty")
            return
        lines = [t("desk.queue_header", count=str(min(len(rows), _QUEUE_SHOWN)))]
        buttons: list[tuple[Button, ...]] = []
        for item, case in rows[:_QUEUE_SHOWN]:
            lines.append(t(
                "desk.queue_line", case=item.key,
                status=t(f"status.{case.status.value}") if case else t("desk.request"),
                due=case.review_due.isoformat() if case else t("desk.no_due"),
                age=self._age(turn.now - item.opened_at),
                owner=self.label(item.owner_id) if item.owner_id is not None else t("desk.unowned")))
            if item.owner_id is None and len(buttons) < _QUEUE_BUTTONS:
                buttons.append((Button(t("desk.queue_take", case=item.key), desk_token(item.key, "take")),))
        if len(rows) > _QUEUE_SHOWN:
            lines.append(t("desk.queue_more"))
        # A direct reply: in a private chat, or in General (asked in a topic, it goes to General too).
        turn.replies.append(Reply("\n".join(lines), tuple(buttons)))

    def _age(self, age: timedelta) -> str:
        minutes = max(0, int(age.total_seconds() // 60))
        if minutes < 60:
            return self.t("desk.age_minutes", n=str(minutes))
        if minutes < 48 * 60:
            return self.t("desk.age_hours", n=str(minutes // 60))
        return self.t("desk.age_days", n=str(minutes // (24 * 60)))
