"""Which trigger an update fires: messages by the table in dialogs.conversation, buttons and commands
by their name. The service opens the unit of work around it and keeps what the dialog produced."""

from __future__ import annotations

from dataclasses import replace

from dialogs import faq, hours, proof
from dialogs.case_actions import CARD_ACTIONS, parse_card_token
from dialogs.conversation import (
    BUTTON_TRIGGERS,
    MACHINE,
    MESSAGE_KINDS,
    MESSAGE_ROUTES,
    Dialog,
    agent_request,
)
from dialogs.desk import DeskService
from dialogs.domain import OPEN_STATUSES, OutboxMessage
from dialogs.io import EventKind, Reply
from dialogs.notify import RATEABLE, card_buttons, card_text
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.steps import Step
from dialogs.texts import LOCALES, Texts, pick_locale
from dialogs.words import deadline_line, looks_like_order_number, policy_link

# /status shows at most this many cards (each a message: Telegram allows ~1 message/s per chat).
_STATUS_CARDS = 3


class Router:
    def __init__(self, settings: CoreSettings, desk: DeskService) -> None:
        self.settings = settings
        self.desk = desk

    async def route(self, d: Dialog, uow: UnitOfWork) -> str | None:
        """Fire the update's trigger on the dialog; the toast to show, if any."""
        ev = d.event
        if ev.kind is EventKind.COMMAND:
            await self._command(d, uow)
            return None
        if ev.kind is EventKind.BUTTON:
            return await self._button(d)
        route = MESSAGE_ROUTES.get((Step(d.state), MESSAGE_KINDS.get(ev.kind, "")))
        if route is None or (route.opens_request and not await d.well_formed_order()):
            if await self._faq(d, uow):
                return None
            if route is not None and looks_like_order_number(ev.text, self.settings.orders):
                d.hinted = True  # a mistyped number: the format, not the general hint; nothing changes
                await d.say_malformed_order()
            else:
                self._hint(d)
            return None
        if route.opens_request:
            d.start_draft()
        await self._fire(d, route.trigger)
        return None

    async def _fire(self, d: Dialog, trigger: str) -> bool:
        return bool(await MACHINE.events[trigger].trigger(d))

    async def _faq(self, d: Dialog, uow: UnitOfWork) -> bool:
        """An FAQ answer in place of the idle hint, when the text names a keyword (dialogs.faq)."""
        if d.state != Step.IDLE or d.event.kind is not EventKind.TEXT:
            return False
        entry = faq.match(d.event.text, self.settings.faq)
        if entry is None:
            return False
        d.replies.append(Reply(await faq.answer(uow, entry, d.event.user_id, d.event.chat_id, d.t)))
        return True

    def _hint(self, d: Dialog) -> None:
        d.hinted = True
        d.say(f"hint.{d.state}", example=self.settings.orders.number_example)

    async def _button(self, d: Dialog) -> str | None:
        card = parse_card_token(d.event.text)
        if card is not None:
            return await self._card_button(d, *card)
        nonce, _, action = d.event.text.partition(".")
        trigger = "choose_reason" if action.startswith("r.") else BUTTON_TRIGGERS.get(action)
        valid = (
            bool(nonce)
            and nonce == d.data.get("nonce")
            and trigger is not None
            and trigger in MACHINE.get_triggers(d.state)
        )
        if not valid or trigger is None:
            return d.t("stale_button")
        await self._fire(d, trigger)
        if d.forged:
            return d.t("stale_button")
        d.replies.insert(0, Reply("", edit=True))  # take the pressed keyboard away: it has been used
        return None

    async def _card_button(self, d: Dialog, case_no: str, action: str) -> str | None:
        """A status-card button: only the case's owner, only while the case allows that action."""
        case = await d.uow.cases.get(case_no)
        if case is None or case.user_id != d.event.user_id:
            return d.t("stale_button")
        trigger, valid_in = CARD_ACTIONS[action]
        if case.status not in valid_in or (trigger == "rate" and case.rating is not None):
            return d.t("case_moved_on", case_no=case_no, status=d.t(f"status.{case.status.value}"))
        d.begin_case_action(case, action)
        await self._fire(d, trigger)
        return None

    async def _command(self, d: Dialog, uow: UnitOfWork) -> None:
        name, args = d.event.text.lower(), d.event.args.strip()
        p = self.settings.policy
        if name == "start" and proof.is_link(args):  # the shop's signed 申请退款 link (dialogs.proof)
            await self._fire(d, "begin")
            d.replies.clear()
            d.event = replace(d.event, kind=EventKind.TEXT, text=args)
            await self._fire(d, "open_link")
        elif name == "start" and args.lower().startswith("order_"):
            await self._fire(d, "begin")
            d.replies.clear()
            d.event = replace(d.event, kind=EventKind.TEXT, text=args[len("order_"):])
            await self._fire(d, "submit_order")
        elif name in ("start", "refund"):
            await self._fire(d, "begin")
        elif name == "cancel":
            if d.state == Step.IDLE:
                d.say("cancelled")
            else:
                await self._fire(d, "cancel")
        elif name == "help":
            d.replies.append(Reply(d.t("help", hours=p.card_claim_window_hours, min_days=p.review_min_working_days,
                                       max_days=p.review_working_days) + policy_link(d.t, p)))
        elif name == "status":
            await self._status(d, uow)
        elif name == "agent":
            already = await uow.agent_requests.count_for_chat(d.event.chat_id)
            request = agent_request(d.conv, d.event)
            await uow.agent_requests.add(request)
            d.outbox.append(OutboxMessage(
                kind="agent_requested", chat_id=None,
                dedupe_key=f"agent:{d.event.chat_id}:{d.event.update_id}",
                payload={"chat_id": d.event.chat_id, "user_id": d.event.user_id,
                         "order_no": request.order_no, "step": request.step},
                created_at=d.now,
            ))
            await self.desk.agent_requested(uow, d.event, d.now)
            said = d.t("agent_recorded_again" if already else "agent_recorded")
            promise = hours.reply_promise(d.now, self.settings, d.calendar, d.t)  # when a person answers
            d.replies.append(Reply(f"{said}\n{promise}" if promise else said))
        elif name == "lang":
            wanted = pick_locale(args, "") if args else ""
            if wanted not in LOCALES:
                wanted = "en" if d.conv.locale == "zh_CN" else "zh_CN"
            d.conv.locale = wanted
            d.t = Texts(wanted)
            d.say("lang_switched")
        else:
            self._hint(d)

    async def _status(self, d: Dialog, uow: UnitOfWork) -> None:
        """The status card of each case that still needs something (the same card the relay keeps
        up to date, with its buttons), then one line per finished case."""
        cases = await uow.cases.list_for_user(d.event.user_id)
        if not cases:
            d.say("status_none")
            return
        live = [c for c in cases if c.status in OPEN_STATUSES or (c.status in RATEABLE and c.rating is None)]
        d.say("status_header")
        for case in live[:_STATUS_CARDS]:
            d.replies.append(Reply(card_text(case, await uow.orders.get(case.order_no), d.t),
                                   card_buttons(case, d.t)))
        rest = [c for c in cases if c not in live[:_STATUS_CARDS]]
        if rest:
            d.replies.append(Reply("\n".join(
                d.t("status_line", case_no=c.case_no, reason=d.t(f"reason.{c.reason.value}"),
                    order_no=c.order_no, status=d.t(f"status.{c.status.value}"), deadline=deadline_line(d.t, c))
                for c in rest)))

