from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind, Reason, Verdict
from dialogs.policy import RULE_IDS, decide, reasons_for
from dialogs.settings import PolicySettings
from dialogs.texts import Texts

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
POLICY = PolicySettings()
D, F, P = DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.PENDING


def order(kind=ProductKind.CARD_CODE, status=D, age_h=2.0, redeemed=None, credited=None, tags=()):
    return Order(order_no="KM20261124000001", buyer_phone="13800001234", product_name="x", product_kind=kind,
                 amount=Decimal(10), payment_channel=PaymentChannel.ALIPAY,
                 paid_at=NOW - timedelta(hours=age_h + 0.1), delivery_status=status,
                 delivered_at=NOW - timedelta(hours=age_h) if status is D else None,
                 card_redeemed=redeemed, topup_credited=credited, tags=frozenset(tags))


CASES = [
    (order(redeemed=False), Reason.CARD_INVALID, Verdict.ELIGIBLE, "CARD_DEFECT_IN_WINDOW"),
    (order(redeemed=False, age_h=23.9), Reason.CARD_USED, Verdict.ELIGIBLE, "CARD_DEFECT_IN_WINDOW"),
    (order(redeemed=False, age_h=24.1), Reason.CARD_CANNOT_ACTIVATE, Verdict.NOT_ELIGIBLE, "CARD_DEFECT_LATE"),
    (order(redeemed=True), Reason.CARD_INVALID, Verdict.NOT_ELIGIBLE, "CARD_REDEEMED"),
    (order(redeemed=None), Reason.CARD_INVALID, Verdict.REVIEW, "CARD_REDEEM_UNKNOWN"),
    (order(status=F), Reason.CARD_NOT_RECEIVED, Verdict.ELIGIBLE, "NOT_DELIVERED"),
    (order(), Reason.CARD_NOT_RECEIVED, Verdict.REVIEW, "DELIVERY_DISPUTED"),
    (order(ProductKind.DIRECT_TOPUP, F, credited=False), Reason.TOPUP_NOT_CREDITED, Verdict.ELIGIBLE,
     "TOPUP_NOT_CREDITED"),
    (order(ProductKind.DIRECT_TOPUP, credited=True), Reason.TOPUP_NOT_CREDITED, Verdict.NOT_ELIGIBLE,
     "TOPUP_ALREADY_CREDITED"),
    (order(ProductKind.DATA_PLAN, P), Reason.TOPUP_NOT_CREDITED, Verdict.REVIEW, "TOPUP_CREDIT_UNKNOWN"),
    (order(ProductKind.DIRECT_TOPUP, credited=True), Reason.TOPUP_DUPLICATE, Verdict.REVIEW, "PLATFORM_FAULT_CHECK"),
    (order(ProductKind.DIRECT_TOPUP, credited=True), Reason.TOPUP_WRONG_AMOUNT, Verdict.REVIEW,
     "PLATFORM_FAULT_CHECK"),
    (order(ProductKind.MEMBERSHIP, P), Reason.MEMBERSHIP_NOT_ACTIVATED, Verdict.ELIGIBLE,
     "MEMBERSHIP_NOT_ACTIVATED"),
    (order(ProductKind.MEMBERSHIP), Reason.MEMBERSHIP_NOT_ACTIVATED, Verdict.REVIEW, "MEMBERSHIP_ACTIVE"),
    (order(redeemed=False, tags=("discount",)), Reason.CARD_INVALID, Verdict.REVIEW, "SPECIAL_GOODS"),
    (order(ProductKind.OTHER, tags=("custom",)), Reason.OTHER, Verdict.REVIEW, "SPECIAL_GOODS"),
    (order(ProductKind.OTHER), Reason.NOT_AS_DESCRIBED, Verdict.REVIEW, "HUMAN_JUDGEMENT"),
]


@pytest.mark.parametrize(("the_order", "reason", "verdict", "rule"), CASES)
def test_verdict_names_the_rule(the_order, reason, verdict, rule):
    decision = decide(the_order, reason, NOW, POLICY)
    assert (decision.verdict, decision.rule_id) == (verdict, rule)


def test_every_rule_is_exercised_and_explained_in_both_languages():
    assert {rule for *_, rule in CASES} == set(RULE_IDS)
    for locale in ("zh_CN", "en"):
        for rule in RULE_IDS:
            assert Texts(locale)(f"rule.{rule}", hours=24)


def test_the_claim_window_comes_from_config():
    late = order(redeemed=False, age_h=30)
    assert decide(late, Reason.CARD_INVALID, NOW, POLICY).verdict is Verdict.NOT_ELIGIBLE
    wide = POLICY.model_copy(update={"card_claim_window_hours": 48})
    assert decide(late, Reason.CARD_INVALID, NOW, wide).verdict is Verdict.ELIGIBLE


def test_reasons_fit_the_product():
    assert Reason.CARD_INVALID in reasons_for(ProductKind.CARD_CODE)
    assert Reason.TOPUP_DUPLICATE not in reasons_for(ProductKind.CARD_CODE)
    assert reasons_for(ProductKind.MEMBERSHIP)[0] is Reason.MEMBERSHIP_NOT_ACTIVATED
    assert set(reasons_for(ProductKind.OTHER)) == {Reason.NOT_AS_DESCRIBED, Reason.OTHER}
