"""The steps of the customer's conversation (the states of dialogs.conversation's machine)."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    IDLE = "idle"
    AWAITING_ORDER = "awaiting_order"
    AWAITING_PHONE = "awaiting_phone"
    # [orders] proof = "contact_password": the checkout e-mail / contact, then the 查询密码.
    AWAITING_CONTACT = "awaiting_contact"
    AWAITING_PASSWORD = "awaiting_password"
    CHOOSING_REASON = "choosing_reason"
    REVIEWING_VERDICT = "reviewing_verdict"
    DESCRIBING = "describing"
    COLLECTING_EVIDENCE = "collecting_evidence"
    CONFIRMING = "confirming"
    # After filing: actions on a case from its status card (dialogs.case_actions).
    CONFIRMING_WITHDRAW = "confirming_withdraw"
    ADDING_INFO = "adding_info"
    APPEAL_REASON = "appeal_reason"
    APPEAL_EVIDENCE = "appeal_evidence"
    RATING_COMMENT = "rating_comment"

