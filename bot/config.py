"""Configuration: a TOML file (default ./config.toml, else built-in defaults) plus environment
overrides for secrets. The wiring is the only reader; everything else receives typed settings."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from dialogs.domain import PaymentChannel, ProductKind
from dialogs.settings import (
    AutoApproveSettings,
    CoreSettings,
    DashboardSettings,
    DeskSettings,
    FaqEntry,
    I18nSettings,
    OrderSettings,
    PolicySettings,
    SlaSettings,
)

DEFAULT_PATH = Path("config.toml")

MAX_ANSWER_BYTES = 1 << 20  # [platform] max_answer_bytes by default

# Telegram's rule for setWebhook's secret_token.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")

# Secrets may come from the environment so they stay out of files under version control.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "REFUNDBOT_TOKEN": ("telegram", "token"),
    "REFUNDBOT_WEBHOOK_SECRET": ("telegram", "webhook_secret"),
    "REFUNDBOT_DATABASE_URL": ("database", "url"),
    "REFUNDBOT_PLATFORM_SECRET": ("platform", "secret"),
    "REFUNDBOT_ORDER_LINK_SECRET": ("orders", "link_secret"),  # the shop's signed 申请退款 link
    "REFUNDBOT_REDIS_URL": ("redis", "url"),  # may carry a password
    "REFUNDBOT_DASHBOARD_PASSWORD": ("dashboard", "password"),
    # PEM text, the bare base64 Alipay's key tool prints, or a path to either.
    "REFUNDBOT_ALIPAY_APP_PRIVATE_KEY": ("platform", "alipay", "app_private_key"),
    "REFUNDBOT_ALIPAY_PUBLIC_KEY": ("platform", "alipay", "alipay_public_key"),
    "REFUNDBOT_REDEEM_SECRET": ("orders", "redeem_check", "secret"),
    # The card shops' database URLs carry a password; dujiaoka's hook secret is a password too.
    "REFUNDBOT_DUJIAOKA_URL": ("orders", "dujiaoka", "url"),
    "REFUNDBOT_DUJIAOKA_HOOK_SECRET": ("orders", "dujiaoka", "hook_secret"),
    "REFUNDBOT_ACG_FAKA_URL": ("orders", "acg_faka", "url"),
    "REFUNDBOT_DUJIAO_NEXT_API_SECRET": ("orders", "dujiao_next", "api_secret"),
    "REFUNDBOT_DUJIAO_NEXT_ADMIN_TOKEN": ("orders", "dujiao_next", "admin_token"),
}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TelegramConfig(_Section):
    token: str = ""  # empty: run against the built-in emulator
    api_base: str = ""  # a self-hosted Bot API server; empty = Telegram (or the emulator with no token)
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""  # the public URL Telegram posts to, e.g. https://bot.example.com/telegram/webhook
    webhook_secret: str = ""
    webhook_path: str = "/telegram/webhook"
    # The bot's @username without the @, for the links `refundbot orders link` prints; empty: asked by getMe.
    username: str = ""
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(8080, ge=0, le=65535)
    # Several processes on one listen_port (SO_REUSEPORT; Linux spreads connections over them): set by
    # `refundbot run --workers N` for its workers, or by you when a process manager starts N of them.
    reuse_port: bool = False
    framework: Literal["aiogram", "ptb"] = "aiogram"  # ptb: python-telegram-bot
    poll_timeout: int = Field(25, ge=0, le=50)
    flood_max_updates: int = Field(30, ge=1)
    flood_window_seconds: float = Field(10, gt=0)

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_accepts_the_secret(cls, value: str) -> str:
        if value and not WEBHOOK_SECRET.fullmatch(value):
            raise ValueError("Telegram accepts only 1-256 characters of A-Z, a-z, 0-9, _ and - "
                             "as a webhook secret token")
        return value

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> TelegramConfig:
        # Without it anyone who finds the URL can post updates "from" any user, an agent's id included.
        if self.mode == "webhook" and not self.webhook_secret:
            raise ValueError('mode = "webhook" needs [telegram] webhook_secret (or REFUNDBOT_WEBHOOK_SECRET): '
                             "without it anyone could post updates in any user's name")
        return self


class DatabaseConfig(_Section):
    url: str = "sqlite:///data/refundbot.db"
    # true: `refundbot run` applies pending migrations; false: it refuses to start until `db upgrade`.
    auto_upgrade: bool = True


class StorageConfig(_Section):
    evidence_dir: str = "data/evidence"
    # Evidence of a draft never filed is deleted (rows and files) once its last file is this old; files
    # no row names at all go too. Never anything of a filed case.
    draft_evidence_days: float = Field(7, gt=0)
    evidence_sweep_minutes: float = Field(60, gt=0)
    # Retention: the evidence (rows and files) of a case closed more than this many days ago is deleted
    # by the evidence sweep, and the buyer's phone number on its order once no case of the order is open
    # or recently closed; the case keeps a note. 0 keeps everything forever.
    keep_days: float = Field(0, ge=0)


class SandboxConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    demo_orders: bool = True


class RelayConfig(_Section):
    """The notification relay: Telegram's sending limits, as the bot must keep them."""

    per_chat_per_second: float = Field(1, gt=0)
    per_group_per_minute: float = Field(20, gt=0)
    global_per_second: float = Field(30, gt=0)
    batch_size: int = Field(100, ge=1)
    # A claimed row belongs to this relay for lease_seconds; after a crash another relay takes it.
    lease_seconds: float = Field(60, gt=0)
    idle_poll_seconds: float = Field(0.5, gt=0)
    max_backoff_seconds: float = Field(300, gt=0)
    # A call without an answer this long counts as failed for now (5xx-like); a topic being made is
    # still waited for (bot.workers.relay), never made twice.
    send_timeout_seconds: float = Field(8, gt=0)


