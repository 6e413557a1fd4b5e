"""The desk's people: /agents (a supervisor adds and removes agents; everyone on the desk may list
them), and /ban, /mute, /unban on the customer of the topic's case (dialogs.moderation tells the
customer). Staff changes go to the staff audit (dialogs.roster) and the desk audit; moderation to the
desk audit and the case's history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from dialogs import roster
from dialogs.desk.auth import Refusal
from dialogs.desk.base import DeskBase, Turn
from dialogs.io import Reply
from dialogs.ports import Restriction, UnitOfWork

STAFF_COMMANDS = frozenset({"agents", "ban", "mute", "unban"})
MUTE_MAX_HOURS = 24 * 30
ALIAS_MAX = 64


class Staffing(DeskBase):
    """/agents, /ban, /mute, /unban (the sender is an agent: DeskService checked)."""

    async def _staff_command(self, uow: UnitOfWork, turn: Turn, name: str, args: str) -> None:
        if name == "agents":
            await self._agents(uow, turn, args)
        else:
            await self._moderate(uow, turn, name, args)

    # -- /agents ----------------------------------------------------------------------------------
    async def _agents(self, uow: UnitOfWork, turn: Turn, args: str) -> None:
        verb, _, rest = args.partition(" ")
        verb = verb.lower()
        if verb in ("", "list"):
            await self._list_agents(turn)
            return
        if verb not in ("add", "remove"):
            await self._answer(uow, turn, "desk.staff_usage")
            return
        if not self.desk.is_supervisor(turn.event.user_id):
            await self._refuse(uow, turn, f"agents_{verb}", None, Refusal("desk.staff_refused"))
            return
        words = rest.split()
        target = turn.event.reply_to_user
        if words and words[0].isdigit():
            target = int(words.pop(0))
        if target is None or target <= 0:
            await self._answer(uow, turn, "desk.staff_usage")
            return
        if verb == "remove":
            await self._remove_agent(uow, turn, target)
            return
        supervisor = bool(words) and words[0].lower() in ("supervisor", "主管")
        if supervisor:
            words.pop(0)
        alias = " ".join(words).strip() or None
        if alias is not None and len(alias) > ALIAS_MAX:
            await self._answer(uow, turn, "desk.staff_alias_long", {"max": str(ALIAS_MAX)})
            return
        member = await roster.add(uow, self.settings.desk, target, supervisor=supervisor, alias=alias,
                                  by=self.actor(turn.event), at=turn.now)
        await uow.desk.audit(actor_id=turn.event.user_id, key=None, action="agents_add", allowed=True, at=turn.now,
                             detail=f"{target} {member.role} {alias or ''}".strip())
        label = alias or str(target)
        await self._answer(uow, turn, "desk.staff_added_supervisor" if supervisor else "desk.staff_added",
                           {"user": str(target), "alias": label})

    async def _remove_agent(self, uow: UnitOfWork, turn: Turn, target: int) -> None:
        if target == turn.event.user_id:  # a desk must not lose its last supervisor to a slip
            await self._answer(uow, turn, "desk.staff_not_yourself")
            return
        if not await roster.remove(uow, self.settings.desk, target, by=self.actor(turn.event), at=turn.now):
            await self._answer(uow, turn, "desk.staff_unknown", {"user": str(target)})
            return
        await uow.desk.audit(actor_id=turn.event.user_id, key=None, action="agents_remove", allowed=True,
                             at=turn.now, detail=str(target))
        await self._answer(uow, turn, "desk.staff_removed", {"user": str(target)})

    async def _list_agents(self, turn: Turn) -> None:
        t, desk = self.t, self.desk
        lines = [t("desk.staff_header")]
        for user_id in dict.fromkeys(desk.agents + desk.supervisors):
            role = t("desk.staff_supervisor") if desk.is_supervisor(user_id) else t("desk.staff_agent")
            lines.append(t("desk.staff_line", user=str(user_id), alias=desk.alias(user_id, t.locale), role=role))
        turn.replies.append(Reply("\n".join(lines)))

    # -- /ban, /mute, /unban -----------------------------------------------------------------------
    async def _moderate(self, uow: UnitOfWork, turn: Turn, name: str, args: str) -> None:
        item = turn.topic_item
        if item is None or turn.event.private:
            await self._answer(uow, turn, "desk.moderation_in_topic", {"command": name})
            return
        until, hours = None, None
        if name == "mute":
            hours = _hours(args)
            if hours is None:
                await self._answer(uow, turn, "desk.moderation_mute_usage", {"max": str(MUTE_MAX_HOURS)})
                return
            until = turn.now + timedelta(hours=float(hours))
        await self._lock(uow, item)
        if name == "unban":
            if not await uow.moderation.lift(item.chat_id):
                await self._answer(uow, turn, "desk.moderation_none", {"case": item.key})
                return
            await self._record(uow, turn.event.user_id, item, "unban", turn.now)
            await self._answer(uow, turn, "desk.moderation_lifted", {"case": item.key})
            return
        if until is None:
            reason = args.strip()[:500]
            await uow.moderation.put(Restriction(chat_id=item.chat_id, kind="ban", reason=reason,
                                                 by=self.actor(turn.event), at=turn.now))
            await self._record(uow, turn.event.user_id, item, "ban", turn.now, reason)
            await self._answer(uow, turn, "desk.moderation_banned", {"case": item.key})
        else:
            await uow.moderation.put(Restriction(chat_id=item.chat_id, kind="mute", reason=f"{hours} h",
                                                 by=self.actor(turn.event), at=turn.now, until=until))
            await self._record(uow, turn.event.user_id, item, "mute", turn.now, str(hours))
            await self._answer(uow, turn, "desk.moderation_muted", {"case": item.key, "hours": str(hours)})


def _hours(text: str) -> Decimal | None:
    """A mute's length in hours: a positive number up to MUTE_MAX_HOURS (at most one decimal)."""
    word = text.strip().lower().removesuffix("h").strip()
    try:
        hours = Decimal(word)
    except InvalidOperation:
        return None
    if not hours.is_finite() or hours <= 0 or hours > MUTE_MAX_HOURS or hours != hours.quantize(Decimal("0.1")):
        return None
    return hours.quantize(Decimal(1)) if hours == hours.to_integral() else hours
