"""The platform API's order operations beyond the single order callback (bot/api.py):

    POST /api/v1/orders/batch                  JSON Lines of orders, answered with the import report  (signed)
    POST /api/v1/orders/{order_no}/correction  an audited change of an order's money/identity facts  (signed)

Limits (README "Platform API limits"), decided before a byte is parsed or a signature checked:
the batch takes at most BATCH_MAX_BYTES and BATCH_MAX_LINES lines (413 as soon as either is passed, by
Content-Length or while streaming); a correction, like every other call, MAX_BODY_BYTES.

The batch reuses the file import (storage.importer): the same row validation, the same per-row report
(physical line number and reason), the same batches of 1,000 committed one by one. The body is spooled
to a temporary file while the signature is computed; nothing is written before it checks.
"""

from __future__ import annotations

import codecs
import io
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.platform import SignatureError, StreamedSignature
from dialogs.domain import Order, PaymentChannel
from dialogs.order_facts import BelowRefunded, NoSuchOrder, NothingToCorrect, correct
from dialogs.ports import BulkUpsert, ConcurrentUpdate, UnitOfWork, UnitOfWorkFactory
from storage.importer import ImportReport, import_rows, jsonl_orders

Handler = Callable[[web.Request], Awaitable[web.Response]]


class Checks(Protocol):
    """What the order operations share with bot.api.PlatformApi (which mounts them; importing it here
    would be a cycle): its settings and its checks, each raising its `Refused` (answered by `counted`)."""

    uow_factory: UnitOfWorkFactory
    secret: str
    max_skew: float
    clock: Callable[[], float]

    def _counted(self, endpoint: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]: ...

    async def _body(self, request: web.Request) -> bytes: ...

    def _check(self, request: web.Request, message: bytes) -> str: ...

    def _json(self, body: bytes) -> Any: ...

    async def _fresh(self, uow: UnitOfWork, signature: str) -> None: ...


class _Refused(Exception):
    """A refusal of this module: answered here with the API's JSON error, like bot.api.Refused."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, **self.extra}, status=self.status)


def _answering(handler: Handler) -> Handler:
    async def answered(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _Refused as refused:
            return refused.response()

    return answered

BATCH_MAX_BYTES = 64 << 20  # 64 MiB: ~200,000 orders of the import format
BATCH_MAX_LINES = 100_000  # lines of JSON Lines (blank ones included): a bounded run per request
BATCH_SIZE = 1000  # rows per committed batch, as `refundbot orders import`
_CHUNK = 64 << 10
_SPOOL_IN_MEMORY = 1 << 20  # smaller bodies never touch the disk
_PLAIN = re.compile(r"^[^\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]*$")  # no control or bidi chars


class Correction(BaseModel):
    """The corrected facts (only those given change; null clears an optional one), why, and who."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=500, pattern=_PLAIN.pattern)
    actor: str = Field(min_length=1, max_length=64, pattern=_PLAIN.pattern)
    amount: str | None = Field(None, pattern=r"^\d{1,10}(\.\d{1,2})?$")
    buyer_phone: str | None = Field(None, min_length=1, max_length=32, pattern=_PLAIN.pattern)
    buyer_telegram_id: int | None = Field(None, gt=0, lt=2**63)
    buyer_contact: str | None = Field(None, min_length=1, max_length=255, pattern=_PLAIN.pattern)
    payment_channel: PaymentChannel | None = None
    trade_no: str | None = Field(None, min_length=1, max_length=64, pattern=_PLAIN.pattern)

    def changes(self) -> dict[str, Any]:
        given = self.model_fields_set - {"reason", "actor"}
        changes: dict[str, Any] = {name: getattr(self, name) for name in given}
        if "amount" in changes and changes["amount"] is not None:
            changes["amount"] = Decimal(changes["amount"]).quantize(Decimal("0.01"))
        return changes


_REQUIRED_FACTS = ("amount", "buyer_phone", "payment_channel")  # an order always has these


