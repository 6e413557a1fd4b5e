"""The order ledger's arithmetic (dialogs/ledger.py); its locking is proven in tests/storage/test_money_safety.py."""

from __future__ import annotations

from decimal import Decimal

from dialogs.domain import RefundAttempt, RefundStatus
from dialogs.ledger import balance, case_room, open_attempt
from tests.storage.factories import T0, make_case

S, P, R, F = RefundStatus.SUCCEEDED, RefundStatus.PENDING, RefundStatus.REQUESTED, RefundStatus.FAILED


def attempt(case_no: str, amount: str, status: RefundStatus, n: int = 1) -> RefundAttempt:
    return RefundAttempt(case_no=case_no, idempotency_key=f"{case_no}-{n}", gateway="manual",
                         amount=Decimal(amount), status=status, created_at=T0)


def test_the_balance_counts_succeeded_and_in_flight_attempts_but_not_failed_ones() -> None:
    got = balance(Decimal("50.00"), [attempt("A", "20", S), attempt("B", "10", P), attempt("C", "5", R),
                                     attempt("D", "50", F)])
    assert (got.refunded, got.in_flight, got.remaining) == (Decimal(20), Decimal(15), Decimal(15))


def test_the_remainder_never_goes_below_zero() -> None:
    assert balance(Decimal(10), [attempt("A", "20", S)]).remaining == 0


def test_a_case_gets_its_claim_less_its_own_refunds_never_more_than_the_order_has_left() -> None:
    case = make_case(amount=Decimal(120))
    mine = [attempt(case.case_no, "20", S)]
    assert case_room(case, mine, balance(Decimal(150), mine)) == Decimal(100)
    assert case_room(case, [], balance(Decimal(100), [])) == Decimal(100)
    others = [attempt("OTHER", "90", S)]
    assert case_room(case, [], balance(Decimal(100), others)) == Decimal(10)


def test_the_open_attempt_is_the_pending_or_requested_one() -> None:
    assert open_attempt([attempt("A", "1", F), attempt("A", "1", R, 2)]) == attempt("A", "1", R, 2)
    assert open_attempt([attempt("A", "1", F), attempt("A", "1", S, 2)]) is None