class RedisConfig(_Section):
    """Optional Redis shared by the bot's workers, so that together they keep Telegram's sending limits."""

    url: str = ""  # e.g. redis://127.0.0.1:6379/0; empty: off (each worker paces itself alone)
    key_prefix: str = "refundbot:rate"  # keys: <prefix>:global, <prefix>:chat:<id>, <prefix>:group:<id>
    timeout_seconds: float = Field(0.1, gt=0)  # a slower answer counts as Redis away
    # With Redis away each worker sends at most global_per_second / expected_workers.
    expected_workers: int = Field(1, ge=1)
    retry_seconds: float = Field(5, gt=0)  # Redis away: how long before it is tried again


class EpayConfig(_Section):
    """彩虹易支付 (`[platform.rails] epay = "epay"`): refunds back through the shop's epay merchant account
    (bot/rails/epay.py). v1: the MD5 merchant key (better: env REFUNDBOT_EPAY_KEY). v2: the merchant RSA
    private key and the platform's RSA public key, as PEM files (or env REFUNDBOT_EPAY_MERCHANT_PRIVATE_KEY /
    REFUNDBOT_EPAY_PLATFORM_PUBLIC_KEY holding the PEM or its bare base64)."""

    api_url: str = ""  # the epay site, e.g. https://pay.example.com/ (api.php and api/pay/... live under it)
    pid: str = ""  # 商户ID
    version: Literal[1, 2] = 2
    key: str = ""  # v1: 商户密钥
    merchant_private_key_file: str = ""  # v2: 商户私钥 (PEM)
    platform_public_key_file: str = ""  # v2: 平台公钥 (PEM)


class AlipayConfig(_Section):
    """[platform.alipay]: refunds paid back on Alipay (bot/rails/alipay.py). The keys are read when the
    gateway is built and never logged; the *_file settings name files, the environment may carry the
    keys themselves (REFUNDBOT_ALIPAY_APP_PRIVATE_KEY, REFUNDBOT_ALIPAY_PUBLIC_KEY)."""

    app_id: str = ""
    app_private_key_file: str = ""  # the app's RSA2 private key (PEM, or the key tool's bare base64)
    alipay_public_key_file: str = ""  # 支付宝公钥 from the console (not the app's own public key)
    # The keys as text (or a path), usually from the environment; they win over the *_file settings.
    app_private_key: str = Field("", repr=False)
    alipay_public_key: str = Field("", repr=False)
    sandbox: bool = False  # Alipay's sandbox gateway (openapi-sandbox.dl.alipaydev.com)
    gateway_url: str = ""  # overrides both gateways (a local fake in tests)
    sign_type: Literal["RSA2"] = "RSA2"


