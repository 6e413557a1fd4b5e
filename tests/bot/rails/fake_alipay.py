"""A local Alipay open-platform gateway (gateway.do) for alipay.trade.refund and
alipay.trade.fastpay.refund.query, on a free port.

It checks every request as Alipay documents it: RSA2 = SHA256withRSA over the request's parameters
except `sign` and empty ones, sorted by name and joined as k=v with &, verified with the app's public key.
It answers `{"<method>_response": {...}, "sign": "..."}`, the response object signed with the "Alipay"
private key the test generated, so the SDK's own verification runs. It keeps a ledger of refunds per
trade: one payout per out_request_no, never more than the trade's total, and a merchant balance.

Scripts (`refund_script`, `query_script`: one behaviour per call, in order; empty = honest):
  "hang_after_paying"  pays, then holds the answer past the client's timeout
  "hang_before_paying" holds the request past the client's timeout, then drops it unpaid
  "forge"              answers success without paying, signed with a key that is not Alipay's
  "unsigned"           answers success without paying, with no signature at all
  "system_error"       ACQ.SYSTEM_ERROR, nothing done
  "http_502"           a bare 502 from the load balancer
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REFUND = "alipay.trade.refund"
QUERY = "alipay.trade.fastpay.refund.query"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def bare_base64(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The key as Alipay's key tool prints it: DER in base64 on one line, no PEM armour."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    else:
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def rsa2_sign(key: rsa.RSAPrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    total: Decimal
    closed: bool = False
    refunds: dict[str, Decimal] = field(default_factory=dict)  # out_request_no -> amount paid back

    @property
    def refunded(self) -> Decimal:
        return sum(self.refunds.values(), Decimal(0))


@dataclass
class FakeAlipay:
    app_id: str
    app_public_key: rsa.RSAPublicKey
    alipay_key: rsa.RSAPrivateKey = field(default_factory=new_key)
    url: str = ""  # where it listens (gateway.do), set once the server is up
    balance: Decimal | None = None  # the merchant's available balance; None: plenty
    hang_seconds: float = 5.0
    trades: dict[str, Trade] = field(default_factory=dict)
    refund_script: list[str] = field(default_factory=list)
    query_script: list[str] = field(default_factory=list)
    payouts: list[tuple[str, str, Decimal]] = field(default_factory=list)  # (out_trade_no, out_request_no, amount)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (method, biz_content) of signed calls
    refused_signatures: int = 0
    repeats: int = 0  # refund requests for a request number already paid (answered "fund_change N")
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def add_trade(self, out_trade_no: str, total: str, trade_no: str | None = None) -> Trade:
        trade = Trade(out_trade_no, trade_no or f"2026112422001{len(self.trades) + 1:015d}", Decimal(total))
        self.trades[out_trade_no] = trade
        return trade

    def paid_out(self, out_trade_no: str) -> Decimal:
        return sum((amount for no, _, amount in self.payouts if no == out_trade_no), Decimal(0))

    def release(self) -> None:
        """Let every held request end (before the server stops)."""
        self._release.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/gateway.do", self._gateway)
        return app

    # -- the wire ---------------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        if request.method == "POST":
            params.update(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        method = params.get("method", "")
        answer_key = method.replace(".", "_") + "_response"
        if not self._signed_by_the_app(params):
            self.refused_signatures += 1
            return self._answer(answer_key, {"code": "40002", "msg": "Invalid Arguments",
                                             "sub_code": "isv.invalid-signature", "sub_msg": "验签出错"})
        if params.get("app_id") != self.app_id:
            return self._answer(answer_key, {"code": "40002", "msg": "Invalid Arguments",
                                             "sub_code": "isv.invalid-app-id", "sub_msg": "无效的AppID参数"})
        biz = json.loads(params.get("biz_content") or "{}")
        self.calls.append((method, biz))
        if method == REFUND:
            return await self._refund(answer_key, biz)
        if method == QUERY:
            return await self._query(answer_key, biz)
        return self._answer(answer_key, {"code": "40004", "msg": "Business Failed",
                                         "sub_code": "isv.invalid-method", "sub_msg": "不存在的方法名"})

    def _signed_by_the_app(self, params: dict[str, str]) -> bool:
        sign = params.pop("sign", "")
        if params.get("sign_type") != "RSA2" or not sign:
            return False
        text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v != "")
        try:
            self.app_public_key.verify(base64.b64decode(sign), text.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def _answer(self, answer_key: str, content: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None) -> web.Response:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        sign = rsa2_sign(key or self.alipay_key, body)
        text = '{"%s":%s,"sign":"%s"}' % (answer_key, body, sign)  # noqa: UP031 - the exact bytes signed
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def _hold(self) -> None:
        try:
            await asyncio.wait_for(self._release.wait(), self.hang_seconds)
        except TimeoutError:
            pass

    def _trade(self, biz: dict[str, Any]) -> Trade | None:
        trade = self.trades.get(str(biz.get("out_trade_no", "")))
        if trade is None and biz.get("trade_no"):
            trade = next((t for t in self.trades.values() if t.trade_no == biz["trade_no"]), None)
        if trade is not None and biz.get("trade_no") not in (None, trade.trade_no):
            return None  # the two numbers name different purchases
        return trade

    # -- alipay.trade.refund ---------------------------------------------------------------------------

    async def _refund(self, answer_key: str, biz: dict[str, Any]) -> web.StreamResponse:
        behaviour = self.refund_script.pop(0) if self.refund_script else ""
        if behaviour == "hang_before_paying":
            await self._hold()
            return web.Response(status=504)
        if behaviour == "http_502":
            return web.Response(status=502, text="<html>502 Bad Gateway</html>")
        if behaviour == "system_error":
            return self._answer(answer_key, _failed("ACQ.SYSTEM_ERROR", "系统错误"))
        trade = self._trade(biz)
        if trade is None:
            return self._answer(answer_key, _failed("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        if behaviour == "forge":  # claims the money went back; it did not
            return self._answer(answer_key, self._paid(trade, Decimal(biz["refund_amount"]), "Y"), key=new_key())
        if behaviour == "unsigned":
            content = json.dumps(self._paid(trade, Decimal(biz["refund_amount"]), "Y"), separators=(",", ":"))
            return web.Response(text='{"%s":%s}' % (answer_key, content), content_type="text/html")  # noqa: UP031
        try:
            amount = Decimal(str(biz["refund_amount"]))
        except (KeyError, InvalidOperation):
            return self._answer(answer_key, _failed("ACQ.INVALID_PARAMETER", "参数无效"))
        if amount <= 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
            return self._answer(answer_key, _failed("ACQ.INVALID_PARAMETER", "参数无效"))
        # Alipay: without out_request_no the request number is the out_trade_no (a full refund).
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        if request_no in trade.refunds:  # the same request again: paid once, answered as success
            self.repeats += 1
            if trade.refunds[request_no] != amount:
                return self._answer(answer_key, _failed("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求", trade))
            return self._answer(answer_key, self._paid(trade, amount, "N"))
        if trade.closed:
            return self._answer(answer_key, _failed("ACQ.TRADE_HAS_CLOSE", "交易已经关闭", trade))
        if "out_request_no" not in biz and amount != trade.total:
            return self._answer(answer_key, _failed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限", trade))
        if trade.refunded + amount > trade.total:
            return self._answer(answer_key, _failed("ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额超限", trade))
        if self.balance is not None and amount > self.balance:
            return self._answer(answer_key, _failed("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足", trade))
        trade.refunds[request_no] = amount
        self.payouts.append((trade.out_trade_no, request_no, amount))
        if self.balance is not None:
            self.balance -= amount
        if behaviour == "hang_after_paying":
            await self._hold()
        return self._answer(answer_key, self._paid(trade, amount, "Y"))

    @staticmethod
    def _paid(trade: Trade, amount: Decimal, fund_change: str) -> dict[str, Any]:
        return {"code": "10000", "msg": "Success", "buyer_logon_id": "159****5620", "buyer_user_id": "2088102177846875",
                "fund_change": fund_change, "gmt_refund_pay": "2026-11-24 10:00:00", "out_trade_no": trade.out_trade_no,
                "refund_fee": f"{trade.refunded:.2f}", "send_back_fee": f"{amount:.2f}", "trade_no": trade.trade_no}

    # -- alipay.trade.fastpay.refund.query ------------------------------------------------------------

    async def _query(self, answer_key: str, biz: dict[str, Any]) -> web.StreamResponse:
        behaviour = self.query_script.pop(0) if self.query_script else ""
        if behaviour in ("hang_before_paying", "hang_after_paying"):
            await self._hold()
            return web.Response(status=504)
        if behaviour == "http_502":
            return web.Response(status=502)
        if behaviour == "system_error":
            return self._answer(answer_key, _failed("ACQ.SYSTEM_ERROR", "系统错误"))
        trade = self._trade(biz)
        if trade is None:
            return self._answer(answer_key, _failed("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        request_no = str(biz.get("out_request_no", ""))
        if behaviour == "forge" or request_no in trade.refunds:
            amount = trade.refunds.get(request_no, Decimal("1.00"))
            content = {"code": "10000", "msg": "Success", "out_request_no": request_no,
                       "out_trade_no": trade.out_trade_no, "refund_amount": f"{amount:.2f}",
                       "refund_status": "REFUND_SUCCESS", "total_amount": f"{trade.total:.2f}",
                       "trade_no": trade.trade_no}
            return self._answer(answer_key, content, key=new_key() if behaviour == "forge" else None)
        # Alipay never got this request number: a success answer without refund_status.
        return self._answer(answer_key, {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no,
                                         "trade_no": trade.trade_no})


def _failed(sub_code: str, sub_msg: str, trade: Trade | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}
    if trade is not None:
        content.update(out_trade_no=trade.out_trade_no, refund_fee="0.00", send_back_fee="0.00")
    return content
