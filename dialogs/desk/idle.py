"""The idle clock: an owner quiet for `idle_remind_minutes` is reminded once, and after
`idle_release_minutes` the item goes back to the queue and the customer's chat back to the bot
(bot/workers/desk_idle.py runs it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from dialogs.desk.takeover import Takeover
from dialogs.domain import DeskItem
from dialogs.ports import UnitOfWork


class IdleNudges(Takeover):
    """What the desk sweeper asks: which owners went quiet, and what to do about each."""

    async def idle_items(self, uow: UnitOfWork, now: datetime) -> list[DeskItem]:
        """Owned items whose owner has been quiet past the reminder (the sweeper nudges each)."""
        return await uow.desk.idle_owned(now - timedelta(minutes=self.desk.idle_remind_minutes))

    async def nudge(self, uow: UnitOfWork, key: str, now: datetime) -> str:
        """Remind a quiet owner once, hand the item back to the queue after idle_release_minutes.
        Returns "reminded", "released" or "" (nothing due: the owner spoke up meanwhile)."""
        seen = await uow.desk.get(key)
        if seen is None or seen.owner_id is None:
            return ""
        await uow.conversations.load(seen.chat_id)  # the lock order of DeskService._lock
        item = await uow.desk.get(key, for_update=True)
        if item is None or item.owner_id is None or item.closed_at is not None or item.owner_active_at is None:
            return ""
        quiet = now - item.owner_active_at
        stamp = f"{item.owner_id}:{item.owner_active_at.timestamp():.0f}"
        async with self.staffed(uow, now):
            agent = self.label(item.owner_id)
        if quiet >= timedelta(minutes=self.desk.idle_release_minutes):
            await self._end_takeover(uow, item, now, "desk.customer_released", f"idle:{stamp}")
            await self._record(uow, item.owner_id, item, "idle_release", now,
                               f"quiet for {int(quiet.total_seconds() // 60)} min")
            await self._desk_text(uow, key, "desk.idle_released",
                                  {"agent": agent, "case": key, "minutes": str(self.desk.idle_release_minutes)},
                                  now, f"desk:{key}:idle-released:{stamp}")
            await self._card(uow, key, now, f"idle:{stamp}")
            return "released"
        if quiet >= timedelta(minutes=self.desk.idle_remind_minutes) and item.reminded_at is None:
            await uow.desk.mark_reminded(key, at=now)
            await self._desk_text(uow, key, "desk.idle_reminder",
                                  {"agent": agent, "case": key, "minutes": str(int(quiet.total_seconds() // 60)),
                                   "release": str(self.desk.idle_release_minutes)},
                                  now, f"desk:{key}:reminder:{stamp}")
            return "reminded"
        return ""
