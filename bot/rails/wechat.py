"""Refunds back to WeChat Pay (API v3), on the wechatpayv3 SDK.

    POST /v3/refund/domestic/refunds                  out_refund_no = the attempt's idempotency key
    GET  /v3/refund/domestic/refunds/{out_refund_no}  asked before any retry of an unknown outcome

The SDK signs each request (WECHATPAY2-SHA256-RSA2048 with the merchant API key) and verifies each 2xx
answer with the WeChat Pay public key (or the platform certificates); an answer that fails verification
is never taken as paid (GatewayUnavailable: the worker asks again, and queries before any resend). The
SDK is blocking (requests): every call runs in a thread, under `[platform] timeout_seconds`.

Refund notifications (REFUND.SUCCESS / ABNORMAL / CLOSED) are verified and decrypted here
(`notification`); bot/rails/wechat_notify.py serves them and settles the attempts.
Key material is never logged nor put in an exception's words.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import PlatformConfig, WechatConfig
from dialogs.domain import RailError, RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, GatewayUnavailable, Payment, RailBusy

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
# The headers a signed answer or notification carries, as the SDK reads them.
SIGNED_HEADERS = ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial",
                  "Wechatpay-Signature-Type")

ABNORMAL = "abnormal: the buyer's account cannot receive it"
CLOSED = "closed: WeChat Pay closed the refund"

# Refusals WeChat Pay words in INVALID_REQUEST (and its kin) by message only: the words say which.
_CLOSED_WORDS = ("订单已关闭", "交易已关闭", "已关闭", "closed")
_WINDOW_WORDS = ("退款期限", "超过一年", "超过退款时间", "超过可退款时间", "refund period", "expired")
_AMOUNT_WORDS = ("可退金额", "退款金额超过", "金额超过", "exceed")
# Codes that mean "nothing was done, ask again later": WeChat's own trouble or our misconfiguration.
_UNAVAILABLE_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "SIGN_ERROR", "NO_AUTH", "MCH_NOT_EXISTS"})


class NotificationRefused(Exception):
    """A notification that cannot be trusted or read (bad signature, stale, undecryptable)."""


def fen(amount: Decimal) -> int:
    """Yuan to fen, exactly (WeChat Pay counts in fen); more than two decimals is a bug upstream."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has more than two decimals")
    return int(cents)


def classify_refusal(code: str, message: str) -> RailError:
    """Which shared refusal a WeChat Pay error is, from its code and words."""
    lowered = message.lower()
    if any(word in message or word in lowered for word in _CLOSED_WORDS):
        return RailError.TRADE_CLOSED
    if any(word in message or word in lowered for word in _WINDOW_WORDS):
        return RailError.WINDOW_PASSED
    if any(word in message or word in lowered for word in _AMOUNT_WORDS):
        return RailError.AMOUNT_TOO_HIGH
    return RailError.REJECTED


def _read_secret(file_setting: str, env_var: str | None, environ: Mapping[str, str], what: str) -> str:
    """The PEM text: from the environment when `env_var` is set there, else from the named file."""
    if env_var and environ.get(env_var):
        return environ[env_var]
    if not file_setting:
        return ""
    try:
        return Path(file_setting).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"[platform.wechat] {what}: cannot read {file_setting} ({exc.strerror})") from None


