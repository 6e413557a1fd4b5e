"""One update, start to finish, transport-neutral: claim it, load the chat, run the machine (the trigger
picked by dialogs.router), commit.

Adapters call `RefundService.handle(event)` and render the `Outcome`; they never branch on business.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from dialogs import proof
from dialogs.cases import CaseWorkflow
from dialogs.clock import utcnow
from dialogs.conversation import FILE_STEPS, Dialog
from dialogs.desk import TAKEOVER, DeskService
from dialogs.domain import Conversation, Order, PaymentChannel
from dialogs.failures import give_up
from dialogs.io import Event, EventKind, Outcome, Reply
from dialogs.lifecycle import ForbiddenTransition
from dialogs.moderation import held
from dialogs.ports import (
    ConcurrentUpdate,
    FloodCheck,
    OrderLookup,
    OrderSourceUnavailable,
    UnitOfWork,
    UnitOfWorkFactory,
)
from dialogs.reach import GONE, PRESENT, chat_back, chat_lost
from dialogs.router import Router
from dialogs.settings import CoreSettings
from dialogs.texts import Texts, pick_locale

_MAX_RETRIES = 5
CLAIM_RETENTION = timedelta(hours=48)
# With several workers, unconfirmed replies younger than this may still be on their way from another
# one (an inline 429 wait, retries): only older ones, or ones the sender gave up on, count as lost.
REPLY_GRACE = timedelta(seconds=60)
log = logging.getLogger(__name__)

# The adapter's download of an update's file: the event back with the file's inspection.
FileFetch = Callable[[Event], Awaitable[Event]]


class ChatLocks:
    """One asyncio.Lock per chat, dropped when nobody holds or waits for it (memory stays flat)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_id, (asyncio.Lock(), 0))
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_id]
            if users == 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class FloodGuard:
    """At most `limit` updates per chat in `window` seconds; the first one over gets a polite notice.

    A chat is remembered while it has an update inside the window (swept every 1024 calls), as a plain
    list of timestamps (~90 bytes for one update, from Python's small-object allocator). It was a
    `deque` (760 bytes, from the C allocator, held for a window): one per new chat fragmented the
    worker's heap (scripts/bench_memory.py: RSS growth per conversation over 20,000 chats fell from
    ~1.15 KB to ~0.76 KB with lists), although the guard's own size stays bounded either way."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._seen: dict[int, list[float]] = {}
        self._calls = 0

    def check(self, chat_id: int) -> str:
        """'ok', 'notify' (first update over the limit) or 'drop'."""
        now = self._clock()
        self._calls += 1
        if self._calls % 1024 == 0:
            self._sweep(now)
        stamps = self._seen.get(chat_id)
        if stamps is None:
            stamps = self._seen[chat_id] = [now]
        else:
            expired = 0
            while expired < len(stamps) and now - stamps[expired] > self.window:
                expired += 1
            if expired:
                del stamps[:expired]
            stamps.append(now)
        over = len(stamps) - self.limit
        return "ok" if over <= 0 else ("notify" if over == 1 else "drop")

    def __len__(self) -> int:
        """Chats remembered (for tests and benchmarks)."""
        return len(self._seen)

    def _sweep(self, now: float) -> None:
        for chat_id in [c for c, s in self._seen.items() if not s or now - s[-1] > self.window]:
            del self._seen[chat_id]


def takes_file(conv: Conversation | None) -> bool:
    """Whether a photo or document sent now would be kept: only at a step that takes files, and not
    while an agent has the chat (the desk copies the message into the topic by its file id)."""
    return conv is not None and TAKEOVER not in conv.data and conv.step in FILE_STEPS


class RefundService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        settings: CoreSettings,
        clock: Callable[[], datetime] = utcnow,
        flood_limit: int = 30,
        flood_window: float = 10.0,
        gateway: str = "manual",
        orders: OrderLookup | None = None,
        rails: Mapping[PaymentChannel, str] | None = None,
        shared_flood: Callable[[FloodGuard], FloodCheck] | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.settings = settings
        self.clock = clock
        self.workflow = CaseWorkflow.for_settings(settings, gateway, rails)
        self.calendar = self.workflow.calendar
        # An order source other than the local table (the platform's API): asked before the unit of
        # work opens, so a slow answer never holds the database, and its answer is kept locally.
        self.orders = orders
        self.locks = ChatLocks()
        self.flood = FloodGuard(flood_limit, flood_window)
        # Several workers: one count per chat for all of them (built around the local guard, its fallback).
        self.shared_flood = shared_flood(self.flood) if shared_flood is not None else None
        self.desk = DeskService(settings, self.workflow)
        self.router = Router(settings, self.desk)
        # (chat, update) whose replies this process is sending now (bot.inbound keeps it). Unconfirmed
        # replies this process committed and is not sending are lost; another process's only after
        # REPLY_GRACE (it may be sending them still: several workers, or the same update twice).
        self.sending: set[tuple[int, int]] = set()
        self.me = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    async def handle(self, event: Event, fetch_file: FileFetch | None = None) -> Outcome:
        """`fetch_file` downloads the event's file; it is called only past the flood guard, and only
        when the chat's step takes a file (a short read of the conversation, for file updates only)."""
        if event.kind is EventKind.MEMBER:
            return await self._membership(event)
        if self.desk.wants(event) or (self.desk.may_want(event) and await self._staff_command(event)):
            return await self._desk(event)
        if not event.private or event.kind is EventKind.SERVICE:
            return Outcome()  # other groups are none of our business; service messages need no answer
        if self.shared_flood is not None:
            verdict = await self.shared_flood.check(event.chat_id)
        else:
            verdict = self.flood.check(event.chat_id)
        if verdict != "ok":
            notice = Texts(pick_locale(event.language_code, self.settings.i18n.default_locale))("flood")
            return Outcome(replies=(Reply(notice),) if verdict == "notify" else (), toast=notice)
        async with self.locks.hold(event.chat_id):
            if fetch_file is not None and event.file is not None and await self._wants_file(event.chat_id):
                # Outside any unit of work: a download must not hold a transaction (on SQLite, every
                # writer). Should another worker move the chat on meanwhile, the file is an orphan for
                # the evidence sweeper.
                event = await fetch_file(event)
            try:
                fetched = await self._fetch_order(event)
            except OrderSourceUnavailable:
                log.warning("order source unavailable for update %s", event.update_id, exc_info=True)
                locale = pick_locale(event.language_code, self.settings.i18n.default_locale)
                return Outcome(replies=(Reply(Texts(locale)("orders_unavailable")),))
            for attempt in range(_MAX_RETRIES):
                try:
                    return await self._handle_once(event, fetched)
                except ConcurrentUpdate:
                    # Another worker moved this chat on first: replay the update on the fresh state.
                    if attempt == _MAX_RETRIES - 1:
                        raise
                    await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _desk(self, event: Event) -> Outcome:
        """The agents' side: the desk chat, desk buttons, an agent's desk commands in private."""
        for attempt in range(_MAX_RETRIES):
            try:
                async with self.uow_factory() as uow:
                    if not await uow.updates.claim(event.update_id, event.chat_id, self.clock()):
                        return Outcome(duplicate=True)
                    if event.private:  # an agent wrote: their chat is open again
                        await chat_back(uow, event.chat_id, self.clock(), self.settings)
                    outcome = await self.desk.handle(uow, event, self.clock())
                    await uow.commit()
                return outcome
            except (ConcurrentUpdate, ForbiddenTransition):
                # A customer's update moved their conversation (a takeover sets a flag there) or their
                # case (a withdrawal) first: nothing was kept; on the fresh state the desk says what is.
                if attempt == _MAX_RETRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _staff_command(self, event: Event) -> bool:
        """A desk command typed in a private chat: an agent's (the desk's) or a customer's (the dialog's)."""
        async with self.uow_factory() as uow:
            return await self.desk.wants_private(uow, event, self.clock())

    async def _wants_file(self, chat_id: int) -> bool:
        async with self.uow_factory() as uow:
            return takes_file(await uow.conversations.load(chat_id))

    async def _membership(self, event: Event) -> Outcome:
        """Telegram says the bot's standing in a chat changed: a customer blocked or unblocked it, the
        bot left or came back to the desk group (dialogs.reach). Other groups are none of our business."""
        if not event.private and event.chat_id != self.settings.desk.chat_id:
            return Outcome()
        now = self.clock()
        async with self.uow_factory() as uow:
            if not await uow.updates.claim(event.update_id, event.chat_id, now):
                return Outcome(duplicate=True)
            if event.text in GONE:
                await chat_lost(uow, event.chat_id, now, f"my_chat_member: {event.text}", self.settings)
            elif event.text in PRESENT:
                await chat_back(uow, event.chat_id, now, self.settings)
            await uow.commit()
        return Outcome()

    async def forget_old_claims(self, older_than: timedelta = CLAIM_RETENTION) -> int:
        """Telegram keeps an update for 24 h at most, and may restart update ids after a quiet week:
        a claim older than that only stands in the way of a new update with the same id."""
        async with self.uow_factory() as uow:
            count = await uow.updates.prune(self.clock() - older_than)
            await uow.commit()
        return count

    async def _fetch_order(self, event: Event) -> Order | None:
        """The order an update names, from the external source (None without one, or not named)."""
        if self.orders is None:
            return None
        named = event.text
        if event.kind is EventKind.COMMAND and event.text == "start" and proof.is_link(event.args):
            # The shop's signed link: fetched only when its signature holds (a forged one asks nothing).
            check = proof.check_link(self.settings.orders.link_secret, event.args, self.clock())
            if check.problem is not None:
                return None
            named = check.order_no
        elif event.kind is EventKind.COMMAND and event.text == "start" and event.args.lower().startswith("order_"):
            named = event.args[len("order_"):]
        elif event.kind is not EventKind.TEXT:
            return None
        named = named.strip().upper()
        if re.fullmatch(self.settings.orders.number_pattern, named) is None:
            return None
        return await self.orders.get(named)

    async def _handle_once(self, event: Event, fetched: Order | None = None) -> Outcome:
        now = self.clock()
        async with self.uow_factory() as uow:
            if not await uow.updates.claim(event.update_id, event.chat_id, now):
                return await self._repeated(uow, event, now)
            stopped = await held(uow, event, now, self.settings)  # banned or muted by the desk
            if stopped is not None:
                await uow.commit()
                return stopped
            # The customer wrote: a chat held after a 403 is open again, and what was held goes out.
            await chat_back(uow, event.chat_id, now, self.settings)
            if event.edited:  # never a new step of the dialog; a copy in a desk topic follows it
                await self.desk.customer_edit(uow, event, now)
                await uow.commit()
                return Outcome()
            if fetched is not None:  # the case, its deadlines and exports read the local copy
                # An order with cases keeps the facts its cases were filed against (dialogs.order_facts).
                await uow.orders.upsert(fetched, facts="keep")
            conv = await uow.conversations.load(event.chat_id) or Conversation(
                chat_id=event.chat_id,
                user_id=event.user_id,
                locale=pick_locale(event.language_code, self.settings.i18n.default_locale),
            )
            if TAKEOVER in conv.data:  # an agent has taken this chat over: their topic gets it
                taken = await self.desk.customer_message(uow, conv, event, now)
                if taken is not None:
                    await uow.conversations.save(conv)
                    await uow.commit()
                    return taken
            at = (conv.step, conv.data.get("nonce"))
            dialog = Dialog(conv, event, uow, self.workflow, Texts(conv.locale), now)
            toast = await self.router.route(dialog, uow)
            conv.step = dialog.state
            replies = self._with_unconfirmed(dialog, at, now)
            # Kept until Telegram confirms them (settle_replies): a crash after this commit loses nothing.
            conv.unconfirmed = tuple(r for r in replies if not r.edit)
            conv.unconfirmed_update = event.update_id if conv.unconfirmed else None
            conv.unconfirmed_since = now if conv.unconfirmed else None
            conv.unconfirmed_by = self.me if conv.unconfirmed else None
            await uow.conversations.save(conv)
            for message in dialog.outbox:
                await uow.outbox.add(message)
            await uow.commit()
        return Outcome(replies=replies, toast=toast, step=conv.step, locale=conv.locale,
                       unconfirmed=bool(conv.unconfirmed))

    def _lost(self, conv: Conversation, now: datetime) -> tuple[Reply, ...]:
        if conv.unconfirmed_update is not None and (conv.chat_id, conv.unconfirmed_update) in self.sending:
            return ()  # on their way from this process
        return conv.lost_replies(now, REPLY_GRACE, self.me)

    async def _repeated(self, uow: UnitOfWork, event: Event, now: datetime) -> Outcome:
        """An update seen before does nothing again; but the replies to it that Telegram never confirmed
        and that are not on their way (a crash after commit, a send that failed) go out now."""
        conv = await uow.conversations.load(event.chat_id)
        if conv is None or conv.unconfirmed_update != event.update_id:
            return Outcome(duplicate=True)
        lost = self._lost(conv, now)
        return Outcome(replies=lost, duplicate=True, unconfirmed=bool(lost))

    def _with_unconfirmed(self, d: Dialog, at: tuple[str, object], now: datetime) -> tuple[Reply, ...]:
        """This update's replies; or, when all this update would say is a hint and the customer is still at
        the prompt that Telegram never confirmed (same step, same buttons), that prompt again in place of
        the hint, which would point at buttons never shown. Any real answer supersedes lost replies."""
        lost = self._lost(d.conv, now)
        if not lost or not d.hinted or (d.state, d.data.get("nonce")) != at:
            # A real answer supersedes them: lost replies never pile up behind new ones (with several
            # workers, piled-up replies were sent again by every later update).
            return tuple(d.replies)
        return lost  # in place of the hint, which would point at buttons never shown

    async def give_up(self, event: Event, why: str) -> Outcome:
        """The last answer to an update that keeps failing (dialogs.failures): the customer is told, the
        supervisors alerted, the update claimed."""
        async with self.uow_factory() as uow:
            outcome = await give_up(uow, self.settings, event, why, self.clock())
            await uow.commit()
        return outcome

    async def settle_replies(self, chat_id: int, update_id: int, left: Sequence[Reply] = ()) -> None:
        """Telegram took the replies to `update_id` (an `Outcome` with `unconfirmed`) but `left`."""
        async with self.uow_factory() as uow:
            await uow.conversations.settle_replies(chat_id, update_id, left)
            await uow.commit()