class WechatConfig(_Section):
    """WeChat Pay API v3 (`[platform.rails] wechat = "wechat"`): refunds back to WeChat Pay, and its
    refund notifications at POST /api/v1/rails/wechat/refund. Key material is read from files (or the
    environment: REFUNDBOT_WECHAT_APIV3_KEY, REFUNDBOT_WECHAT_PRIVATE_KEY), never from this file."""

    mchid: str = ""  # 商户号
    appid: str = ""
    apiv3_key: str = ""  # the APIv3 key (32 characters); better: env REFUNDBOT_WECHAT_APIV3_KEY
    private_key_file: str = ""  # apiclient_key.pem, the merchant API key (or env REFUNDBOT_WECHAT_PRIVATE_KEY)
    cert_serial_no: str = ""  # the merchant API certificate's serial number
    # Answers and notifications are verified with the "WeChat Pay public key" (file + its PUB_KEY_ID_...)…
    platform_public_key_file: str = ""
    public_key_id: str = ""
    # …or, in the older mode, with the platform certificates in this directory (downloaded when empty).
    platform_cert_dir: str = ""
    notify_url: str = ""  # https://bot.example.com/api/v1/rails/wechat/refund
    api_base: str = ""  # empty: https://api.mch.weixin.qq.com (tests point it at a local fake)


class DujiaoNextConfig(_Section):
    """`[orders.dujiao_next]`: a Dujiao-Next shop (bot/shops/dujiao_next.py): its orders (`[orders] source =
    "dujiao_next"`), its callback (POST /api/v1/shops/dujiao-next/callback) and refunds to the buyer's
    Dujiao-Next wallet (`[platform.rails] balance = "dujiao_next"`, bot/rails/dujiao_next.py)."""

    base_url: str = ""  # the shop's root URL, e.g. https://shop.example.com (its API is under /api/v1)
    api_key: str = ""  # Dujiao-Next-Api-Key: the API credential approved in the shop's admin panel
    api_secret: str = Field("", repr=False)  # its API Secret (better: env REFUNDBOT_DUJIAO_NEXT_API_SECRET)
    admin_token: str = Field("", repr=False)  # an admin JWT for /api/v1/admin (env REFUNDBOT_DUJIAO_NEXT_ADMIN_TOKEN)
    # Orders paid online (not from the wallet): the channel their refunds are routed by in [platform.rails].
    online_channel: PaymentChannel = PaymentChannel.EPAY
    timeout_seconds: float = Field(10, gt=0)
    max_answer_bytes: int = Field(MAX_ANSWER_BYTES, ge=1024)
    # Dujiao-Next's own window for a signed request is ±60 s; its callbacks are held to the same.
    max_clock_skew_seconds: int = Field(60, ge=1)


