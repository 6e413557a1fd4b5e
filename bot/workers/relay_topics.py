"""The agents' desk, as the relay delivers to it: the forum topic of each desk item (made once, never
twice) and the names on its cards.

A row may take several calls — create the item's topic, send its card, then the row's own message —
each paced like any other, and each answer written down at once (a later failure of the row does not
make its topic again). The customer's and the owner's names on a card come from getChat, asked once
and kept for an hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from bot.sending import Sender
from bot.workers.relay_rows import Row
from dialogs.clock import Clock
from dialogs.notify import topic_created

log = logging.getLogger(__name__)

NAMES_KEPT = 10_000  # display names remembered for desk cards
NAME_TTL = 3600.0  # seconds before a name is asked for again
NAME_TIMEOUT = 5.0

Write = Callable[[Callable[[Any], Awaitable[None]]], Awaitable[None]]


class DeskTopics:
    """The createForumTopic calls in flight, by desk key: never a second one for a key meanwhile.

    createForumTopic is not idempotent, and its answer may come after our timeout although the topic
    was made. So the call runs as a task of its own, with the sender's long topic timeout, and writes
    its topic down itself (`write`: one unit of work, retried) when it answers; a timeout of the row's
    call only stops waiting for it. A retry (of this row, or of a row of the same desk item claimed
    again meanwhile) waits for that same task instead of making a second topic. Only a call that
    failed makes a new one."""

    def __init__(self, sender: Sender, write: Write, wall_clock: Clock) -> None:
        self.sender = sender
        self.write = write
        self.wall_clock = wall_clock
        self._topics: dict[str, asyncio.Task[int]] = {}

    def call(self, row: Row, chat_id: int, name: str, key: str) -> Callable[[], Awaitable[int]]:
        """The row's call for the topic of desk item `key` (to be paced like any other call)."""
        async def call() -> int:
            task = row.topic_task
            if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
                task = row.topic_task = self._topics.get(key) or self._start(chat_id, name, key, row.recreating)
            return await asyncio.shield(task)
        return call

    def _start(self, chat_id: int, name: str, key: str, recreated: bool) -> asyncio.Task[int]:
        async def make() -> int:
            thread_id = await self.sender.create_topic(chat_id, name)
            await self.write(lambda uow: topic_created(uow, key, thread_id, chat_id=chat_id, recreated=recreated,
                                                       at=self.wall_clock()))
            return thread_id

        task = self._topics[key] = asyncio.create_task(make(), name=f"relay-topic-{key}")

        def forget(done: asyncio.Task[int]) -> None:
            if self._topics.get(key) is done:
                del self._topics[key]
            if not done.cancelled() and done.exception() is not None:  # retrieved: the row's retry says more
                log.info("relay: creating the topic of desk item %s failed: %r", key, done.exception())
        task.add_done_callback(forget)
        return task

    async def close(self, graceful: bool) -> None:
        """A topic being made is written down when Telegram answers (bounded by the topic timeout);
        not `graceful`: cancelled."""
        topics = list(self._topics.values())
        if topics:
            if not graceful:
                for topic in topics:
                    topic.cancel()
            await asyncio.wait(topics)


class ChatNames:
    """Display names for desk cards, asked of Telegram outside any unit of work and kept NAME_TTL."""

    def __init__(self, sender: Sender, desk_chat_id: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.sender = sender
        self.desk_chat_id = desk_chat_id
        self.monotonic = monotonic
        self._names: OrderedDict[int, tuple[str, float]] = OrderedDict()  # chat id -> (name, when asked)

    def known(self) -> dict[int, str]:
        now = self.monotonic()
        return {chat_id: name for chat_id, (name, at) in self._names.items() if now - at < NAME_TTL}

    async def name(self, chat_id: int) -> str:
        """A person's display name for desk cards ("" when Telegram will not say): getChat, or for
        someone who never wrote to the bot, their membership of the desk group."""
        known = self._names.get(chat_id)
        if known is not None and self.monotonic() - known[1] < NAME_TTL:
            return known[0]
        name = ""
        desk = self.desk_chat_id
        for member_of in (None, desk) if desk and chat_id > 0 else (None,):
            try:
                async with asyncio.timeout(NAME_TIMEOUT):
                    name = await self.sender.chat_name(chat_id, member_of=member_of)
                break
            except Exception as exc:  # noqa: BLE001 - an unknown chat, a network failure: the card shows the id
                log.debug("relay: no name for %s (%r)", chat_id, exc)
        self._names[chat_id] = (name, self.monotonic())
        self._names.move_to_end(chat_id)
        while len(self._names) > NAMES_KEPT:
            self._names.popitem(last=False)
        return name
