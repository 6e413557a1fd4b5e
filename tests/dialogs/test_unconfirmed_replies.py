"""When unconfirmed replies count as lost (dialogs.domain.Conversation.lost_replies), asked by a process
that is not sending them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialogs.domain import Conversation
from dialogs.io import Reply

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)
SENT = (Reply("请选择退款原因"),)
ME, OTHER = "host:1:a", "host:2:b"


def conv(since: datetime | None, by: str | None = OTHER) -> Conversation:
    return Conversation(chat_id=1, user_id=1, locale="zh_CN", unconfirmed=SENT, unconfirmed_update=7,
                        unconfirmed_since=since, unconfirmed_by=by)


def test_replies_the_sender_gave_up_on_are_lost_at_once() -> None:
    assert conv(None, None).lost_replies(NOW, GRACE, ME) == SENT


def test_another_processs_young_replies_may_still_be_on_their_way() -> None:
    assert conv(NOW - timedelta(seconds=5)).lost_replies(NOW, GRACE, ME) == ()
    assert conv(NOW - timedelta(seconds=61)).lost_replies(NOW, GRACE, ME) == SENT


def test_a_process_that_committed_them_and_is_not_sending_them_knows_they_are_lost() -> None:
    assert conv(NOW - timedelta(seconds=1), ME).lost_replies(NOW, GRACE, ME) == SENT


def test_nothing_unconfirmed_is_nothing_lost() -> None:
    assert Conversation(chat_id=1, user_id=1, locale="zh_CN").lost_replies(NOW, GRACE, ME) == ()
