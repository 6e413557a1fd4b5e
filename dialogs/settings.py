"""The shape of the settings the core obeys. bot/config.py reads them from TOML; nothing here reads files."""

from __future__ import annotations

import re
import string
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
    # How an order not bound to the customer's Telegram account is proven theirs (dialogs.proof):
    # "phone" = the last four digits of the buyer's phone; "contact_password" = the e-mail / contact
    # given at checkout, then the order's 查询密码 (card shops collect no phone numbers).
    proof: Literal["phone", "contact_password"] = "phone"
    # HMAC-SHA256 key of the signed deep link behind the shop's 申请退款 button
    # (env REFUNDBOT_ORDER_LINK_SECRET); empty: every rf_ link is refused.
    link_secret: str = Field("", repr=False)

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
    # Other evidence (bot/evidence_media.py): short videos (MP4/MOV; the length read from the file),
    # PDFs and plain-text chat exports. Telegram's cloud Bot API downloads 20 MB at most, so a bigger
    # max_video_mb only helps with a local Bot API server.
    max_video_mb: float = Field(20, gt=0)
    max_video_seconds: int = Field(180, ge=1)
    max_pdf_mb: float = Field(10, gt=0)
    max_text_kb: int = Field(1024, ge=1)
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
        PaymentChannel.EPAY: 3,
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


_CLOCK_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
# The variables a customer-facing template may use: FAQ answers to a customer with an open case, and
# agents' macros (the case of the topic). Checked when the configuration is read.
FAQ_VARIABLES = frozenset({"case_no", "deadline", "order_no", "status"})
MACRO_VARIABLES = frozenset({"case_no", "amount", "refundable", "deadline", "order_no", "alias"})


def placeholders(template: str) -> set[str]:
    """The {names} a str.format template uses (ValueError when it is not one)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _only(template: str, allowed: frozenset[str]) -> str:
    try:
        used = placeholders(template)
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write {{{{ and }}}} for a literal brace") from exc
    unknown = used - allowed
    if unknown:
        raise ValueError(f"unknown variable(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return template


class HoursSettings(_Frozen):
    """When people answer on the desk, in [i18n] timezone. The default (00:00-24:00 every day) is always
    open; typical_reply_minutes = 0 promises no reply time (both: today's behaviour)."""

    start: str = "00:00"
    end: str = "24:00"  # an end before the start closes on the next day (e.g. 20:00-02:00)
    days: Literal["workdays", "every_day"] = "every_day"  # workdays: Chinese working days (dialogs.workdays)
    typical_reply_minutes: int = Field(0, ge=0)

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str, info: ValidationInfo) -> str:
        if not (_CLOCK_TIME.fullmatch(value) or (info.field_name == "end" and value == "24:00")):
            raise ValueError('a time of day as "HH:MM" (00:00-23:59; the end may be 24:00)')
        return value

    @model_validator(mode="after")
    def _some_time_open(self) -> HoursSettings:
        if self.start == self.end:
            raise ValueError("end must differ from start")
        return self

    @property
    def always_open(self) -> bool:
        return self.days == "every_day" and (self.start, self.end) == ("00:00", "24:00")


class Macro(_Frozen):
    """An agent's ready-made reply, `/m KEY` in a taken-over case's topic."""

    key: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    zh_CN: str
    en: str

    @field_validator("zh_CN", "en")
    @classmethod
    def _known_variables(cls, value: str) -> str:
        return _only(value, MACRO_VARIABLES)


class FaqEntry(_Frozen):
    """An auto-reply to a customer's free text that contains one of the keywords, where no free text is
    expected. `*_with_case` (optional) answer a customer with an open case and may use FAQ_VARIABLES;
    the plain answers are for everyone else."""

    keywords_zh_CN: tuple[str, ...] = ()
    keywords_en: tuple[str, ...] = ()
    zh_CN: str
    en: str
    zh_CN_with_case: str = ""
    en_with_case: str = ""

    @field_validator("zh_CN", "en")
    @classmethod
    def _plain(cls, value: str) -> str:
        return _only(value, frozenset())

    @field_validator("zh_CN_with_case", "en_with_case")
    @classmethod
    def _case_variables(cls, value: str) -> str:
        return _only(value, FAQ_VARIABLES)

    @model_validator(mode="after")
    def _has_keywords(self) -> FaqEntry:
        if not any(k.strip() for k in self.keywords_zh_CN + self.keywords_en):
            raise ValueError("an FAQ entry needs at least one keyword")
        return self


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
    hours: HoursSettings = HoursSettings()
    macros: tuple[Macro, ...] = ()

    @field_validator("macros")
    @classmethod
    def _unique_keys(cls, value: tuple[Macro, ...]) -> tuple[Macro, ...]:
        keys = [m.key.lower() for m in value]
        if len(keys) != len(set(keys)):
            raise ValueError("two macros share a key")
        return value

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
    faq: tuple[FaqEntry, ...] = ()


class DashboardSettings(_Frozen):
    """The supervisors' web dashboard (/dashboard on the bot's web app; bot/dashboard)."""

    # A shared password (env REFUNDBOT_DASHBOARD_PASSWORD); "" = no password sign-in. With no password
    # and no Telegram sign-in (bot_username and a real token) the dashboard answers 404.
    password: str = ""
    # The bot's @username without the @: shows Telegram's Login Widget (the domain set with /setdomain).
    bot_username: str = ""
    session_hours: float = Field(12, gt=0, le=24 * 30)
    # Wrong passwords from one address within the window before it has to wait out the window.
    max_attempts: int = Field(5, ge=1)
    attempt_window_minutes: float = Field(15, gt=0)
    default_days: int = Field(30, ge=1, le=366)
