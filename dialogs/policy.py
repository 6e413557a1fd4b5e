"""The refund policy: which reasons fit a product and which rule decides a claim.

Every verdict names the rule that produced it (`rule_id`), so the customer, an agent and an
auditor see the same why: the customer by the rule's plain title (dialogs.words.rule_title), the desk,
history and exports by its id. Numbers come from `PolicySettings`, never from code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dialogs.domain import DeliveryStatus, Order, ProductKind, Reason, Verdict
from dialogs.settings import PolicySettings

_CARD = (Reason.CARD_INVALID, Reason.CARD_USED, Reason.CARD_CANNOT_ACTIVATE, Reason.CARD_NOT_RECEIVED)
_TOPUP = (Reason.TOPUP_NOT_CREDITED, Reason.TOPUP_DUPLICATE, Reason.TOPUP_WRONG_AMOUNT)
_ANY = (Reason.NOT_AS_DESCRIBED, Reason.OTHER)

REASONS_BY_KIND: dict[ProductKind, tuple[Reason, ...]] = {
    ProductKind.CARD_CODE: _CARD + _ANY,
    ProductKind.DIRECT_TOPUP: _TOPUP + _ANY,
    ProductKind.DATA_PLAN: _TOPUP + _ANY,
    ProductKind.MEMBERSHIP: (Reason.MEMBERSHIP_NOT_ACTIVATED,) + _ANY,
    ProductKind.OTHER: _ANY,
}

# Every rule id the policy can produce; the catalog titles (rule_title.<ID>) and explains (rule.<ID>) each.
RULE_IDS = (
    "SPECIAL_GOODS",
    "CARD_DEFECT_IN_WINDOW",
    "CARD_DEFECT_LATE",
    "CARD_REDEEMED",
    "CARD_REDEEM_UNKNOWN",
    "NOT_DELIVERED",
    "DELIVERY_DISPUTED",
    "TOPUP_NOT_CREDITED",
    "TOPUP_ALREADY_CREDITED",
    "TOPUP_CREDIT_UNKNOWN",
    "PLATFORM_FAULT_CHECK",
    "MEMBERSHIP_NOT_ACTIVATED",
    "MEMBERSHIP_ACTIVE",
    "HUMAN_JUDGEMENT",
)


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    rule_id: str


def reasons_for(kind: ProductKind) -> tuple[Reason, ...]:
    return REASONS_BY_KIND[kind]


def is_special(order: Order, policy: PolicySettings) -> bool:
    return bool(order.tags & set(policy.special_tags))


def decide(order: Order, reason: Reason, now: datetime, policy: PolicySettings) -> Decision:
    """The verdict for a claim, before the customer writes anything."""
    if is_special(order, policy):
        return Decision(Verdict.REVIEW, "SPECIAL_GOODS")
    if reason in (Reason.CARD_INVALID, Reason.CARD_USED, Reason.CARD_CANNOT_ACTIVATE):
        return _card_defect(order, now, policy)
    if reason in (Reason.CARD_NOT_RECEIVED, Reason.MEMBERSHIP_NOT_ACTIVATED):
        if order.delivery_status is not DeliveryStatus.DELIVERED:
            rule = "NOT_DELIVERED" if reason is Reason.CARD_NOT_RECEIVED else "MEMBERSHIP_NOT_ACTIVATED"
            return Decision(Verdict.ELIGIBLE, rule)
        # The platform says it delivered: only a person can weigh the customer's word against it.
        rule = "DELIVERY_DISPUTED" if reason is Reason.CARD_NOT_RECEIVED else "MEMBERSHIP_ACTIVE"
        return Decision(Verdict.REVIEW, rule)
    if reason is Reason.TOPUP_NOT_CREDITED:
        if order.delivery_status is DeliveryStatus.FAILED or order.topup_credited is False:
            return Decision(Verdict.ELIGIBLE, "TOPUP_NOT_CREDITED")
        if order.topup_credited is True:
            return Decision(Verdict.NOT_ELIGIBLE, "TOPUP_ALREADY_CREDITED")
        return Decision(Verdict.REVIEW, "TOPUP_CREDIT_UNKNOWN")
    if reason in (Reason.TOPUP_DUPLICATE, Reason.TOPUP_WRONG_AMOUNT):
        # Already credited, but the platform may be at fault (a duplicate charge): a person checks.
        return Decision(Verdict.REVIEW, "PLATFORM_FAULT_CHECK")
    return Decision(Verdict.REVIEW, "HUMAN_JUDGEMENT")


def _card_defect(order: Order, now: datetime, policy: PolicySettings) -> Decision:
    if order.card_redeemed is True:
        return Decision(Verdict.NOT_ELIGIBLE, "CARD_REDEEMED")
    completed = order.delivered_at or order.paid_at
    if now - completed > timedelta(hours=policy.card_claim_window_hours):
        return Decision(Verdict.NOT_ELIGIBLE, "CARD_DEFECT_LATE")
    if order.card_redeemed is None:
        return Decision(Verdict.REVIEW, "CARD_REDEEM_UNKNOWN")
    return Decision(Verdict.ELIGIBLE, "CARD_DEFECT_IN_WINDOW")