class PlatformConfig(_Section):
    """The shop platform: where refunds are paid and orders read, and the secret its calls are signed with."""

    # "manual": approval puts the case in refunding and finance confirms (`refundbot cases
    # mark-refunded CASE` or the API). "http": refundbot calls refund_url.
    gateway: Literal["manual", "http"] = "manual"
    refund_url: str = ""
    # Per payment channel, another gateway (bot/rails/): e.g. {alipay = "alipay", wechat = "wechat"}.
    # A channel not named here goes to `gateway`.
    rails: dict[PaymentChannel, str] = Field(default_factory=dict)
    # "local": orders come from `refundbot orders import` / the order-upsert callback. "http": GET orders_url/{order_no}.
    orders: Literal["local", "http"] = "local"
    orders_url: str = ""
    # HMAC-SHA256 secret shared with the platform, both ways (env REFUNDBOT_PLATFORM_SECRET).
    secret: str = ""
    # Signed requests older (or newer) than this are refused as replays.
    max_clock_skew_seconds: int = Field(300, ge=1)
    timeout_seconds: float = Field(10, gt=0)
    # The largest answer read from the platform; a larger one is an error, like an unreachable platform.
    max_answer_bytes: int = Field(MAX_ANSWER_BYTES, ge=1024)
    # "HH:MM" ([i18n] timezone): the workers reconcile yesterday's refunds with the rails once a day after
    # this time and alert the supervisors on a mismatch (bot/workers/reconcile.py). "": never.
    reconcile_at: str = ""
    epay: EpayConfig = EpayConfig()
    alipay: AlipayConfig = AlipayConfig()
    wechat: WechatConfig = WechatConfig()
    # [orders.dujiao_next], handed over by AppConfig: a rail is built from PlatformConfig alone, and the
    # Dujiao-Next wallet rail needs the shop's address and credentials.
    _dujiao_next: DujiaoNextConfig | None = PrivateAttr(None)

    @property
    def dujiao_next(self) -> DujiaoNextConfig:
        return self._dujiao_next or DujiaoNextConfig()

    def with_dujiao_next(self, shop: DujiaoNextConfig) -> PlatformConfig:
        copy = self.model_copy()
        copy._dujiao_next = shop
        return copy

    @field_validator("reconcile_at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f'{value!r} is not a time of day: "HH:MM" (e.g. "04:00"), or "" for never')
        return value


class RedeemCheckConfig(_Section):
    """`[orders.redeem_check]`: the shop's "was this 卡密 redeemed?" endpoint (bot/redeem.py). Empty url: no
    check; the order's own card_redeemed (import, platform) stands."""

    url: str = ""
    # HMAC-SHA256 secret the request is signed with, as the platform's calls are (env REFUNDBOT_REDEEM_SECRET).
    secret: str = Field("", repr=False)
    timeout_seconds: float = Field(5, gt=0)
def _default_kind_keywords() -> dict[str, ProductKind]:
    # Checked in this order against the names of goods a shop delivers by hand (auto-delivered goods
    # are 卡密): the words Chinese card shops name their top-ups and memberships with.
    return {"话费": ProductKind.DIRECT_TOPUP, "流量": ProductKind.DATA_PLAN, "会员": ProductKind.MEMBERSHIP,
            "VIP": ProductKind.MEMBERSHIP, "代充": ProductKind.DIRECT_TOPUP, "直充": ProductKind.DIRECT_TOPUP,
            "充值": ProductKind.DIRECT_TOPUP}


class ShopDatabaseConfig(_Section):
    """A card shop read straight from its own MySQL / MariaDB database (bot/shops/), read-only."""

    # e.g. "mysql+aiomysql://refundbot:PASSWORD@127.0.0.1:3306/dujiaoka" (a user with SELECT only).
    url: str = ""
    table_prefix: str = ""
    # The zone the shop writes its times in (dujiaoka's config/app.php "PRC", acg-faka's Asia/Shanghai).
    timezone: str = "Asia/Shanghai"
    connect_timeout_seconds: float = Field(5, gt=0)
    # A lookup slower than this reads as "shop unreachable, try again shortly".
    query_timeout_seconds: float = Field(5, gt=0)
    pool_size: int = Field(4, ge=1, le=64)
    # The shop's payment code (dujiaoka pays.pay_check, acg-faka pay.code) → channel, over the built-in
    # guesses (epay routes → epay; ali*/zfb → alipay; wx*/we*/wechat → wechat; acg-faka's balance).
    channels: dict[str, PaymentChannel] = Field(default_factory=dict)
    # A payment code neither named above nor guessed (PayPal, USDT, ...).
    fallback_channel: PaymentChannel = PaymentChannel.BANK_CARD
    # Goods id (dujiaoka goods.id, acg-faka commodity.id) → kind, over everything else.
    kinds: dict[str, ProductKind] = Field(default_factory=dict)
    # For goods delivered by hand: the first word found in the goods' name gives the kind (else "other").
    kind_keywords: dict[str, ProductKind] = Field(default_factory=_default_kind_keywords)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"{value!r} is not a time zone name (e.g. \"Asia/Shanghai\")") from exc
        return value

    @field_validator("table_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]*", value):
            raise ValueError("letters, digits and _ only")
        return value


class DujiaokaConfig(ShopDatabaseConfig):
    """`[orders.dujiaoka]`: 独角数卡's database, and the secret in the path of its api_hook."""

    # The goods' api_hook URL is https://bot.example.com/api/v1/shops/dujiaoka/hook/<hook_secret>; "": no hook.
    hook_secret: str = ""


class AcgFakaConfig(ShopDatabaseConfig):
    """`[orders.acg_faka]`: 异次元发卡's database (its installer's default table prefix is acg_)."""

    table_prefix: str = "acg_"


# A shop's own order numbers, used when `[orders] number_pattern` is left out.
SHOP_NUMBER_FORMATS: dict[str, tuple[str, str]] = {
    "dujiaoka": (r"[A-Z0-9]{16}", "6HX1Z2YQ4T8KBN3P"),
    "acg_faka": (r"\d{18}", "482261205143015519"),
    "dujiao_next": (r"DJ[0-9A-Z]{14,32}", "DJ20260301120000ABCD"),
}


