"""The desk's topic per case when createForumTopic answers late: Telegram made the topic, the answer
came after the relay stopped waiting. There is still exactly one topic for the case, with its card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tests.e2e.test_desk_actions as desk_actions
from bot.config import AppConfig
from dialogs.desk.cards import short_case_no
from tests.e2e.conftest import Control
from tests.e2e.test_desk_actions import DESK, XIAOMING, Desk, desk_factory, on_the_desk  # noqa: F401 - fixture

SEND_TIMEOUT = 1.0
LATE = 3.0  # createForumTopic answers this long after making the topic: well past SEND_TIMEOUT


@pytest.fixture
def impatient_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk's bot with a relay that stops waiting for an answer after SEND_TIMEOUT."""
    original = desk_actions.desk_config

    def config(tmp_path: Path, **desk: Any) -> AppConfig:
        made = original(tmp_path, **desk)
        relay = made.relay.model_copy(update={"send_timeout_seconds": SEND_TIMEOUT})
        return made.model_copy(update={"relay": relay})

    monkeypatch.setattr(desk_actions, "desk_config", config)


async def test_a_late_create_forum_topic_answer_leaves_one_topic_with_the_card_in_it(
        impatient_relay: None, desk_factory, control: Control, customer) -> None:  # noqa: F811
    await control.post("faults", method="createForumTopic", error_code=0, delay=LATE, answer_late=True)
    desk: Desk = await desk_factory()
    case_no = await on_the_desk(await customer(XIAOMING))
    card = await desk.card(case_no)
    thread = (await desk.item(case_no)).thread_id
    topics = [t for t in await control.get("topics", chat_id=DESK) if short_case_no(case_no) in t["name"]]
    assert [t["message_thread_id"] for t in topics] == [thread]
    in_topic = await control.get("chat", chat_id=DESK, message_thread_id=thread)
    assert card in [m["message_id"] for m in in_topic if m["from_bot"]]
    assert len(await control.get("calls", method="createForumTopic")) == 1
