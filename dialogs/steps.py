"""The steps of the customer's conversation (the states of dialogs.conversation's machine)."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    IDLE = "idle"
    AWAITING_ORDER = "awaiting_order"
    AWAITING_PHONE = "awaiting_phone"
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


# The steps that take a photo or a document: the draft's evidence, a needs_info case's added material,
# an appeal's new evidence. Anywhere else a file is not even downloaded (see RefundService.handle).
FILE_STEPS = frozenset({Step.COLLECTING_EVIDENCE, Step.ADDING_INFO, Step.APPEAL_EVIDENCE})