class OrdersConfig(OrderSettings):
    """`[orders]`: the core's order-number rules (dialogs.settings.OrderSettings) and where orders come from."""

    # "local": the orders table (`refundbot orders import`, the order-upsert callback); "http": the
    # platform's GET orders_url/{order_no}; the card shops' own databases or APIs (bot/shops/).
    source: Literal["local", "http", "dujiaoka", "dujiao_next", "acg_faka"] = "local"
    redeem_check: RedeemCheckConfig = RedeemCheckConfig()
    dujiaoka: DujiaokaConfig = DujiaokaConfig()
    acg_faka: AcgFakaConfig = AcgFakaConfig()

    @model_validator(mode="before")
    @classmethod
    def _shop_number_format(cls, data: object) -> object:
        """A shop's number pattern and example unless the file names its own."""
        if isinstance(data, dict) and data.get("source") in SHOP_NUMBER_FORMATS:
            pattern, example = SHOP_NUMBER_FORMATS[data["source"]]
            if "number_pattern" not in data:
                data = {**data, "number_pattern": pattern, "number_example": data.get("number_example", example)}
        return data
    dujiao_next: DujiaoNextConfig = DujiaoNextConfig()


class LogConfig(_Section):
    """How `refundbot run` logs to standard error: "text" lines for people, "json" (one object per line,
    with the case and update_id) for a log collector. `refundbot run --log-format` overrides format."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class AppConfig(_Section):
    telegram: TelegramConfig = TelegramConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    sandbox: SandboxConfig = SandboxConfig()
    orders: OrdersConfig = OrdersConfig()
    policy: PolicySettings = PolicySettings()
    i18n: I18nSettings = I18nSettings()
    sla: SlaSettings = SlaSettings()
    auto_approve: AutoApproveSettings = AutoApproveSettings()
    desk: DeskSettings = DeskSettings()
    faq: tuple[FaqEntry, ...] = ()
    relay: RelayConfig = RelayConfig()
    redis: RedisConfig = RedisConfig()
    platform: PlatformConfig = PlatformConfig()
    log: LogConfig = LogConfig()
    dashboard: DashboardSettings = DashboardSettings()

    @model_validator(mode="after")
    def _rails_see_the_shop(self) -> AppConfig:
        object.__setattr__(self, "platform", self.platform.with_dujiao_next(self.orders.dujiao_next))
        return self

    @property
    def core(self) -> CoreSettings:
        return CoreSettings(orders=self.orders, policy=self.policy, i18n=self.i18n, sla=self.sla,
                            auto_approve=self.auto_approve, desk=self.desk, faq=self.faq)


def describe_errors(exc: ValidationError) -> str:
    """A ValidationError as one line per bad setting ("[telegram] mode: ..."), without echoing the values
    (they may be secrets)."""
    lines = []
    for error in exc.errors():
        section, *rest = [str(part) for part in error["loc"]] or ["(config)"]
        where = f"[{section}] {'.'.join(rest)}".strip()
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> AppConfig:
    """Read `path` (an explicit path must exist), else ./config.toml if present, else defaults."""
    env = os.environ if environ is None else environ
    raw: dict[str, dict[str, object]] = {}
    if path is not None:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    elif DEFAULT_PATH.exists():
        raw = tomllib.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    for var, (*sections, key) in ENV_OVERRIDES.items():
        if env.get(var):
            table: dict = raw
            for section in sections:  # [platform.alipay] is a table inside [platform]
                table = table.setdefault(section, {})
            table[key] = env[var]
    return AppConfig.model_validate(raw)


def explain_load_error(exc: Exception, path: str | Path | None) -> str:
    """Why load_config failed, for an operator: one line per problem, each naming where and the fix."""
    where = str(path) if path is not None else str(DEFAULT_PATH)
    if isinstance(exc, ValidationError):
        return describe_errors(exc)
    if isinstance(exc, FileNotFoundError):
        return (f"no file at {where}: copy config.example.toml there, or leave --config out to run on the "
                "built-in defaults")
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"{where} is not valid TOML: {exc} (fix that line; config.example.toml shows every setting)"
    if isinstance(exc, IsADirectoryError | PermissionError | UnicodeDecodeError):
        return f"cannot read {where}: {exc}"
    return f"{where}: {exc}"
