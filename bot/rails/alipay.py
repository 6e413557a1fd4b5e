"""Alipay (`[platform.alipay]`): refunds paid back with alipay.trade.refund on python-alipay-sdk.

Each attempt is one refund request: out_trade_no = the shop's order number (and trade_no, Alipay's own
number for the purchase, when known), refund_amount = the attempt's amount, out_request_no = the
attempt's idempotency key. Alipay pays a request number once: sending it again answers code 10000 with
fund_change N, which this gateway settles with a refund query.

- 10000 with fund_change Y: SUCCEEDED (external_ref = Alipay's trade_no, amount = send_back_fee).
- 10000 with fund_change N (a repeated request number, or not yet settled): asked about at once with
  alipay.trade.fastpay.refund.query; paid if it says REFUND_SUCCESS, else unknown (GatewayUnavailable).
- ACQ.SELLER_BALANCE_NOT_ENOUGH: RailBusy (nothing paid; the supervisors are told; tried again later).
- ACQ.SYSTEM_ERROR, code 20000 (isp.*), timeouts, HTTP errors, answers that are not Alipay's JSON,
  unsigned answers and answers whose signature does not verify with the Alipay public key:
  GatewayUnavailable, so the worker asks (query) before it ever sends the request again.
- any other refusal: FAILED, by name (RailError) with Alipay's sub_code and words.

`query` asks by out_request_no: REFUND_SUCCESS -> SUCCEEDED; a success answer without refund_status, or
ACQ.TRADE_NOT_EXIST -> None (Alipay has no such refund: safe to send); anything else -> unknown.

The SDK is blocking (urllib): every call runs in a thread, bounded by `[platform] timeout_seconds`.
Key material never appears in a log line or an exception: errors name the setting, never its value.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.rails.keys import load_private_key, load_public_key
from dialogs.domain import RailError, RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, GatewayUnavailable, Payment, RailBusy

if TYPE_CHECKING:
    from bot.config import AlipayConfig, PlatformConfig

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://openapi.alipay.com/gateway.do"
SANDBOX_URL = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"

SUCCESS = "10000"
# Refusals by name (Alipay's sub_codes for alipay.trade.refund).
_ERRORS: dict[str, RailError] = {
    "ACQ.TRADE_HAS_CLOSE": RailError.TRADE_CLOSED,
    "ACQ.TRADE_CLOSED": RailError.TRADE_CLOSED,
    "ACQ.TRADE_NOT_ALLOW_REFUND": RailError.WINDOW_PASSED,  # past the refund period (or not refundable)
    "ACQ.TRADE_HAS_FINISHED": RailError.WINDOW_PASSED,  # TRADE_FINISHED: the refund period is over
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": RailError.AMOUNT_TOO_HIGH,
    "ACQ.REFUND_FEE_ERROR": RailError.AMOUNT_TOO_HIGH,
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": RailError.AMOUNT_TOO_HIGH,  # more than the trade has left
}
_BUSY = frozenset({"ACQ.SELLER_BALANCE_NOT_ENOUGH"})
_RETRY = frozenset({"ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR"})  # "call again with the same parameters"
_NO_SUCH_TRADE = "ACQ.TRADE_NOT_EXIST"
# Alipay refused our credentials before looking at the refund (wrong key or APPID, no permission):
# nothing was paid and nothing about the refund is wrong, so it waits (and logs) until the keys are fixed.
_MISCONFIGURED = frozenset({"isv.invalid-signature", "isv.invalid-app-id", "isv.missing-signature",
                            "isv.insufficient-isv-permissions", "isv.insufficient-user-permissions"})
# The bare base64 (PKCS#1 / PKCS#8 / X.509 DER) Alipay's key tool and console hand out.
_BARE_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{100,}")


def _sdk() -> tuple[Any, Any, type[Exception], type[Exception]]:
    """python-alipay-sdk, imported only when an Alipay gateway is built (it pulls in pyOpenSSL, and its
    import configures its own logger)."""
    from alipay import AliPay
    from alipay.exceptions import AliPayException, AliPayValidationError
    from alipay.utils import AliPayConfig as SdkConfig

    return AliPay, SdkConfig, AliPayException, AliPayValidationError


def _key_text(inline: str, path: str, setting: str, env: str) -> bytes:
    """The key's text from the inline setting (PEM, bare base64, or a path) or else from its file."""
    value = inline.strip()
    where = f"{env} / [platform.alipay] {setting}"
    if value and (value.startswith("-----BEGIN") or _BARE_BASE64.fullmatch(value)):
        return value.encode()
    if value:
        path = value  # the environment named a file
    else:
        where = f"[platform.alipay] {setting}_file"
    if not path:
        raise ValueError(f"[platform.alipay] needs {setting}_file (or {env})")
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None


