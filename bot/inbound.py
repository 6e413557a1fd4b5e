"""One incoming update after translation, for either adapter: inspect an uploaded file, let the core
handle the event, render its `Outcome` through the adapter's `Sender`.

The replies are the answer to this update and go straight out (the customer is waiting); everything else
the core has to say leaves through the outbox and its relay. A reply waits out a short 429
(bot.pacing.throttling) and retries a 5xx a few times. The core commits the replies with the update as
unconfirmed, and they are settled once Telegram takes them (one UPDATE); a message that did not go (a
long 429, 5xx past the retries, a blocked chat) or may have gone (a timeout: never repeated blindly)
stays recorded, and the core sends it again when the update comes again or before its answer to the
chat's next message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol, TypeVar

from bot.chat_ids import answer_id, asks_id
from bot.evidence import EvidenceIntake
from bot.logs import log_context
from bot.pacing import inline_wait
from bot.sending import (
    Blocked,
    MaybeSent,
    MessageGone,
    NotModified,
    RetryAfter,
    Sender,
    SendError,
    Transient,
)
from dialogs.io import Event, Outcome, Reply
from dialogs.service import RefundService

log = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS = 4
# Tries of one update before its last answer (bot.polling retries a failed update up to 5 times; Telegram
# re-delivers a webhook's): the customer is told and the supervisors alerted instead of silence.
GIVE_UP_AFTER = 3
_FAILURES_KEPT = 10_000


class EventSink(Protocol):
    """What an adapter's handlers hand their translated events to: an `Inbound`, or an embedded
    refundbot (bot.embed) that builds its `Inbound` when the operator's bot starts."""

    async def handle(self, event: Event) -> None: ...


class Inbound:
    def __init__(self, service: RefundService, intake: EvidenceIntake, sender: Sender) -> None:
        self.service, self.intake, self.sender = service, intake, sender
        self.failures: dict[tuple[int, int], int] = {}  # (chat, update) -> failed tries in this process

    async def handle(self, event: Event) -> None:
        with log_context(update_id=event.update_id, chat=event.chat_id):
            await self._handle(event)

    async def _handle(self, event: Event) -> None:
        if asks_id(event):  # an operator looking for ids: answered here (it needs getChatMember)
            await answer_id(self.service, self.sender, event)
            return
        if event.edited:
            # An edit never answers anything; its copy in a desk topic (or at the customer's) is edited
            # through the outbox.
            await self.service.handle(event)
            return
        # The core asks for the file's bytes only past its flood guard and at a step that takes a file.
        try:
            outcome = await self.service.handle(event, self._inspect if event.private else None)
        except Exception as exc:  # noqa: BLE001 - any failure: retried, then answered (_failed)
            outcome = await self._failed(event, exc)
        else:
            self.failures.pop((event.chat_id, event.update_id), None)
        await self._reply(event, outcome)

    async def _failed(self, event: Event, exc: Exception) -> Outcome:
        """Raise again (the update is retried) until GIVE_UP_AFTER tries; then the last answer."""
        key = (event.chat_id, event.update_id)
        tries = self.failures.pop(key, 0) + 1
        if tries < GIVE_UP_AFTER:
            if len(self.failures) >= _FAILURES_KEPT:  # bounded: forget the oldest
                self.failures.pop(next(iter(self.failures)))
            self.failures[key] = tries
            raise exc
        log.error("update %s failed %d times: the customer is told, the supervisors alerted", event.update_id,
                  tries, exc_info=exc)
        try:
            return await self.service.give_up(event, f"{type(exc).__name__}: {exc}")
        except Exception:  # the database itself is failing: the poller retries, then skips, as before
            log.warning("could not give the last answer to update %s", event.update_id, exc_info=True)
            raise exc from None

    async def _reply(self, event: Event, outcome: Outcome) -> None:
        if outcome.duplicate and not outcome.replies:
            return  # seen before, and all it said was taken
        key = (event.chat_id, event.update_id)
        self.service.sending.add(key)  # no await since the service's commit: nobody saw them as lost
        try:
            left = await render(self.sender, event, outcome)
        finally:
            self.service.sending.discard(key)
        if not outcome.unconfirmed:
            return
        try:
            await self.service.settle_replies(event.chat_id, event.update_id, left)
        except Exception:  # the messages are out; unrecorded, they go once more at worst
            log.warning("could not record the replies as sent", exc_info=True)

    async def _inspect(self, event: Event) -> Event:
        assert event.file is not None
        inspection = await self.intake.inspect(event.file, event.kind, self.sender.download)
        return replace(event, file=replace(event.file, inspection=inspection))


class Unsent(Exception):
    """A message Telegram has not taken, or may have (a timeout): kept to go again later, not repeated."""


async def render(sender: Sender, event: Event, outcome: Outcome) -> tuple[Reply, ...]:
    """Answer the press, make the edits, send the messages in order. Returns the messages not sent: from
    the first that did not go (or may have), as the rest must not overtake it."""
    if event.callback_id is not None:
        callback_id = event.callback_id
        await attempt(lambda: sender.answer_callback(callback_id, outcome.toast))
    for n, reply in enumerate(outcome.replies):
        if reply.edit:
            await _edit(sender, event, reply)
            continue
        try:
            await attempt(lambda r=reply: sender.send(event.chat_id, r.text, r.buttons),  # type: ignore[misc]
                          keep_unsent=True)
        except Unsent:
            return tuple(r for r in outcome.replies[n:] if not r.edit)
    return ()


async def _edit(sender: Sender, event: Event, reply: Reply) -> None:
    message_id = event.message_id
    if message_id is None:
        return
    if reply.text:
        await attempt(lambda: sender.edit(event.chat_id, message_id, reply.text, reply.buttons))
    else:
        await attempt(lambda: sender.edit_markup(event.chat_id, message_id))


async def attempt(make: Callable[[], Awaitable[T]], *, keep_unsent: bool = False) -> T | None:
    """One reply call: wait out short 429s, back off on 5xx and network errors, drop the rest. With
    `keep_unsent` (a new message), what did not go, or may have gone, raises `Unsent` instead: a
    timeout is not retried, as Telegram may have sent the message already."""
    for n in range(ATTEMPTS):
        try:
            return await make()
        except RetryAfter as exc:
            wait = inline_wait(exc)  # bot.pacing: what a 429 means for a reply
            if wait is None:
                log.warning("reply not sent: retry_after %ss is too long to wait inline", exc.seconds)
                break
            await asyncio.sleep(wait)
        except Transient as exc:
            if keep_unsent and isinstance(exc, MaybeSent):
                log.warning("reply may have gone (%s): not repeated", exc.description)
                raise Unsent from exc
            log.warning("Bot API error (%s), attempt %d", exc.code, n + 1)
            await asyncio.sleep(0.2 * 2**n)
        except Blocked:
            log.info("chat blocked the bot; reply not delivered")
            break
        except (NotModified, MessageGone) as exc:
            # A double press, or a message too old to edit: nothing the customer needs to see.
            log.debug("edit skipped: %s", exc.description)
            return None
        except SendError as exc:
            log.warning("reply refused by Telegram (%s): %s", exc.code, exc.description)
            return None
    else:
        log.warning("reply not sent after %d attempts", ATTEMPTS)
    if keep_unsent:
        raise Unsent
    return None