class OrderApi:
    """Mounted by PlatformApi.add_routes; shares its checks (signature, replay ledger, refusals)."""

    def __init__(self, api: Checks) -> None:
        self.api = api

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_post(f"{prefix}/orders/batch", self.api._counted("order_batch", _answering(self.batch)))
        app.router.add_post(f"{prefix}/orders/{{order_no}}/correction",
                            self.api._counted("order_correction", _answering(self.correction)))

    # -- the batch -------------------------------------------------------------------------------
    async def batch(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > BATCH_MAX_BYTES:
            raise _Refused(413, f"body larger than {BATCH_MAX_BYTES} bytes; split the batch",
                          max_bytes=BATCH_MAX_BYTES, max_lines=BATCH_MAX_LINES)
        with tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY, mode="w+b") as spool:
            signature = StreamedSignature(self.api.secret, request.headers)
            await self._spool(request, spool, signature)
            try:
                checked = signature.check(now=self.api.clock(), max_skew=self.api.max_skew)
            except SignatureError as exc:
                raise _Refused(401, str(exc)) from None
            async with self.api.uow_factory() as uow:
                await self.api._fresh(uow, checked)
                await uow.commit()
            spool.seek(0)
            report = await import_rows(jsonl_orders(_lines(spool)), self._write, batch_size=BATCH_SIZE)
        return web.json_response(report_json(report))

    @staticmethod
    async def _spool(request: web.Request, spool: IO[bytes], signature: StreamedSignature) -> None:
        """The body into `spool` and the signature; 413 once it passes a limit, 400 if it is not UTF-8."""
        size = lines = 0
        utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        last = b"\n"
        while chunk := await request.content.read(_CHUNK):
            size += len(chunk)
            lines += chunk.count(b"\n")
            if size > BATCH_MAX_BYTES or lines > BATCH_MAX_LINES:
                raise _Refused(413, f"batch larger than {BATCH_MAX_BYTES} bytes or {BATCH_MAX_LINES} lines; "
                                   f"split it", max_bytes=BATCH_MAX_BYTES, max_lines=BATCH_MAX_LINES)
            try:
                utf8.decode(chunk)
            except UnicodeDecodeError as exc:
                raise _Refused(400, f"malformed body: not UTF-8 text ({exc.reason} near byte {size - len(chunk) + exc.start})") from None
            signature.update(chunk)
            spool.write(chunk)
            last = chunk[-1:]
        if last != b"\n" and lines + 1 > BATCH_MAX_LINES:  # the last line has no newline of its own
            raise _Refused(413, f"batch longer than {BATCH_MAX_LINES} lines; split it",
                          max_bytes=BATCH_MAX_BYTES, max_lines=BATCH_MAX_LINES)
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _Refused(400, "malformed body: not UTF-8 text (cut inside a character at the end)") from None

    async def _write(self, orders: list[Order]) -> BulkUpsert:
        for attempt in (1, 2):
            try:
                async with self.api.uow_factory() as uow:
                    done = await uow.orders.upsert_many(orders)
                    await uow.commit()
                return done
            except ConcurrentUpdate:
                if attempt == 2:  # someone inserted one of these orders meanwhile: the retry sees it
                    raise
        raise AssertionError("unreachable")

    # -- the correction --------------------------------------------------------------------------
    async def correction(self, request: web.Request) -> web.Response:
        body = await self.api._body(request)
        signature = self.api._check(request, body)
        try:
            asked = Correction.model_validate(self.api._json(body))
        except ValidationError as exc:
            raise _Refused(400, "malformed body", details=[
                {"field": ".".join(str(part) for part in error["loc"]) or "(body)", "problem": error["msg"]}
                for error in exc.errors()]) from None  # as bot.api words it
        changes = asked.changes()
        cleared = [name for name in _REQUIRED_FACTS if name in changes and changes[name] is None]
        if cleared:
            raise _Refused(400, "malformed body", details=[{"field": name, "problem": "may not be null"}
                                                          for name in cleared])
        order_no = request.match_info["order_no"]
        at = datetime.fromtimestamp(self.api.clock(), UTC)
        async with self.api.uow_factory() as uow:
            await self.api._fresh(uow, signature)
            try:
                order, fields, told = await correct(uow, order_no, changes, reason=asked.reason,
                                                    actor=f"platform:{asked.actor}", at=at)
            except NoSuchOrder:
                raise _Refused(404, f"no order {order_no}") from None
            except NothingToCorrect as exc:
                raise _Refused(400, str(exc), details=[]) from None
            except BelowRefunded as exc:
                raise _Refused(409, str(exc), reason="below_refunded", fields=["amount"],
                              committed=f"{exc.committed:.2f}") from None
            await uow.commit()
        return web.json_response({"ok": True, "order_no": order.order_no, "corrected": list(fields),
                                  "amount": f"{order.amount:.2f}", "cases": told})


def report_json(report: ImportReport) -> dict[str, Any]:
    """The import report, as `refundbot orders import` prints it."""
    return {"ok": True, "inserted": report.inserted, "updated": report.updated,
            "rejected": [{"line": row.line, "reason": row.reason} for row in report.rejected]}


def _lines(spool: IO[bytes]) -> Iterator[str]:
    # Checked while spooling: decodes cleanly. Universal newlines, as the file import reads a file.
    yield from io.TextIOWrapper(spool, encoding="utf-8-sig")