def _amount(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


class AlipayGateway:
    """Pays refunds back to the buyer's Alipay (see the module doc for what each answer becomes)."""

    name = "alipay"

    def __init__(self, app_id: str, app_private_key: rsa.RSAPrivateKey, alipay_public_key: rsa.RSAPublicKey, *,
                 gateway_url: str = PRODUCTION_URL, timeout: float = 10) -> None:
        if not app_id:
            raise ValueError("[platform.alipay] needs app_id (the APPID of your app on open.alipay.com)")
        alipay_cls, sdk_config, self._sdk_error, self._forged = _sdk()
        self.app_id, self.gateway_url, self.timeout = app_id, gateway_url, timeout
        self._app_key, self._alipay_key = app_private_key, alipay_public_key
        private_pem = app_private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        public_pem = alipay_public_key.public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self._client = alipay_cls(appid=app_id, app_private_key_string=private_pem,
                                  alipay_public_key_string=public_pem, sign_type="RSA2",
                                  config=sdk_config(timeout=timeout))
        self._client._gateway = gateway_url  # the SDK knows only production and its sandbox

    @classmethod
    def from_config(cls, platform: PlatformConfig) -> AlipayGateway:
        config: AlipayConfig = platform.alipay
        private = load_private_key(_key_text(config.app_private_key, config.app_private_key_file,
                                             "app_private_key", "REFUNDBOT_ALIPAY_APP_PRIVATE_KEY"),
                                   "[platform.alipay] app private key")
        public = load_public_key(_key_text(config.alipay_public_key, config.alipay_public_key_file,
                                           "alipay_public_key", "REFUNDBOT_ALIPAY_PUBLIC_KEY"),
                                 "[platform.alipay] Alipay public key")
        url = config.gateway_url or (SANDBOX_URL if config.sandbox else PRODUCTION_URL)
        return cls(config.app_id, private, public, gateway_url=url, timeout=platform.timeout_seconds)

    async def check(self) -> str:
        """Proves the keys without calling Alipay: the SDK signs a sample with the app key, the app's
        public half verifies it, and the Alipay public key is Alipay's, not the app's own."""
        sample = f"app_id={self.app_id}&method=alipay.trade.refund&sign_type=RSA2"
        try:
            signature = base64.b64decode(self._client._sign(sample))
            self._app_key.public_key().verify(signature, sample.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, TypeError):
            raise ValueError("[platform.alipay] the app private key does not make a valid RSA2 signature") \
                from None
        if self._alipay_key.public_numbers() == self._app_key.public_key().public_numbers():
            raise ValueError("[platform.alipay] the Alipay public key is your app's own public key: use the "
                             "支付宝公钥 the console shows after you upload the app's public key")
        return (f"alipay: app {self.app_id} signs RSA2 with a {self._app_key.key_size}-bit key; "
                f"the Alipay public key ({self._alipay_key.key_size}-bit) loads for verifying answers "
                f"from {self.gateway_url}")

    async def close(self) -> None:
        return None  # urllib keeps no connections open

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        key = attempt.idempotency_key
        answer = await self._call(f"refund {key}", partial(
            self._client.api_alipay_trade_refund, refund_amount=f"{attempt.amount:.2f}",
            out_trade_no=payment.order_no, trade_no=payment.trade_no or None, out_request_no=key))
        code, sub_code = str(answer.get("code", "")), str(answer.get("sub_code", ""))
        words = f"{sub_code or code}: {answer.get('sub_msg') or answer.get('msg') or ''}".strip(": ")[:500]
        if code == SUCCESS:
            self._same_trade(f"refund {key}", answer, payment)
            if answer.get("fund_change") == "Y":
                return GatewayResult(RefundStatus.SUCCEEDED, external_ref=_ref(answer, payment),
                                     rail_status="SUCCESS",
                                     amount=_amount(answer.get("send_back_fee")) or None)  # 0.00: not said
            # fund_change N: this request number was paid before, or the refund is not settled yet.
            known = await self.query(attempt, payment)
            if known is not None and known.status is RefundStatus.SUCCEEDED:
                return known
            raise GatewayUnavailable(f"refund {key}: accepted without a change of funds, and the refund query "
                                     "does not show it paid yet")
        if sub_code in _BUSY:
            raise RailBusy(words)
        if sub_code in _MISCONFIGURED or code == "20001":
            log.error("refund %s: Alipay refused the app's credentials (%s); check [platform.alipay] with "
                      "`refundbot doctor`", key, words)
            raise GatewayUnavailable(f"refund {key}: {words}")
        if sub_code in _RETRY or code == "20000" or sub_code.startswith("isp."):
            raise GatewayUnavailable(f"refund {key}: {words}")
        return GatewayResult(RefundStatus.FAILED, external_ref=_ref(answer, payment), reason=words,
                             rail_status=sub_code or code, error=_ERRORS.get(sub_code, RailError.REJECTED))

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        key = attempt.idempotency_key
        answer = await self._call(f"refund query {key}", partial(
            self._client.api_alipay_trade_fastpay_refund_query, out_request_no=key,
            trade_no=payment.trade_no or None, out_trade_no=payment.order_no))
        code, sub_code = str(answer.get("code", "")), str(answer.get("sub_code", ""))
        if code != SUCCESS:
            if sub_code == _NO_SUCH_TRADE:
                return None  # no such purchase, so no such refund: sending it gets Alipay's own refusal
            raise GatewayUnavailable(f"refund query {key}: {sub_code or code}: "
                                     f"{answer.get('sub_msg') or answer.get('msg') or ''}"[:500])
        self._same_trade(f"refund query {key}", answer, payment)
        if answer.get("out_request_no") not in (None, key):
            raise GatewayUnavailable(f"refund query {key}: the answer is about another request")
        status = answer.get("refund_status")
        if status in (None, ""):
            return None  # Alipay did not receive this refund request (or refused it): safe to send
        if status == "REFUND_SUCCESS":
            return GatewayResult(RefundStatus.SUCCEEDED, external_ref=_ref(answer, payment),
                                 rail_status="REFUND_SUCCESS", amount=_amount(answer.get("refund_amount")))
        raise GatewayUnavailable(f"refund query {key}: refund_status {status!r}")

    async def _call(self, what: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """One SDK call in a thread; every way it can fail to give a signed, verified answer is
        GatewayUnavailable (the outcome is unknown)."""
        try:
            # urllib's timeout bounds each socket operation; this bounds the whole call.
            async with asyncio.timeout(self.timeout * 2 + 1):
                answer = await asyncio.to_thread(call)
        except self._forged:
            log.error("%s: an answer whose signature does not verify with the Alipay public key; not trusted",
                      what)
            raise GatewayUnavailable(f"{what}: the answer's signature does not verify; not trusted") from None
        except self._sdk_error as exc:  # an answer without a signature
            raise GatewayUnavailable(f"{what}: an unsigned answer, not trusted: {str(exc)[:300]}") from None
        except TimeoutError:
            raise GatewayUnavailable(f"{what}: no answer within {self.timeout:g} s") from None
        except OSError as exc:  # URLError, HTTPError, connection errors, socket timeouts
            raise GatewayUnavailable(f"{what}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
        except (ValueError, KeyError, TypeError) as exc:  # not JSON / not the answer asked for
            raise GatewayUnavailable(f"{what}: not an Alipay answer ({exc.__class__.__name__})") from None
        if not isinstance(answer, dict):
            raise GatewayUnavailable(f"{what}: not an Alipay answer")
        return answer

    @staticmethod
    def _same_trade(what: str, answer: dict[str, Any], payment: Payment) -> None:
        """A signed answer about another purchase is not an answer to this request."""
        if answer.get("out_trade_no") not in (None, "", payment.order_no):
            raise GatewayUnavailable(f"{what}: the answer is about order {answer['out_trade_no']}")


def _ref(answer: dict[str, Any], payment: Payment) -> str | None:
    ref = answer.get("trade_no") or payment.trade_no
    return str(ref)[:128] if ref else None
