"""DeskService: the desk's entry points. `wants` says whether an update is the desk's, `handle` routes
it to an answer, a command or a button's action (checked by dialogs.desk.auth first); the actions live
with their concern: takeover, decisions, queue, idle.
"""

from __future__ import annotations

from datetime import datetime

from dialogs.desk.auth import Refusal, refusal
from dialogs.desk.base import Turn
from dialogs.desk.codes import ACTION as CODES
from dialogs.desk.codes import CodeViews
from dialogs.desk.commands import COMMANDS, PRIVATE_COMMANDS, TOKEN_PREFIX, named_key, parse_token
from dialogs.desk.decisions import Decisions
from dialogs.desk.idle import IdleNudges
from dialogs.desk.macros import COMMAND as MACRO_COMMAND
from dialogs.desk.macros import Macros
from dialogs.desk.queue import DeskQueue
from dialogs.desk.staffing import STAFF_COMMANDS, Staffing
from dialogs.io import Event, EventKind, Outcome
from dialogs.ports import UnitOfWork


class DeskService(Decisions, IdleNudges, DeskQueue, Macros, Staffing, CodeViews):
    """The desk, whole: its parts are mixed in here, each in the room of its concern."""

    # -- routing --------------------------------------------------------------------------------
    def wants(self, event: Event) -> bool:
        """Whether the desk handles this event rather than the customer dialog: everything in the
        desk chat, desk buttons anywhere, and an agent's desk commands in a private chat."""
        if not self.desk.chat_id:
            return False
        if event.chat_id == self.desk.chat_id:
            return True
        if event.kind is EventKind.BUTTON:
            return event.text.startswith(TOKEN_PREFIX)
        return False

    def may_want(self, event: Event) -> bool:
        """A desk command in a private chat: the desk's if its sender is on the staff (`wants_private`)."""
        return bool(self.desk.chat_id and event.private and event.kind is EventKind.COMMAND
                    and event.text.lower() in PRIVATE_COMMANDS)

    async def wants_private(self, uow: UnitOfWork, event: Event, now: datetime) -> bool:
        """Whether a `may_want` event comes from an agent (the staff as the database has them)."""
        async with self.staffed(uow, now) as desk:
            return desk.is_agent(event.user_id)

    async def handle(self, uow: UnitOfWork, event: Event, now: datetime) -> Outcome:
        """An event `wants` accepted, in the caller's unit of work (the update is claimed)."""
        async with self.staffed(uow, now):
            return await self._handle(uow, event, now)

    async def _handle(self, uow: UnitOfWork, event: Event, now: datetime) -> Outcome:
        turn = Turn(event, now, self.t)
        if event.thread_id is not None and event.chat_id == self.desk.chat_id:
            turn.topic_item = await uow.desk.by_thread(event.thread_id)
        if event.kind is EventKind.SERVICE:
            pass
        elif event.edited:
            await self._agent_edit(uow, turn)
        elif event.kind is EventKind.BUTTON:
            parsed = parse_token(event.text)
            if parsed is None:
                turn.toast = self.t("desk.stale")
            else:
                await self._act(uow, turn, *parsed, args="")
        elif event.kind is EventKind.COMMAND and event.text.lower() in COMMANDS | STAFF_COMMANDS:
            await self._command(uow, turn, event.text.lower(), event.args.strip())
        elif event.kind is not EventKind.COMMAND and self.desk.is_agent(event.user_id):
            await self._agent_message(uow, turn)
        return Outcome(replies=tuple(turn.replies), toast=turn.toast, locale=self.t.locale)

    # -- commands -------------------------------------------------------------------------------
    async def _command(self, uow: UnitOfWork, turn: Turn, name: str, args: str) -> None:
        ev = turn.event
        if not self.desk.is_agent(ev.user_id):
            key = turn.topic_item.key if turn.topic_item else None
            await self._refuse(uow, turn, name, key, Refusal("desk.refused"))
            return
        if name == "queue":
            await self._show_queue(uow, turn)
            return
        if name == "help":
            await self._answer(uow, turn, "desk.help")
            return
        if name == MACRO_COMMAND:
            await self._macros(uow, turn, args)
            return
        if name in STAFF_COMMANDS:
            await self._staff_command(uow, turn, name, args)
            return
        head, _, rest = args.partition(" ")
        named = named_key(head)
        if named is not None:
            key = named
            args = rest.strip()
        elif turn.topic_item is not None and not ev.private:
            key = turn.topic_item.key
        else:
            await self._answer(uow, turn, "desk.need_item", {"command": name})
            return
        await self._act(uow, turn, key, name, args)

    # -- actions --------------------------------------------------------------------------------
    async def _act(self, uow: UnitOfWork, turn: Turn, key: str, action: str, args: str) -> None:
        ev = turn.event
        if not self.desk.is_agent(ev.user_id):  # before anything is looked up: nothing leaks
            await self._refuse(uow, turn, action, key, Refusal("desk.refused"))
            return
        item = await uow.desk.get(key)
        if item is None:
            await self._answer(uow, turn, "desk.unknown_item", {"case": key})
            return
        if action != "note":
            # The owner and two-person rules are checked on the item as it is under the case's lock:
            # an agent taking the case at this moment is either seen here or waits for this action.
            await self._lock(uow, item)
            item = await uow.desk.get(key) or item
        pending = await uow.desk.pending_approval(item.case_no) if action == "confirm" and item.case_no else None
        why = refusal(self.desk, ev.user_id, action, item, pending)
        if why is not None:
            if why.text_key == "desk.refused_owned" and item.owner_id is not None:
                why = Refusal(why.text_key, {"case": key, "owner": self.label(item.owner_id)})
            await self._refuse(uow, turn, action, key, why)
            return
        if item.closed_at is not None and action != "note":
            await self._answer(uow, turn, "desk.item_closed", {"case": key})
            return
        if item.owner_id == ev.user_id:
            await uow.desk.touch(key, at=turn.now)
        if action == "take":
            await self._take(uow, turn, item)
        elif action == "release":
            await self._release(uow, turn, item)
        elif action == "close":
            await self._close(uow, turn, item)
        elif action == "note":
            await self._note(uow, turn, item, args)
        elif item.case_no is None:
            await self._answer(uow, turn, "desk.no_case", {"case": key})
        elif action == CODES:
            await self._show_codes(uow, turn, item)
        elif action == "approve":
            await self._approve_command(uow, turn, item, args)
        elif action == "confirm":
            await self._confirm(uow, turn, item, pending)
        elif action == "reject" and not args:
            await self._reason_picker(uow, turn, item)
        elif action == "reject" or action.startswith("rj."):
            await self._reject(uow, turn, item, action, args)
        elif action == "ask":
            await self._ask(uow, turn, item, args)
