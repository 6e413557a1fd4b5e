"""A local fake of WeChat Pay API v3's refunds, over real HTTP (aiohttp on a free port).

It checks the client's `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=..,nonce_str=..,signature=..,
timestamp=..,serial_no=..` exactly as WeChat Pay documents it (RSA-SHA256 over
"METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n" with the merchant's key), answers signed with the platform
key (Wechatpay-Timestamp / -Nonce / -Signature / -Serial / -Signature-Type) so the SDK's verification
runs, and posts refund notifications signed and encrypted (AEAD_AES_256_GCM with the APIv3 key).

Its ledger keeps every refund by out_refund_no: the same number twice pays once; a new number pays
again while the trade's refundable remains. `script` makes the next refund calls misbehave.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import NameOID

MCHID = "1900009191"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000091912025010100000000000001"
AUTH = re.compile(r'^WECHATPAY2-SHA256-RSA2048 (.+)$')
REFUNDS = "/v3/refund/domestic/refunds"


def _pem_private(key: RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key: RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(key: RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), PKCS1v15(), SHA256())).decode()


@dataclass
class Keys:
    """What a test generates: the merchant's API key, WeChat Pay's platform key, the APIv3 key."""

    merchant: RSAPrivateKey
    platform: RSAPrivateKey
    apiv3_key: str

    @classmethod
    def generate(cls) -> Keys:
        return cls(rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048),
                   secrets.token_hex(16))

    def platform_certificate(self) -> tuple[str, str]:
        """WeChat Pay's platform certificate for the platform key (the older mode), and its serial."""
        now = datetime.now(UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.platform.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
                .sign(self.platform, SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode(), format(cert.serial_number, "X")

    def write(self, folder: Path) -> dict[str, str]:
        """The key files, and the [platform.wechat] settings that name them."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "apiclient_key.pem").write_text(_pem_private(self.merchant))
        (folder / "pub_key.pem").write_text(_pem_public(self.platform))
        return {"mchid": MCHID, "appid": APPID, "apiv3_key": self.apiv3_key, "cert_serial_no": MERCHANT_SERIAL,
                "private_key_file": str(folder / "apiclient_key.pem"),
                "platform_public_key_file": str(folder / "pub_key.pem"), "public_key_id": PUBLIC_KEY_ID}


@dataclass
class Refund:
    out_refund_no: str
    out_trade_no: str
    transaction_id: str
    refund_id: str
    refund: int  # fen
    total: int
    status: str  # PROCESSING, SUCCESS, ABNORMAL, CLOSED
    notify_url: str


@dataclass
class Trade:
    total: int  # fen
    transaction_id: str
    closed: bool = False


@dataclass
class FakeWechat:
    keys: Keys
    trades: dict[str, Trade] = field(default_factory=dict)  # by out_trade_no
    refunds: dict[str, Refund] = field(default_factory=dict)  # the ledger, by out_refund_no
    answer_status: str = "SUCCESS"  # what a new refund answers: SUCCESS or PROCESSING
    balance: int = 10**9  # the merchant's available balance, fen
    # Next refund calls, one entry each: "timeout_after_paying", "timeout_before_paying", "forge".
    script: list[str] = field(default_factory=list)
    hang_seconds: float = 2.0  # how long a scripted timeout holds the answer back
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every accepted call
    asked: list[dict[str, Any]] = field(default_factory=list)  # the body of every accepted refund request
    refused_signatures: int = 0
    server: TestServer | None = None
    serial: str = PUBLIC_KEY_ID  # Wechatpay-Serial of its signatures: the public key's ID, or a certificate's serial

    def trade(self, out_trade_no: str, total_yuan: str, transaction_id: str = "4200002026112400000001") -> None:
        self.trades[out_trade_no] = Trade(int(Decimal(total_yuan) * 100), transaction_id)

    def payouts(self, out_trade_no: str) -> list[int]:
        """Every refund the ledger holds for the trade (fen), whatever its state: money committed."""
        return [r.refund for r in self.refunds.values() if r.out_trade_no == out_trade_no
                and r.status in ("PROCESSING", "SUCCESS")]

    # -- server -------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(REFUNDS, self._refund)
        app.router.add_get(REFUNDS + "/{out_refund_no}", self._query)
        app.router.add_get("/v3/certificates", self._no_certificates)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    # -- signatures ---------------------------------------------------------------------------
    def _client_signed(self, request: web.Request, body: str) -> bool:
        """The documented check: the Authorization header's fields, then RSA-SHA256 over
        method, URL (path and query), timestamp, nonce and body, each followed by a newline."""
        match = AUTH.match(request.headers.get("Authorization", ""))
        if not match:
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if fields.get("mchid") != MCHID or fields.get("serial_no") != MERCHANT_SERIAL:
            return False
        if not fields.get("timestamp", "").isdigit() or abs(time.time() - int(fields["timestamp"])) > 300:
            return False
        message = f"{request.method}\n{request.raw_path}\n{fields['timestamp']}\n{fields.get('nonce_str', '')}\n{body}\n"
        try:
            self.keys.merchant.public_key().verify(base64.b64decode(fields.get("signature", "")), message.encode(),
                                                   PKCS1v15(), SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def signed_headers(self, body: str, *, forged: bool = False, timestamp: int | None = None) -> dict[str, str]:
        stamp, nonce = str(int(time.time()) if timestamp is None else timestamp), secrets.token_hex(16)
        key = rsa.generate_private_key(65537, 2048) if forged else self.keys.platform
        return {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": sign(key, f"{stamp}\n{nonce}\n{body}\n"),
                "Wechatpay-Serial": self.serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}

    def _answer(self, status: int, payload: dict[str, Any], *, forged: bool = False) -> web.Response:
        body = json.dumps(payload, ensure_ascii=False)
        headers = self.signed_headers(body, forged=forged) if status < 300 else {}
        return web.Response(status=status, text=body, content_type="application/json", headers=headers)

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    # -- handlers -----------------------------------------------------------------------------
    async def _refund(self, request: web.Request) -> web.Response:
        body = await request.text()
        if not self._client_signed(request, body):
            self.refused_signatures += 1
            return self._error(401, "SIGN_ERROR", "签名错误")
        self.requests.append(("POST", request.raw_path))
        ask = json.loads(body)
        self.asked.append(ask)
        behaviour = self.script.pop(0) if self.script else ""
        if behaviour == "timeout_before_paying":
            await asyncio.sleep(self.hang_seconds)
            return self._error(500, "SYSTEM_ERROR", "系统错误")
        known = self.refunds.get(ask["out_refund_no"])
        if known is None:
            refused = self._refusal(ask)
            if refused is not None:
                return refused
            out_trade_no = self._trade_of(ask)
            trade = self.trades[out_trade_no]
            known = Refund(ask["out_refund_no"], out_trade_no, trade.transaction_id,
                           f"50300{len(self.refunds) + 1:024d}", ask["amount"]["refund"], ask["amount"]["total"],
                           self.answer_status, ask.get("notify_url", ""))
            self.refunds[known.out_refund_no] = known
            self.balance -= known.refund
        if behaviour == "timeout_after_paying":
            await asyncio.sleep(self.hang_seconds)
        return self._answer(200, self._resource(known), forged=behaviour == "forge")

    def _trade_of(self, ask: dict[str, Any]) -> str:
        """The trade a refund names: by WeChat Pay's transaction_id or the merchant's out_trade_no."""
        if ask.get("transaction_id"):
            return next((no for no, t in self.trades.items() if t.transaction_id == ask["transaction_id"]), "")
        return str(ask.get("out_trade_no", ""))

    def _refusal(self, ask: dict[str, Any]) -> web.Response | None:
        out_trade_no = self._trade_of(ask)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if trade.closed:
            return self._error(400, "INVALID_REQUEST", "订单已关闭")
        amount = ask["amount"]
        if amount.get("currency") != "CNY" or amount["total"] != trade.total:
            return self._error(400, "PARAM_ERROR", "订单金额与原订单金额不一致")
        if amount["refund"] > trade.total - sum(self.payouts(out_trade_no)):
            return self._error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        if amount["refund"] > self.balance:
            return self._error(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")
        return None

    async def _query(self, request: web.Request) -> web.Response:
        if not self._client_signed(request, ""):
            self.refused_signatures += 1
            return self._error(401, "SIGN_ERROR", "签名错误")
        self.requests.append(("GET", request.raw_path))
        forge = bool(self.script) and self.script[0] == "forge" and bool(self.script.pop(0))
        known = self.refunds.get(request.match_info["out_refund_no"])
        if known is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._answer(200, self._resource(known), forged=forge)

    async def _no_certificates(self, request: web.Request) -> web.Response:
        return self._error(404, "RESOURCE_NOT_EXISTS", "平台证书不存在")  # public-key merchants have none

    @staticmethod
    def _resource(refund: Refund) -> dict[str, Any]:
        return {"refund_id": refund.refund_id, "out_refund_no": refund.out_refund_no,
                "transaction_id": refund.transaction_id, "out_trade_no": refund.out_trade_no, "channel": "ORIGINAL",
                "user_received_account": "支付用户零钱", "create_time": "2026-11-24T10:30:00+08:00",
                "status": refund.status, "funds_account": "AVAILABLE",
                "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                           "payer_refund": refund.refund, "settlement_refund": refund.refund,
                           "settlement_total": refund.total, "discount_refund": 0, "currency": "CNY"}}

    # -- notifications ------------------------------------------------------------------------
    def notification(self, out_refund_no: str, event: str = "REFUND.SUCCESS", *,
                     refund_fen: int | None = None) -> str:
        """The body WeChat Pay posts for the refund (its status set by `event`), resource encrypted."""
        refund = self.refunds[out_refund_no]
        refund.status = event.removeprefix("REFUND.")
        resource = {"mchid": MCHID, "out_trade_no": refund.out_trade_no, "transaction_id": refund.transaction_id,
                    "out_refund_no": refund.out_refund_no, "refund_id": refund.refund_id,
                    "refund_status": refund.status, "success_time": "2026-11-24T10:31:00+08:00",
                    "user_received_account": "支付用户零钱",
                    "amount": {"total": refund.total, "refund": refund.refund if refund_fen is None else refund_fen,
                               "payer_total": refund.total, "payer_refund": refund.refund}}
        nonce, associated = secrets.token_hex(6), "refund"
        ciphertext = AESGCM(self.keys.apiv3_key.encode()).encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), associated.encode())
        return json.dumps({"id": secrets.token_hex(18), "create_time": "2026-11-24T10:31:00+08:00",
                           "resource_type": "encrypt-resource", "event_type": event, "summary": "退款成功",
                           "resource": {"original_type": "refund", "algorithm": "AEAD_AES_256_GCM",
                                        "ciphertext": base64.b64encode(ciphertext).decode(),
                                        "associated_data": associated, "nonce": nonce}}, ensure_ascii=False)

    async def post(self, url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """POST a notification to the bot (signed with the platform key unless `headers` are given)."""
        headers = headers if headers is not None else self.signed_headers(body)
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body.encode(), headers={"Content-Type": "application/json", **headers}) as resp:
            return resp.status, await resp.text()

    async def notify(self, url: str, out_refund_no: str, event: str = "REFUND.SUCCESS") -> tuple[int, str]:
        return await self.post(url, self.notification(out_refund_no, event))
