"""The shape of the settings the core obeys. bot/config.py reads them from TOML; nothing here reads files."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialogs.domain import PaymentChannel, Reason


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderSettings(_Frozen):
    # A platform's order numbers: the default fits the demo orders (KM + 14 digits, e.g. KM20261124000001).
    number_pattern: str = r"KM\d{14}"
    number_example: str = "KM20261124000001"
    # Failed lookups (bad number, not found, not yours) before a cool-down, within this window.
    max_failed_lookups: int = Field(5, ge=1)
    failed_lookup_window_minutes: int = Field(60, ge=1)
    cooldown_minutes: int = Field(60, ge=1)

    @field_validator("number_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


def _default_evidence() -> dict[Reason, int]:
    return {
        Reason.CARD_INVALID: 1,
        Reason.CARD_USED: 1,
        Reason.CARD_CANNOT_ACTIVATE: 1,
        Reason.CARD_NOT_RECEIVED: 0,
        Reason.TOPUP_NOT_CREDITED: 0,
        Reason.TOPUP_DUPLICATE: 1,
        Reason.TOPUP_WRONG_AMOUNT: 1,
        Reason.MEMBERSHIP_NOT_ACTIVATED: 0,
        Reason.NOT_AS_DESCRIBED: 1,
        Reason.OTHER: 0,
    }


class PolicySettings(_Frozen):
    # Card codes that are invalid / used before delivery / cannot be activated: full refund within this window.
    card_claim_window_hours: int = Field(24, ge=0)
    # Tags that mark special goods (限时折扣, 定制): always a human, with their own refund note.
    special_tags: tuple[str, ...] = ("discount", "custom")
    # Review promise in Chinese working days: "1-3 working days", deadline = the max.
    review_min_working_days: int = Field(1, ge=0)
    review_working_days: int = Field(3, ge=1)
    # Evidence: minimum screenshots per reason (0 = optional) and the maximum per case.
    min_evidence: dict[Reason, int] = Field(default_factory=_default_evidence)
    max_evidence: int = Field(5, ge=1, le=10)
    max_photo_mb: float = Field(10, gt=0)
    max_document_mb: float = Field(20, gt=0)
    max_pixels: int = Field(40_000_000, gt=0)
    # Coaching: a description must carry this much concrete text once vague phrases are removed
    # (a CJK character weighs 2, anything else 1).
    min_description_weight: int = Field(10, ge=1)
    max_description_chars: int = Field(1000, ge=50)
    vague_phrases: tuple[str, ...] = (
        "不满意", "商品不好", "不好", "太差", "垃圾", "差评", "不行", "有问题", "退款", "我要退款", "不想要了",
        "bad", "not good", "terrible", "refund", "i want a refund", "not satisfied", "unhappy", "problem",
        "doesn't work", "does not work", "not working", "broken", "useless",
    )
    # Working days past the years chinese-calendar knows: weekends plus these.
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()
    # The full refund policy's web page: /help and every rejection link to it; "" = no link.
    url: str = ""

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("policy url must start with https:// or http://")
        return value

    def evidence_needed(self, reason: Reason) -> int:
        return self.min_evidence.get(reason, 0)


class I18nSettings(_Frozen):
    default_locale: str = "zh_CN"
    timezone: str = "Asia/Shanghai"

    @field_validator("default_locale")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ("zh_CN", "en"):
            raise ValueError("default_locale must be zh_CN or en")
        return value


def _default_credit_days() -> dict[PaymentChannel, int]:
    # 1-5 working days by payment route, as the platform's refund guide promises.
    return {
        PaymentChannel.BALANCE: 1,
        PaymentChannel.ALIPAY: 3,
        PaymentChannel.WECHAT: 3,
        PaymentChannel.BANK_CARD: 5,
    }


class SlaSettings(_Frozen):
    # The review deadline is policy.review_working_days; the credit deadline depends on the route.
    credit_working_days: dict[PaymentChannel, int] = Field(default_factory=_default_credit_days)
    # needs_info: remind the customer after these hours of silence, close the case after close_after_days.
    needs_info_reminder_hours: tuple[int, ...] = (24, 72)
    needs_info_close_days: int = Field(7, ge=1)
    # A review or credit that passes its deadline moves by this many working days (with an apology).
    overdue_extension_working_days: int = Field(2, ge=1)
    # The supervisors' chat (a group id, negative) alerted when a deadline passes; 0 = nobody.
    supervisors_chat_id: int = 0

    def credit_days(self, channel: PaymentChannel) -> int:
        return self.credit_working_days.get(channel, max(self.credit_working_days.values(), default=5))


class AutoApproveSettings(_Frozen):
    # A rule-eligible case whose facts the order data confirms (card code not redeemed, top-up not
    # credited, duplicate charge) skips review up to this amount in CNY.
    enabled: bool = False
    max_amount: Decimal = Field(Decimal(200), ge=0)


class CannedReply(_Frozen):
    key: str
    zh_CN: str
    en: str


def _default_canned() -> tuple[CannedReply, ...]:
    return (
        CannedReply(key="redeemed", zh_CN="平台记录显示该卡密已在发货后被兑换，不符合退款条件。",
                    en="Our records show the code was redeemed after delivery, so it cannot be refunded."),
        CannedReply(key="credited", zh_CN="充值已到账（平台与运营商记录一致），不符合退款条件。",
                    en="The top-up was credited (the platform's and the operator's records agree), so it cannot be refunded."),
        CannedReply(key="no_proof", zh_CN="所提供的截图无法证明问题，请补充清晰的报错截图后申诉。",
                    en="The screenshots do not show the problem; please appeal with a clear screenshot of the error."),
    )


class DeskSettings(_Frozen):
    # The agents' forum supergroup (a negative id); 0 = no desk: cases wait for `refundbot cases move`.
    chat_id: int = 0
    # Who may act on the desk (Telegram user ids); supervisors are agents too and confirm big approvals.
    agents: tuple[int, ...] = ()
    supervisors: tuple[int, ...] = ()
    # The names customers see instead of the agents' accounts; default "客服1号" / "Agent 1" by position.
    aliases: dict[int, str] = Field(default_factory=dict)
    # An approval above this amount (CNY) needs a second person, a supervisor, to confirm.
    confirm_above: Decimal = Field(Decimal(500), ge=0)
    # An agent who took a chat over and goes quiet is reminded, then the case returns to the queue.
    idle_remind_minutes: int = Field(10, ge=1)
    idle_release_minutes: int = Field(20, ge=1)
    canned: tuple[CannedReply, ...] = Field(default_factory=_default_canned)

    def is_agent(self, user_id: int) -> bool:
        return user_id in self.agents or user_id in self.supervisors

    def is_supervisor(self, user_id: int) -> bool:
        return user_id in self.supervisors

    def alias(self, user_id: int, locale: str) -> str:
        if user_id in self.aliases:
            return self.aliases[user_id]
        staff = list(dict.fromkeys(self.agents + self.supervisors))
        n = staff.index(user_id) + 1 if user_id in staff else 0
        return f"客服{n}号" if locale == "zh_CN" else f"Agent {n}"


class CoreSettings(_Frozen):
    orders: OrderSettings = OrderSettings()
    policy: PolicySettings = PolicySettings()
    i18n: I18nSettings = I18nSettings()
    sla: SlaSettings = SlaSettings()
    auto_approve: AutoApproveSettings = AutoApproveSettings()
    desk: DeskSettings = DeskSettings()