class WechatGateway:
    """Pays attempts back to WeChat Pay; see the module doc."""

    name = "wechat"

    def __init__(self, settings: WechatConfig, timeout: float = 10, *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time, max_clock_skew: float = 300) -> None:
        env = os.environ if environ is None else environ
        self.settings, self.timeout, self.clock, self.max_skew = settings, timeout, clock, max_clock_skew
        self.api_base = (settings.api_base or DEFAULT_API_BASE).rstrip("/")
        self._apiv3_key = env.get("REFUNDBOT_WECHAT_APIV3_KEY") or settings.apiv3_key
        self._private_key = _read_secret(settings.private_key_file, "REFUNDBOT_WECHAT_PRIVATE_KEY", env,
                                         "private_key_file")
        self._public_key = _read_secret(settings.platform_public_key_file, None, env, "platform_public_key_file")
        missing = [name for name, value in (("mchid", settings.mchid), ("appid", settings.appid),
                                            ("apiv3_key (or REFUNDBOT_WECHAT_APIV3_KEY)", self._apiv3_key),
                                            ("private_key_file (or REFUNDBOT_WECHAT_PRIVATE_KEY)", self._private_key),
                                            ("cert_serial_no", settings.cert_serial_no)) if not value]
        if not (self._public_key and settings.public_key_id) and not settings.platform_cert_dir:
            missing.append("platform_public_key_file + public_key_id (or platform_cert_dir)")
        if missing:
            raise ValueError(f'[platform.rails] sends refunds to "wechat" but [platform.wechat] lacks: '
                             f"{', '.join(missing)}")
        if len(self._apiv3_key.encode()) != 32:
            raise ValueError("[platform.wechat] apiv3_key must be the 32-character APIv3 key")
        self._sdk: Any = None
        self._sdk_lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: PlatformConfig) -> WechatGateway:
        return cls(config.wechat, config.timeout_seconds, max_clock_skew=config.max_clock_skew_seconds)

    def __repr__(self) -> str:  # never the keys
        return f"WechatGateway(mchid={self.settings.mchid!r}, api_base={self.api_base!r})"

    # -- the SDK, off the event loop ----------------------------------------------------------
    def _build_sdk(self) -> Any:
        from wechatpayv3 import WeChatPay, WeChatPayType

        public = bool(self._public_key and self.settings.public_key_id)
        try:
            sdk = WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=self.settings.mchid,
                            private_key=self._private_key, cert_serial_no=self.settings.cert_serial_no,
                            appid=self.settings.appid, apiv3_key=self._apiv3_key,
                            notify_url=self.settings.notify_url or None,
                            cert_dir=None if public else self.settings.platform_cert_dir,
                            timeout=self.timeout, public_key=self._public_key if public else None,
                            public_key_id=self.settings.public_key_id if public else None)
        except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception; its words name the part, not the key
            raise ValueError(f"[platform.wechat]: {exc}") from None
        sdk._core._gate_way = self.api_base  # the SDK has no setting for it; a fake in tests, a proxy in prod
        return sdk

    async def _client(self) -> Any:
        async with self._sdk_lock:
            if self._sdk is None:
                # Certificate mode may download the platform certificates while it starts: a thread.
                self._sdk = await asyncio.wait_for(asyncio.to_thread(self._build_sdk), self.timeout + 5)
            return self._sdk

    async def _request(self, what: str, call: Callable[[Any], tuple[int, Any]]) -> tuple[int, dict[str, Any], str]:
        """One SDK call in a thread: (HTTP status, the JSON answer, its text). Anything that leaves the
        outcome unknown — a timeout, a network error, an answer failing verification — is GatewayUnavailable."""
        try:
            sdk = await self._client()
            status, raw = await asyncio.wait_for(asyncio.to_thread(call, sdk), self.timeout + 5)
        except ValueError as exc:
            raise GatewayUnavailable(f"{what}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - requests' errors, the SDK's "failed to verify the signature"
            raise GatewayUnavailable(f"{what}: {type(exc).__name__}: {str(exc)[:200]}") from None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}, text[:300]

    # -- RefundGateway ------------------------------------------------------------------------
    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        key = attempt.idempotency_key
        amount = {"refund": fen(attempt.amount), "total": fen(payment.paid), "currency": "CNY"}
        status, answer, text = await self._request(f"refund {key}", lambda sdk: sdk.refund(
            out_refund_no=key, amount=amount, transaction_id=payment.trade_no or None,
            out_trade_no=payment.order_no, notify_url=self.settings.notify_url or None))
        if 200 <= status < 300:
            return self._read_refund(attempt, answer, text)
        return self._refused(key, status, answer, text)

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        key = attempt.idempotency_key
        status, answer, text = await self._request(f"query {key}", lambda sdk: sdk.query_refund(out_refund_no=key))
        if 200 <= status < 300:
            return self._read_refund(attempt, answer, text)
        if status == 404 and answer.get("code") == "RESOURCE_NOT_EXISTS":
            return None  # WeChat Pay has no such refund: then, and only then, the worker sends it again
        raise GatewayUnavailable(f"query {key}: HTTP {status}: {text}")

    async def close(self) -> None:
        return None

    def _read_refund(self, attempt: RefundAttempt, answer: dict[str, Any], text: str) -> GatewayResult:
        """A verified refund resource (the refund's or the query's answer) as a result."""
        key = attempt.idempotency_key
        refund_id = str(answer.get("refund_id") or "")[:128] or None
        rail_status = str(answer.get("status") or "")
        refunded = (answer.get("amount") or {}).get("refund") if isinstance(answer.get("amount"), dict) else None

        def unclear(why: str) -> GatewayResult:
            log.error("refund %s: unclear answer from WeChat Pay (%s): %s; held for finance", key, why, text)
            return GatewayResult(RefundStatus.REQUESTED, external_ref=refund_id, rail_status=rail_status,
                                 reason=f"unclear answer from WeChat Pay ({why}): {text}")

        if answer.get("out_refund_no") != key:
            return unclear("another out_refund_no")
        if refunded != fen(attempt.amount):
            return unclear(f"refund amount {refunded!r} fen is not the {fen(attempt.amount)} asked for")
        amount = attempt.amount
        if rail_status == "SUCCESS":
            return GatewayResult(RefundStatus.SUCCEEDED, external_ref=refund_id, rail_status=rail_status, amount=amount)
        if rail_status == "PROCESSING":
            return GatewayResult(RefundStatus.REQUESTED, external_ref=refund_id, rail_status=rail_status,
                                 amount=amount, reason="WeChat Pay is processing the refund; its notification settles it")
        if rail_status == "ABNORMAL":
            return GatewayResult(RefundStatus.FAILED, external_ref=refund_id, rail_status=rail_status, amount=amount,
                                 error=RailError.REJECTED, reason=ABNORMAL)
        if rail_status == "CLOSED":
            return GatewayResult(RefundStatus.FAILED, external_ref=refund_id, rail_status=rail_status, amount=amount,
                                 error=RailError.REJECTED, reason=CLOSED)
        return unclear(f"unknown status {rail_status!r}")

    def _refused(self, key: str, status: int, answer: dict[str, Any], text: str) -> GatewayResult:
        """A non-2xx answer: not now (RailBusy / GatewayUnavailable) or a refusal by name."""
        code = str(answer.get("code") or "")
        message = str(answer.get("message") or "")[:300]
        if code == "NOT_ENOUGH":
            raise RailBusy(f"NOT_ENOUGH: {message or 'the merchant account balance is too low'}")
        if status >= 500 or status == 429 or code in _UNAVAILABLE_CODES or not code:
            if code in ("SIGN_ERROR", "NO_AUTH", "MCH_NOT_EXISTS"):
                log.error("refund %s: WeChat Pay says %s (%s): check [platform.wechat]", key, code, message)
            raise GatewayUnavailable(f"refund {key}: HTTP {status}: {text}")
        error = RailError.REJECTED if code == "USER_ACCOUNT_ABNORMAL" else classify_refusal(code, message)
        return GatewayResult(RefundStatus.FAILED, rail_status=code, error=error, reason=f"{code}: {message}".strip())

    # -- doctor ---------------------------------------------------------------------------------
    async def check(self) -> str:
        """Prove the keys can sign and verify without calling WeChat Pay; ValueError names the problem."""
        return await asyncio.to_thread(self._check)

    def _check(self) -> str:
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.hashes import SHA256
        from wechatpayv3.utils import load_private_key, load_public_key

        try:
            private = load_private_key(self._private_key)
        except Exception:  # noqa: BLE001 - the SDK raises bare Exception
            raise ValueError("[platform.wechat] private_key_file: not a PEM private key") from None
        sample = b"refundbot check\n"
        signature = private.sign(sample, PKCS1v15(), SHA256())
        private.public_key().verify(signature, sample, PKCS1v15(), SHA256())
        if self._public_key and self.settings.public_key_id:
            try:
                load_public_key(self._public_key)
            except Exception:  # noqa: BLE001 - the SDK raises bare Exception
                raise ValueError("[platform.wechat] platform_public_key_file: not a PEM public key") from None
            verifier = f"the WeChat Pay public key {self.settings.public_key_id}"
        else:
            certs = list(Path(self.settings.platform_cert_dir).glob("*.pem"))
            if not certs:
                raise ValueError(f"[platform.wechat] platform_cert_dir {self.settings.platform_cert_dir} holds no "
                                 "platform certificate (*.pem)")
            verifier = f"{len(certs)} platform certificate(s)"
        AESGCM(self._apiv3_key.encode())  # a 32-byte key, or this raises
        return (f"wechat: merchant {self.settings.mchid} key signs (serial {self.settings.cert_serial_no}); "
                f"answers verified with {verifier}; APIv3 key ready to decrypt notifications")

    # -- notifications --------------------------------------------------------------------------
    async def notification(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """A refund notification, verified and decrypted: the outer event with `resource` decrypted.
        Raises NotificationRefused when it cannot be trusted (nothing is to change)."""
        signed = {name: headers.get(name, "") for name in SIGNED_HEADERS}
        if signed["Wechatpay-Signature-Type"] != SIGNATURE_TYPE or not signed["Wechatpay-Signature"]:
            raise NotificationRefused("missing or unknown Wechatpay-Signature")
        try:
            stamp = int(signed["Wechatpay-Timestamp"])
        except ValueError:
            raise NotificationRefused("bad Wechatpay-Timestamp") from None
        if abs(self.clock() - stamp) > self.max_skew:
            raise NotificationRefused("Wechatpay-Timestamp too far from our clock (a replay?)")
        if self.settings.public_key_id and self._public_key and signed["Wechatpay-Serial"] != self.settings.public_key_id:
            # Checked here: an unknown serial would have the SDK go and download certificates.
            raise NotificationRefused("Wechatpay-Serial is not our WeChat Pay public key")
        try:
            text = body.decode("utf-8")
            sdk = await self._client()
            data = await asyncio.wait_for(asyncio.to_thread(sdk.callback, signed, text), self.timeout + 5)
        except (UnicodeDecodeError, ValueError):
            raise NotificationRefused("unreadable body") from None
        except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception (unknown algorithm, serial)
            raise NotificationRefused(f"cannot verify: {type(exc).__name__}") from None
        if not data or not isinstance(data.get("resource"), dict):
            raise NotificationRefused("bad signature or undecryptable resource")
        return dict(data)
