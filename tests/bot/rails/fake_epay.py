"""A local 彩虹易支付 site for the epay rail's tests: an aiohttp server on a free port.

It checks each request as the site does — v1: pid, the merchant key and the MD5 sign over the sorted
parameters with the key appended; v2: the SHA256withRSA sign with the merchant's public key and a fresh
timestamp — answers in the site's shapes, and signs v2 successes with the platform key the test made,
so the client's own verification runs. Its signing code is written here again on purpose (not imported
from bot/rails/epay.py): a mistake in the client's must show up as a refusal.

The site keeps a ledger: payouts per order (v2: by out_refund_no — the same number twice pays once; v1
has no refund numbers, every accepted request pays), a merchant balance refunds are paid from, and a
refundable left per order. `script` makes the next refund requests misbehave: "timeout_after_pay" (pays,
the answer never arrives), "timeout_before_pay" (hangs without paying), "forged" (answers paid with a
signature from another key, paying nothing).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLOSED, PAID, REFUNDED = 0, 1, 2  # the site's order status (the order table's `status`)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _content(params: dict[str, str]) -> str:
    keys = sorted(k for k, v in params.items() if k not in ("sign", "sign_type") and str(v).strip())
    return "&".join(f"{k}={params[k]}" for k in keys)


@dataclass
class Order:
    out_trade_no: str
    trade_no: str
    money: Decimal
    status: int = PAID


@dataclass
class Payout:
    out_trade_no: str
    money: Decimal
    refund_no: str
    out_refund_no: str | None  # None: v1


@dataclass
class FakeEpay:
    pid: str = "1001"
    key: str = "v1-merchant-key-8f3a"
    merchant_public: rsa.RSAPublicKey | None = None  # v2: verifies our requests
    platform_key: rsa.RSAPrivateKey | None = None  # v2: signs the answers
    balance: Decimal = Decimal("1000.00")
    clock: Callable[[], float] = time.time
    orders: dict[str, Order] = field(default_factory=dict)
    payouts: list[Payout] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # every refusal's msg, in order
    calls: list[str] = field(default_factory=list)  # "refund", "refundquery", "order" as they came
    _server: TestServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def add_order(self, out_trade_no: str, money: str, *, trade_no: str = "", status: int = PAID) -> None:
        self.orders[out_trade_no] = Order(out_trade_no, trade_no or f"2026{len(self.orders) + 1:012d}",
                                          Decimal(money), status)

    def paid_out(self, out_trade_no: str) -> Decimal:
        return sum((p.money for p in self.payouts if p.out_trade_no == out_trade_no), Decimal(0))

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/"))

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/api.php", self._v1)
        app.router.add_post("/api/pay/refund", self._v2_refund)
        app.router.add_post("/api/pay/refundquery", self._v2_refundquery)
        self._server = TestServer(app, port=0)
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        await self._server.close()

    # --- the ledger -----------------------------------------------------------------------------

    async def _pay(self, out_trade_no: str, trade_no: str, money_text: str,
                   out_refund_no: str | None) -> tuple[Payout | None, str]:
        """(the payout, "") or (None, the site's refusal), following the script."""
        order = self.orders.get(out_trade_no) if out_trade_no else None
        order = order or next((o for o in self.orders.values() if trade_no and o.trade_no == trade_no), None)
        if order is None:
            return None, "订单编号不存在！"
        if trade_no and order.trade_no != trade_no:
            return None, "订单编号不存在！"
        if out_refund_no is not None:
            done = next((p for p in self.payouts if p.out_refund_no == out_refund_no), None)
            if done is not None:
                return done, ""  # the same refund number again: paid once, answered again
        behaviour = self.script.pop(0) if self.script else ""
        if behaviour == "timeout_before_pay":
            await self._hang()
        if order.status == CLOSED:
            return None, "订单已关闭，无法退款"
        amount = Decimal(money_text)
        if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            return None, "金额不正确"
        if amount > order.money - self.paid_out(order.out_trade_no):
            return None, "退款金额不能大于订单剩余可退款金额"
        if amount > self.balance:
            return None, "商户余额不足，请先充值后再退款"
        self.balance -= amount
        payout = Payout(order.out_trade_no, amount, f"RF{len(self.payouts) + 1:08d}", out_refund_no)
        self.payouts.append(payout)
        if self.paid_out(order.out_trade_no) == order.money:
            order.status = REFUNDED
        if behaviour == "timeout_after_pay":
            await self._hang()
        if behaviour == "forged":
            self.payouts.remove(payout)
            self.balance += amount
            return Payout(order.out_trade_no, amount, "RF-FORGED", out_refund_no), "forged"
        return payout, ""

    async def _hang(self) -> None:
        """The answer never arrives (until the test ends): the client times out."""
        await self._release.wait()
        raise web.HTTPServiceUnavailable()

    # --- v1: api.php ----------------------------------------------------------------------------

    async def _v1(self, request: web.Request) -> web.Response:
        params = {**request.query, **dict(await request.post())}
        act = params.pop("act", "")
        if params.get("pid") != self.pid or params.get("key") != self.key:
            return self._refuse1("商户ID或密钥错误")
        if act == "refund":
            self.calls.append("refund")
            if request.method != "POST":
                return self._refuse1("请使用POST方式提交")
            if "sign" in params:  # the forks that check a signature
                expected = hashlib.md5((_content(params) + self.key).encode()).hexdigest()
                if params.get("sign_type") != "MD5" or params["sign"] != expected:
                    return self._refuse1("签名校验失败")
            payout, refusal = await self._pay(params.get("out_trade_no", ""), params.get("trade_no", ""),
                                              params.get("money", "0"), None)
            if payout is None:
                return self._refuse1(refusal)
            return web.json_response({"code": 1, "msg": "退款成功"})
        if act == "order":
            self.calls.append("order")
            order = self.orders.get(params.get("out_trade_no", ""))
            if order is None:
                return self._refuse1("订单号不存在")
            return web.json_response({
                "code": 1, "msg": "查询订单号成功！", "trade_no": order.trade_no, "out_trade_no": order.out_trade_no,
                "type": "alipay", "pid": int(self.pid), "addtime": "2026-11-24 10:00:00",
                "endtime": "2026-11-24 10:00:30", "name": "Steam card 100", "money": str(order.money),
                "status": order.status, "refundmoney": str(self.paid_out(order.out_trade_no))})
        return self._refuse1("不支持的操作")

    def _refuse1(self, msg: str) -> web.Response:
        self.refusals.append(msg)
        return web.json_response({"code": -1, "msg": msg})

    # --- v2: api/pay/... ------------------------------------------------------------------------

    async def _v2_params(self, request: web.Request) -> tuple[dict[str, str], str]:
        """The request's form and "" when its signature holds, else the site's refusal."""
        params = {k: str(v) for k, v in (await request.post()).items()}
        if params.get("pid") != self.pid:
            return params, "商户不存在"
        assert self.merchant_public is not None
        try:
            self.merchant_public.verify(base64.b64decode(params.get("sign", "")), _content(params).encode(),
                                        padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return params, "签名校验失败"
        if params.get("sign_type") != "RSA":
            return params, "签名类型错误"
        if abs(self.clock() - int(params.get("timestamp") or 0)) > 300:
            return params, "时间戳已过期"
        return params, ""

    async def _v2_refund(self, request: web.Request) -> web.Response:
        self.calls.append("refund")
        params, refusal = await self._v2_params(request)
        if refusal:
            return self._refuse2(refusal)
        if not params.get("out_refund_no"):
            return self._refuse2("out_refund_no不能为空")
        payout, refusal = await self._pay(params.get("out_trade_no", ""), params.get("trade_no", ""),
                                          params.get("money", "0"), params["out_refund_no"])
        if payout is None:
            return self._refuse2(refusal)
        order = self.orders[payout.out_trade_no]
        return self._signed({"code": 0, "msg": "退款成功", "refund_no": payout.refund_no,
                             "out_refund_no": payout.out_refund_no, "trade_no": order.trade_no,
                             "out_trade_no": order.out_trade_no, "money": str(payout.money)},
                            forged=refusal == "forged")

    async def _v2_refundquery(self, request: web.Request) -> web.Response:
        self.calls.append("refundquery")
        params, refusal = await self._v2_params(request)
        if refusal:
            return self._refuse2(refusal)
        payout = next((p for p in self.payouts if p.out_refund_no == params.get("out_refund_no")
                       or p.refund_no == params.get("refund_no")), None)
        if payout is None:
            return self._refuse2("退款记录不存在")
        order = self.orders[payout.out_trade_no]
        return self._signed({"code": 0, "refund_no": payout.refund_no, "out_refund_no": payout.out_refund_no,
                             "trade_no": order.trade_no, "out_trade_no": order.out_trade_no,
                             "money": str(payout.money), "reducemoney": str(payout.money), "status": 1,
                             "addtime": "2026-11-24 12:00:00"})

    def _signed(self, answer: dict[str, Any], *, forged: bool = False) -> web.Response:
        assert self.platform_key is not None
        answer = answer | {"pid": int(self.pid), "timestamp": int(self.clock())}
        signer = new_key() if forged else self.platform_key
        content = _content({k: str(v) for k, v in answer.items()})
        sign = base64.b64encode(signer.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        return web.json_response(answer | {"sign": sign, "sign_type": "RSA"})

    def _refuse2(self, msg: str) -> web.Response:
        self.refusals.append(msg)
        return web.json_response({"code": -1, "msg": msg})
