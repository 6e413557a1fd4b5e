"""When unconfirmed replies count as lost (dialogs.domain.Conversation.lost_replies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialogs.domain import Conversation
from dialogs.io import Reply

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)
SENT = (Reply("请选择退款原因"),)


def conv(since: datetime | None) -> Conversation:
    return Conversation(chat_id=1, user_id=1, locale="zh_CN", unconfirmed=SENT, unconfirmed_update=7,
                        unconfirmed_since=since)


def test_replies_the_sender_gave_up_on_are_lost_at_once() -> None:
    assert conv(None).lost_replies(NOW, GRACE) == SENT


def test_with_other_workers_young_replies_may_still_be_on_their_way() -> None:
    assert conv(NOW - timedelta(seconds=5)).lost_replies(NOW, GRACE) == ()
    assert conv(NOW - timedelta(seconds=61)).lost_replies(NOW, GRACE) == SENT


def test_a_lone_process_that_is_not_sending_them_knows_they_are_lost() -> None:
    assert conv(NOW - timedelta(seconds=1)).lost_replies(NOW, None) == SENT


def test_nothing_unconfirmed_is_nothing_lost() -> None:
    assert Conversation(chat_id=1, user_id=1, locale="zh_CN").lost_replies(NOW, None) == ()
