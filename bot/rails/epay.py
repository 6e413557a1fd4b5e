"""彩虹易支付 (epay): refunds back through the shop's epay merchant account (`[platform.rails] epay = "epay"`).

No maintained Python package exists; this is a small aiohttp client of the two protocols the epay sites
speak. What it follows (there is no single official page; these agree with each other):
- v1: the 彩虹易支付 developer document's "API退款" and "查询单个订单" sections, as implemented by the
  PHP SDK `lib/EpayCore.class.php` (queryOrder: `GET api.php?act=order&pid=..&key=..&out_trade_no=..`) and by
  card-shop epay plugins: `POST api.php?act=refund` with pid, key, trade_no or out_trade_no, money; the
  answer is JSON `{"code": 1, "msg": "退款成功"}` (any other code is a refusal, `msg` says why). Forks that
  check an MD5 signature instead of the plain key get one as well: sign = md5(the sent parameters but
  sign / sign_type and the empty ones, sorted by name, joined `k=v&k=v`, then the merchant key appended),
  sign_type = MD5. v1 answers are not signed.
- v2: the 彩虹易支付 2.0 SDK (`EpayCore` with `execute()`, the same in its PHP and TypeScript versions):
  form POSTs to `api/pay/refund` (pid, out_refund_no, trade_no / out_trade_no, money, timestamp) and
  `api/pay/refundquery` (pid, out_refund_no or refund_no, timestamp); sign = base64(SHA256withRSA(the
  same sorted `k=v&...` string, merchant private key)), sign_type = RSA. An answer with code 0 carries
  timestamp, sign and sign_type and is verified with the platform's public key (SHA256withRSA over the
  answer's own sorted string; timestamp within 300 s). A refusal (code != 0, `msg`) is not signed.
  refundquery's status: 1 = refunded.

What each answer does here:
- v2 code 0 from api/pay/refund, signed, our out_refund_no and amount: SUCCEEDED (refund_no kept).
  Signed but naming another refund number or amount: held (REQUESTED) for finance, never taken as paid.
  A bad or missing signature, a stale timestamp: GatewayUnavailable — nothing believed; the next pass asks
  refundquery (signed) before anything is sent again.
- Refusals by their words (the sites answer in Chinese): "余额不足" -> RailBusy (nothing paid; retried, the
  supervisors are alerted); "关闭" / "未支付" -> TRADE_CLOSED; "期限" -> WINDOW_PASSED; "退款金额" with
  大于/超过/超出, or "可退" -> AMOUNT_TOO_HIGH; a signature / key / pid complaint -> GatewayUnavailable (our
  configuration is wrong and nothing was paid: fix [platform.epay], the refund is retried); anything else
  -> FAILED REJECTED with the site's words.
- No answer, a timeout, a redirect, 4xx/5xx, not JSON: GatewayUnavailable (the worker asks before it
  sends again).

v1 has no refund numbers, so the site cannot deduplicate a retry and there is no refund query. `query`
reads the order instead (act=order) and relies only on: `refundmoney` (what the site has refunded on the
order in all; newer sites) or else `status` 2 = refunded in full. Nothing refunded on the order -> None
(the refund never landed: it is sent again). The whole of a full refund refunded -> SUCCEEDED (our books
never let another attempt of the order pay, so it was this one). Anything else (partial refunds of one
order, an amount that does not match) cannot be told apart without refund numbers: the attempt is held
(REQUESTED) with what the site shows, for finance — never sent twice. Prefer v2 where the site has it.

Keys are read from files or the environment by `from_config` and never logged, not in errors either.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot import bodies
from bot.config import MAX_ANSWER_BYTES, PlatformConfig
from bot.rails.keys import load_private_key, load_public_key
from dialogs.domain import RailError, RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, GatewayUnavailable, Payment, RailBusy

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
MAX_SKEW_SECONDS = 300  # the SDK's window for an answer's timestamp

# A refusal's words -> what it means (first match wins: "余额不足" before the amount words).
_BUSY = ("余额不足", "balance")
_MISCONFIGURED = ("签名", "密钥", "sign", "商户不存在", "商户ID", "pid")
_AMOUNT = ("可退", "大于", "超过", "超出", "exceed")
_WINDOW = ("期限", "退款时间", "window")
_CLOSED = ("关闭", "未支付", "closed")
_NOT_FOUND = ("不存在", "not exist", "not found")


def money(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


def sign_content(params: Mapping[str, str]) -> str:
    """The string both versions sign: every parameter but sign, sign_type and the empty ones, sorted."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k not in ("sign", "sign_type") and params[k].strip() != "")


