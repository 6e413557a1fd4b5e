"""The kinds of outbox rows: one name per message the relay sends, shared by whoever queues a row
(dialogs.cases, dialogs.sla, dialogs.desk, dialogs.reach) and dialogs.notify, which renders it. A leaf:
it imports nothing of ours but the domain, so every room can queue rows without importing the one
that renders them. Payloads are described in dialogs.notify.
"""

from __future__ import annotations

from datetime import datetime

from dialogs.domain import Case, OutboxMessage

# The customer's side.
CASE_CARD = "case_card"  # payload {"case_no"}: the customer's status card, queued on every status change
CASE_NEWS = "case_news"  # payload {"case_no", "from", "to", "note"}: a message when the customer must act
INFO_REMINDER = "info_reminder"  # payload {"case_no", "close"}: a needs_info case waits on the customer
DEADLINE_MOVED = "deadline_moved"  # payload {"case_no", "deadline", "new_due"}: the apology for a missed date
# payload {"case_no", "deadline", "due", "new_due"} (a missed date) or {"case_no", "text_key", "params"}: to
# the supervisors' chat
SUPERVISOR_ALERT = "supervisor_alert"
CUSTOMER_TEXT = "customer_text"  # payload {"text_key", "params", "locale"}: a bot message to the customer

# The agents' desk.
DESK_CARD = "desk_card"  # payload {"key"}: (re)render the item's card in its topic
DESK_ALBUM = "desk_album"  # payload {"key", "offset"}: up to ALBUM_SIZE of the case's evidence files
DESK_COPY = "desk_copy"  # payload {"key", "direction", "from_chat_id", "message_id", "text" (plain text)}
DESK_EDIT = "desk_edit"  # payload {"key", "direction", "from_chat_id", "message_id", "text"}
DESK_TEXT = "desk_text"  # payload {"key", "text_key", "params", "buttons"?}: a bot message in the item's topic
# A desk copy's direction: a customer's message into the topic, or the owner's out to the customer.
TO_DESK, TO_CUSTOMER = "to_desk", "to_customer"

ALBUM_SIZE = 10  # files per album (Telegram's limit for a media group)


def album_rows(case: Case, chat_id: int, at: datetime, tag: str) -> list[OutboxMessage]:
    """desk_album rows for all of a case's evidence (10 files each); `tag` keeps them apart from the
    albums of another topic or another evidence count."""
    return [OutboxMessage(kind=DESK_ALBUM, chat_id=chat_id, dedupe_key=f"desk:{case.case_no}:album:{tag}:{offset}",
                          payload={"key": case.case_no, "offset": offset}, created_at=at)
            for offset in range(0, len(case.evidence), ALBUM_SIZE)]
