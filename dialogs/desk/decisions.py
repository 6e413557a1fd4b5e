"""The desk's verdicts: approve (above `desk.confirm_above` only once a second person, a supervisor,
confirms), reject (typed, or a canned reason picked from buttons) and ask for more material. Each goes
through the case workflow, ends a takeover and takes the item off the queue until the case needs a
person again.
"""

from __future__ import annotations

from decimal import Decimal

from dialogs import ledger
from dialogs.desk.base import TOAST_MAX, Turn
from dialogs.desk.cards import ASKABLE, DECIDABLE, clip
from dialogs.desk.commands import desk_token, parse_amount
from dialogs.desk.takeover import Takeover
from dialogs.domain import Case, CaseStatus, DeskItem
from dialogs.io import Button, EventKind, Reply
from dialogs.ledger import AttemptInFlight, NothingToRefund
from dialogs.outbox import DESK_TEXT
from dialogs.ports import UnitOfWork
from dialogs.texts import money

C = CaseStatus
LABEL_MAX = 40  # characters of a canned reason on its button


class Decisions(Takeover):
    """Approve, confirm, reject and ask, each checked against the case's status and the order's ledger."""

    async def _case(self, uow: UnitOfWork, turn: Turn, item: DeskItem) -> Case | None:
        assert item.case_no is not None
        case = await uow.cases.get(item.case_no)
        if case is None:
            await self._answer(uow, turn, "desk.unknown_item", {"case": item.key})
        return case

    async def _cannot(self, uow: UnitOfWork, turn: Turn, case: Case, command: str) -> None:
        await self._answer(uow, turn, "desk.cannot", {"case": case.case_no, "command": command,
                                                       "status": self.t(f"status.{case.status.value}")})

    async def _max_refund(self, uow: UnitOfWork, case: Case) -> Decimal:
        """What the order's ledger leaves this case, under the order's lock (after the case's)."""
        return await ledger.refundable(uow, case, lock=True)

    async def _approve_command(self, uow: UnitOfWork, turn: Turn, item: DeskItem, args: str) -> None:
        ev, now = turn.event, turn.now
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if case.status not in DECIDABLE:
            await self._cannot(uow, turn, case, "/approve")
            return
        most = await self._max_refund(uow, case)
        amount = most
        if args:
            parsed = parse_amount(args.split()[0])
            if parsed is None:
                await self._answer(uow, turn, "desk.bad_amount", {"text": args[:40], "max": money(most)})
                return
            amount = parsed
        if amount <= 0 or amount > most:
            await self._answer(uow, turn, "desk.amount_over", {"max": money(most)})
            return
        if amount > self.desk.confirm_above:
            if case.status is C.SUBMITTED:  # someone is on it: the customer sees "in review"
                await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
            await uow.desk.request_approval(case.case_no, amount=amount, agent_id=ev.user_id, at=now)
            await self._record(uow, ev.user_id, item, "approve_request", now, str(amount))
            stamp = f"u{ev.update_id}"
            agent = self.label(ev.user_id, ev.user_name)
            await self._desk_text(uow, item.key, "desk.approval_requested",
                                  {"agent": agent, "amount": money(amount), "case": item.key,
                                   "threshold": money(self.desk.confirm_above)}, now,
                                  f"desk:{item.key}:approval:{stamp}")
            await self._card(uow, item.key, now, stamp)
            if not self._said_in_topic_of(turn, item):
                await self._answer(uow, turn, "desk.approval_waiting", {"amount": money(amount)})
            return
        await self._approve(uow, turn, item, case, amount, requester=None)

    async def _confirm(self, uow: UnitOfWork, turn: Turn, item: DeskItem, pending: tuple[Decimal, int] | None) -> None:
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if pending is None:
            await self._answer(uow, turn, "desk.nothing_to_confirm", {"case": item.key})
            return
        if case.status not in DECIDABLE:
            await uow.desk.clear_approval(case.case_no)
            await self._cannot(uow, turn, case, "/confirm")
            return
        await self._approve(uow, turn, item, case, pending[0], requester=pending[1])

    async def _approve(self, uow: UnitOfWork, turn: Turn, item: DeskItem, case: Case, amount: Decimal,
                       requester: int | None) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        # The case's history (on the desk card) in the desk's language.
        note = (self.t("desk.note_approved", amount=money(amount)) if requester is None else
                self.t("desk.note_confirmed", amount=money(amount), requester=self.label(requester)))
        try:
            if case.status is C.SUBMITTED:
                await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
            await self.workflow.approve(uow, case.case_no, actor=self.actor(ev), at=now, note=note, amount=amount)
        except (NothingToRefund, AttemptInFlight):
            await self._answer(uow, turn, "desk.nothing_to_refund", {"case": item.key})
            return
        except ledger.ExceedsRefundable as exc:
            await self._answer(uow, turn, "desk.amount_over", {"max": money(exc.available)})
            return
        await uow.desk.clear_approval(case.case_no)
        await self._decided(uow, turn, item, "approve", str(amount))
        agent = self.label(ev.user_id, ev.user_name)
        if requester is None:
            await self._desk_text(uow, item.key, "desk.approved", {"agent": agent, "amount": money(amount),
                                                                    "case": item.key}, now,
                                  f"desk:{item.key}:approved:{stamp}")
        else:
            await self._desk_text(uow, item.key, "desk.approved_confirmed",
                                  {"agent": agent, "amount": money(amount), "case": item.key,
                                   "requester": self.label(requester)}, now, f"desk:{item.key}:approved:{stamp}")
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.done", {"case": item.key})

    async def _decided(self, uow: UnitOfWork, turn: Turn, item: DeskItem, action: str, detail: str) -> None:
        """After a verdict: the item leaves the queue (the case's next step reopens it if it needs a
        person again) and a takeover ends."""
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        await self._end_takeover(uow, item, now, "desk.customer_closed", stamp)
        await uow.desk.close(item.key, at=now)
        await uow.desk.audit(actor_id=ev.user_id, key=item.key, action=action, allowed=True, at=now, detail=detail)
        await self._card(uow, item.key, now, stamp)

    async def _reason_picker(self, uow: UnitOfWork, turn: Turn, item: DeskItem) -> None:
        """Reject without a reason: the canned reasons as buttons (in the topic, or right here in a
        private chat or General), or type one."""
        ev = turn.event
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if case.status not in DECIDABLE:
            await self._cannot(uow, turn, case, "/reject")
            return
        reasons = [(clip(c.en if self.t.locale == "en" else c.zh_CN, LABEL_MAX), desk_token(item.key, f"rj.{c.key}"))
                   for c in self.desk.canned if len(desk_token(item.key, f"rj.{c.key}").encode()) <= 64]
        rows = [[[label, token]] for label, token in reasons]  # one reason a row
        params = {"case": item.key}
        if not ev.private and (ev.kind is EventKind.BUTTON or turn.topic_item is not None):
            bucket = int(turn.now.timestamp() // 600)  # one picker per item in 10 minutes is enough
            await self._queue(uow, DESK_TEXT, self.desk.chat_id, f"desk:{item.key}:reasons:{bucket}",
                              {"key": item.key, "text_key": "desk.pick_reason", "params": params, "buttons": rows},
                              turn.now)
            if ev.kind is EventKind.BUTTON:
                turn.toast = self.t("desk.reject_how")[:TOAST_MAX]
            return
        turn.replies.append(Reply(self.t("desk.pick_reason", **params),
                                  tuple((Button(label, token),) for label, token in reasons)))

    async def _reject(self, uow: UnitOfWork, turn: Turn, item: DeskItem, action: str, args: str) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        case = await self._case(uow, turn, item)
        if case is None:
            return
        shown = args  # what the agents see in the topic
        if action.startswith("rj."):
            canned = next((c for c in self.desk.canned if c.key == action[3:]), None)
            if canned is None:
                await self._answer(uow, turn, "desk.stale")
                return
            reason = canned.en if case.locale == "en" else canned.zh_CN
            shown = canned.en if self.t.locale == "en" else canned.zh_CN
        else:
            reason = args
        if case.status not in DECIDABLE:
            await self._cannot(uow, turn, case, "/reject")
            return
        if case.status is C.SUBMITTED:
            case = await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
        trigger = "reject_final" if case.status is C.APPEALED else "reject"
        await self.workflow.move(uow, case.case_no, trigger, actor=self.actor(ev), at=now, note=reason)
        await uow.desk.clear_approval(case.case_no)
        await self._decided(uow, turn, item, "reject", reason)
        await self._desk_text(uow, item.key, "desk.rejected", {"agent": self.label(ev.user_id, ev.user_name),
                                                                "case": item.key, "reason": shown}, now,
                              f"desk:{item.key}:rejected:{stamp}")
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.done", {"case": item.key})

    async def _ask(self, uow: UnitOfWork, turn: Turn, item: DeskItem, text: str) -> None:
        ev, now, stamp = turn.event, turn.now, f"u{turn.event.update_id}"
        if not text:
            await self._answer(uow, turn, "desk.ask_how")
            return
        case = await self._case(uow, turn, item)
        if case is None:
            return
        if case.status not in ASKABLE:
            await self._cannot(uow, turn, case, "/ask")
            return
        if case.status is C.SUBMITTED:
            await self.workflow.move(uow, case.case_no, "start_review", actor=self.actor(ev), at=now)
        await self.workflow.move(uow, case.case_no, "ask_info", actor=self.actor(ev), at=now, note=text)
        # The bot's needs_info flow collects the material (the news the customer gets says how), so
        # a takeover ends here; the item stays open and is back in the queue once the material is in.
        await self._end_takeover(uow, item, now, None, stamp)
        await uow.desk.audit(actor_id=ev.user_id, key=item.key, action="ask", allowed=True, at=now, detail=text)
        await self._desk_text(uow, item.key, "desk.asked", {"agent": self.label(ev.user_id, ev.user_name),
                                                             "text": text}, now, f"desk:{item.key}:asked:{stamp}")
        await self._card(uow, item.key, now, stamp)
        if not self._said_in_topic_of(turn, item):
            await self._answer(uow, turn, "desk.done", {"case": item.key})