def md5_sign(params: Mapping[str, str], key: str) -> str:
    return hashlib.md5((sign_content(params) + key).encode()).hexdigest()


def rsa_sign(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> str:
    raw = private_key.sign(sign_content(params).encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def rsa_verify(params: Mapping[str, str], signature: str, public_key: rsa.RSAPublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), sign_content(params).encode(),
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _words(answer: Mapping[str, Any]) -> str:
    return str(answer.get("msg") or "")[:300]


def _has(text: str, words: tuple[str, ...]) -> bool:
    lower = text.lower()
    return any(w.lower() in lower for w in words)


class EpayGateway:
    """Pays refund attempts back through 彩虹易支付, v1 or v2 (see the module doc for the protocol)."""

    name = "epay"

    def __init__(self, api_url: str, pid: str, *, version: int = 2, key: str = "",
                 merchant_private_key: rsa.RSAPrivateKey | None = None,
                 platform_public_key: rsa.RSAPublicKey | None = None, timeout: float = 10,
                 clock: Callable[[], float] = time.time, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        if not api_url:
            raise ValueError('[platform.rails] sends refunds to "epay", which needs [platform.epay] api_url')
        if not pid:
            raise ValueError("[platform.epay] needs pid (the 商户ID)")
        if version == 1 and not key:
            raise ValueError("[platform.epay] version 1 needs the merchant key: key, or env REFUNDBOT_EPAY_KEY")
        if version == 2 and (merchant_private_key is None or platform_public_key is None):
            raise ValueError("[platform.epay] version 2 needs merchant_private_key_file and platform_public_key_file")
        self.base = api_url.rstrip("/") + "/"
        self.pid, self.version, self._key = pid, version, key
        self._private, self._public = merchant_private_key, platform_public_key
        self._timeout, self._clock, self._max_answer_bytes = timeout, clock, max_answer_bytes
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: PlatformConfig, environ: Mapping[str, str] | None = None) -> EpayGateway:
        env = os.environ if environ is None else environ
        epay = config.epay
        common: dict[str, Any] = {"version": epay.version, "timeout": config.timeout_seconds,
                                  "max_answer_bytes": config.max_answer_bytes}
        if epay.version == 1:
            return cls(epay.api_url, epay.pid, key=env.get("REFUNDBOT_EPAY_KEY") or epay.key, **common)
        private = _key_material(env, "REFUNDBOT_EPAY_MERCHANT_PRIVATE_KEY", epay.merchant_private_key_file,
                                "merchant_private_key_file")
        public = _key_material(env, "REFUNDBOT_EPAY_PLATFORM_PUBLIC_KEY", epay.platform_public_key_file,
                               "platform_public_key_file")
        return cls(epay.api_url, epay.pid,
                   merchant_private_key=load_private_key(private, "[platform.epay] merchant private key")
                   if private else None,
                   platform_public_key=load_public_key(public, "[platform.epay] platform public key")
                   if public else None, **common)

    # --- the RefundGateway ------------------------------------------------------------------------

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        if self.version == 1:
            return await self._refund_v1(attempt, payment)
        return await self._refund_v2(attempt, payment)

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        if self.version == 1:
            return await self._query_v1(attempt, payment)
        return await self._query_v2(attempt)

    async def check(self) -> str:
        """Proves the configured keys sign (and, v2, that the platform key loads and is not ours) without
        calling the site; ValueError names what is wrong."""
        sample = {"pid": self.pid, "out_trade_no": "CHECK", "money": "0.01", "timestamp": "0"}
        if self.version == 1:
            if self._key != self._key.strip():
                raise ValueError("[platform.epay] the merchant key has spaces around it (a copy-paste slip?)")
            md5_sign(sample, self._key)
            return f"epay v1 (pid {self.pid}): the merchant key signs (MD5) for {self.base}"
        assert self._private is not None and self._public is not None
        signature = rsa_sign(sample, self._private)
        if not rsa_verify(sample, signature, self._private.public_key()):
            raise ValueError("[platform.epay] the merchant private key does not verify its own signature")
        if rsa_verify(sample, signature, self._public):
            raise ValueError("[platform.epay] platform_public_key_file holds the merchant's own public key, "
                             "not the platform's (平台公钥)")
        return (f"epay v2 (pid {self.pid}): the merchant private key signs (RSA {self._private.key_size}), "
                f"the platform public key loads (RSA {self._public.key_size}) for {self.base}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # --- v1 ---------------------------------------------------------------------------------------

    async def _refund_v1(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        params = {"pid": self.pid, "key": self._key, "out_trade_no": payment.order_no,
                  "trade_no": payment.trade_no or "", "money": money(attempt.amount)}
        params = {k: v for k, v in params.items() if v}
        params |= {"sign": md5_sign(params, self._key), "sign_type": "MD5"}
        answer = await self._call("POST", "api.php?act=refund", attempt.idempotency_key, data=params)
        if str(answer.get("code")) == "1":
            return GatewayResult(RefundStatus.SUCCEEDED, rail_status="code=1", reason=_words(answer))
        return self._refused(attempt, answer)

    async def _query_v1(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        key = attempt.idempotency_key
        params = {"act": "order", "pid": self.pid, "key": self._key, "out_trade_no": payment.order_no}
        answer = await self._call("GET", "api.php", key, params=params)
        if str(answer.get("code")) != "1":
            raise GatewayUnavailable(f"refund {key}: epay cannot read order {payment.order_no}: {_words(answer)}")
        status = str(answer.get("status", ""))
        try:
            total = Decimal(str(answer.get("money") or "0"))
            refunded = (Decimal(str(answer["refundmoney"])) if answer.get("refundmoney") not in (None, "")
                        else total if status == "2" else Decimal(0))
        except InvalidOperation:
            raise GatewayUnavailable(f"refund {key}: epay's order answer has no readable amounts") from None
        word = f"status={status}"
        if refunded <= 0:
            return None
        if attempt.amount == payment.paid and refunded == attempt.amount:
            return GatewayResult(RefundStatus.SUCCEEDED, rail_status=word, amount=refunded,
                                 reason=f"epay order {payment.order_no} shows ¥{refunded} refunded")
        return GatewayResult(RefundStatus.REQUESTED, rail_status=word, amount=refunded,
                             reason=f"epay v1 keeps no refund numbers: order {payment.order_no} shows ¥{refunded} "
                                    f"refunded of ¥{total}; finance must confirm whether this ¥{attempt.amount} "
                                    f"was paid")

    # --- v2 ---------------------------------------------------------------------------------------

    async def _refund_v2(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        key = attempt.idempotency_key
        params = {"pid": self.pid, "out_refund_no": key, "out_trade_no": payment.order_no,
                  "trade_no": payment.trade_no or "", "money": money(attempt.amount)}
        answer = await self._call("POST", "api/pay/refund", key, data=self._signed(params))
        if str(answer.get("code")) != "0":
            return self._refused(attempt, answer)
        self._verify(answer, key)
        refund_no = str(answer.get("refund_no") or "")[:128] or None
        if str(answer.get("out_refund_no", key)) != key:
            return self._unclear(attempt, f"another refund number {answer.get('out_refund_no')!r}", refund_no)
        paid = self._amount(answer)
        if paid is not None and paid != attempt.amount:
            return self._unclear(attempt, f"amount {paid} is not the {attempt.amount} asked for", refund_no)
        return GatewayResult(RefundStatus.SUCCEEDED, external_ref=refund_no, rail_status="code=0",
                             amount=paid if paid is not None else attempt.amount, reason=_words(answer))

    async def _query_v2(self, attempt: RefundAttempt) -> GatewayResult | None:
        key = attempt.idempotency_key
        answer = await self._call("POST", "api/pay/refundquery", key,
                                  data=self._signed({"pid": self.pid, "out_refund_no": key}))
        if str(answer.get("code")) != "0":
            if _has(_words(answer), _NOT_FOUND) and not _has(_words(answer), _MISCONFIGURED):
                return None  # the site never took this refund number: it may be sent (again)
            raise GatewayUnavailable(f"refund {key}: epay refundquery: {_words(answer)}")
        self._verify(answer, key)
        refund_no = str(answer.get("refund_no") or "")[:128] or None
        if str(answer.get("out_refund_no", key)) != key:
            return self._unclear(attempt, f"another refund number {answer.get('out_refund_no')!r}", refund_no)
        status = str(answer.get("status", ""))
        paid = self._amount(answer)
        if status == "1":
            if paid is not None and paid != attempt.amount:
                return self._unclear(attempt, f"amount {paid} is not the {attempt.amount} asked for", refund_no)
            return GatewayResult(RefundStatus.SUCCEEDED, external_ref=refund_no, rail_status="status=1",
                                 amount=paid if paid is not None else attempt.amount)
        # The site has the refund but not as done: held for finance (never sent again, never paid twice).
        return GatewayResult(RefundStatus.REQUESTED, external_ref=refund_no, rail_status=f"status={status}",
                             amount=paid, reason=f"epay has refund {key} as status {status!r}, not refunded")

    def _signed(self, params: dict[str, str]) -> dict[str, str]:
        assert self._private is not None
        params = {k: v for k, v in params.items() if v} | {"timestamp": str(int(self._clock()))}
        return params | {"sign": rsa_sign(params, self._private), "sign_type": "RSA"}

    def _verify(self, answer: Mapping[str, Any], key: str) -> None:
        """A v2 success must be signed by the platform, recently, for our pid; else nothing is believed."""
        assert self._public is not None
        fields = {k: _text(v) for k, v in answer.items() if not isinstance(v, dict | list)}
        why = ""
        try:
            skew = abs(self._clock() - int(fields.get("timestamp", "")))
        except ValueError:
            skew = None
        if not fields.get("sign"):
            why = "no signature"
        elif not rsa_verify(fields, fields["sign"], self._public):
            why = "a signature the platform public key does not verify"
        elif skew is None or skew > MAX_SKEW_SECONDS:
            why = "a timestamp more than 300 s away"
        elif fields.get("pid", self.pid) != self.pid:
            why = "another pid"
        if why:
            log.error("refund %s: epay's answer has %s; not believed (check [platform.epay] "
                      "platform_public_key_file); the refund will be asked about", key, why)
            raise GatewayUnavailable(f"refund {key}: epay's answer has {why}")

    @staticmethod
    def _amount(answer: Mapping[str, Any]) -> Decimal | None:
        if answer.get("money") in (None, ""):
            return None
        try:
            return Decimal(str(answer["money"]))
        except InvalidOperation:
            return Decimal(-1)  # unreadable: never equal to what was asked

    # --- both -------------------------------------------------------------------------------------

    def _refused(self, attempt: RefundAttempt, answer: Mapping[str, Any]) -> GatewayResult:
        key, words, code = attempt.idempotency_key, _words(answer), f"code={answer.get('code')}"
        if _has(words, _BUSY):
            raise RailBusy(f"epay: {words}")
        if _has(words, _MISCONFIGURED):
            log.error("refund %s: epay refused our request as misconfigured (%s); check [platform.epay]", key, words)
            raise GatewayUnavailable(f"refund {key}: epay refused the request: {words}")
        if ("退款金额" in words and _has(words, _AMOUNT)) or _has(words, ("可退", "exceed")):
            error = RailError.AMOUNT_TOO_HIGH
        elif _has(words, _WINDOW):
            error = RailError.WINDOW_PASSED
        elif _has(words, _CLOSED):
            error = RailError.TRADE_CLOSED
        else:
            error = RailError.REJECTED
        return GatewayResult(RefundStatus.FAILED, reason=f"epay: {words or code}", rail_status=code, error=error)

    @staticmethod
    def _unclear(attempt: RefundAttempt, why: str, refund_no: str | None) -> GatewayResult:
        log.error("refund %s: epay's signed answer names %s; held for finance", attempt.idempotency_key, why)
        return GatewayResult(RefundStatus.REQUESTED, external_ref=refund_no,
                             reason=f"unclear answer from epay ({why})")

    async def _call(self, method: str, path: str, key: str, *, data: Mapping[str, str] | None = None,
                    params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON object epay answered; GatewayUnavailable when there is none to read. Error texts
        never carry the URL or the form (v1 sends the merchant key in them)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(method, self.base + path, data=data, params=params,
                                             allow_redirects=False,
                                             timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                if resp.status != 200:
                    raise GatewayUnavailable(f"refund {key}: epay answered HTTP {resp.status} to {path.split('?')[0]}")
                raw = await bodies.read_at_most(resp.content, self._max_answer_bytes, resp.content_length)
        except bodies.BodyTooLarge:
            raise GatewayUnavailable(f"refund {key}: epay's answer is larger than [platform] max_answer_bytes") from None
        except TimeoutError:
            raise GatewayUnavailable(f"refund {key}: no answer from epay within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise GatewayUnavailable(f"refund {key}: epay unreachable ({type(exc).__name__})") from None
        try:
            answer = bodies.loads(raw.decode("utf-8-sig"), parse_float=str, parse_int=str)
        except ValueError:
            raise GatewayUnavailable(f"refund {key}: epay's answer is not JSON: "
                                     f"{raw[:120].decode('utf-8', 'replace')!r}") from None
        if not isinstance(answer, dict):
            raise GatewayUnavailable(f"refund {key}: epay's answer is not a JSON object")
        return answer


def _text(value: Any) -> str:
    """An answer's value as the site's PHP signed it (true -> "1", false / null -> "")."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    return str(value)


def _key_material(env: Mapping[str, str], var: str, path: str, setting: str) -> bytes:
    if env.get(var):
        return env[var].encode()
    if not path:
        return b""
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"[platform.epay] {setting}: cannot read {path} ({exc.strerror})") from None
