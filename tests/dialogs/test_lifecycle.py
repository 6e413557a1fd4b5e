"""Every allowed and every forbidden move of the case lifecycle, table-driven."""

import itertools

import pytest

from dialogs.domain import CaseStatus as C
from dialogs.lifecycle import TRIGGERS, ForbiddenTransition, allowed_triggers, next_status

ALLOWED = {
    (C.SUBMITTED, "start_review"): C.IN_REVIEW,
    (C.SUBMITTED, "auto_approve"): C.APPROVED,
    (C.SUBMITTED, "withdraw"): C.WITHDRAWN,
    (C.IN_REVIEW, "ask_info"): C.NEEDS_INFO,
    (C.IN_REVIEW, "approve"): C.APPROVED,
    (C.IN_REVIEW, "reject"): C.REJECTED,
    (C.IN_REVIEW, "withdraw"): C.WITHDRAWN,
    (C.NEEDS_INFO, "provide_info"): C.IN_REVIEW,
    (C.NEEDS_INFO, "withdraw"): C.WITHDRAWN,
    (C.NEEDS_INFO, "close_silent"): C.CLOSED,
    (C.APPROVED, "start_refund"): C.REFUNDING,
    (C.REFUNDING, "confirm_refund"): C.REFUNDED,
    (C.REFUNDING, "fail_refund"): C.REFUND_FAILED,
    (C.REFUND_FAILED, "retry_refund"): C.REFUNDING,
    (C.REFUND_FAILED, "hand_to_human"): C.IN_REVIEW,
    (C.REJECTED, "appeal"): C.APPEALED,
    (C.APPEALED, "approve"): C.APPROVED,
    (C.APPEALED, "reject_final"): C.REJECTED_FINAL,
}
FORBIDDEN = [pair for pair in itertools.product(C, TRIGGERS) if pair not in ALLOWED]


@pytest.mark.parametrize(("status", "trigger"), list(ALLOWED), ids=[f"{s.value}-{t}" for s, t in ALLOWED])
def test_allowed_move(status, trigger):
    assert next_status(status, trigger) is ALLOWED[(status, trigger)]


@pytest.mark.parametrize(("status", "trigger"), FORBIDDEN, ids=[f"{s.value}-{t}" for s, t in FORBIDDEN])
def test_forbidden_move_raises(status, trigger):
    with pytest.raises(ForbiddenTransition):
        next_status(status, trigger)


def test_an_unknown_trigger_is_forbidden():
    with pytest.raises(ForbiddenTransition):
        next_status(C.SUBMITTED, "to_refunded")  # no auto transitions


def test_final_statuses_allow_nothing():
    for status in (C.REFUNDED, C.REJECTED_FINAL, C.WITHDRAWN, C.CLOSED):
        assert allowed_triggers(status) == []


def test_the_table_covers_every_status():
    reached = {dest for dest in ALLOWED.values()} | {C.SUBMITTED}
    assert reached == set(C)
