"""The platform's HTTP API, served by the same aiohttp application as the Telegram webhook.

    POST /api/v1/callbacks/refund   a refund was credited or failed       (signed)
    POST /api/v1/callbacks/order    insert or replace an order            (signed)
    GET  /api/v1/cases/{case_no}    status, events, deadlines, refunds     (signed)
    GET  /api/v1/openapi.json       the OpenAPI 3.1 document (bot/openapi.json)
    GET  /healthz                   200 {"ok": true} when the database answers, else 503
    GET  /livez                     200 {"ok": true} while the event loop answers (no database)
    GET  /readyz                    200 {"ok": true} when the database answers within ready_timeout (1 s)
                                    and the process is not draining, else 503 {"ok": false, "error": why}
    GET  /metrics                   Prometheus text format (bot.metrics)

Signatures: see bot.platform (HMAC-SHA256 over timestamp + "." + body, or + "." + raw path for GET).
Refusals, each with a JSON body {"error": ...} and nothing changed: 401 bad or missing signature or
a timestamp outside ±max_clock_skew; 409 an exact replay (same signature) or a move the case's
lifecycle forbids; 400 a malformed body (JSON nested deeper than bot.bodies.MAX_JSON_DEPTH included;
unknown or invalid fields, each named in `details`: the rules are storage.importer's and bot/openapi.json's);
413 a body over MAX_BODY_BYTES, before the signature is checked; 404 an unknown case or refund attempt.
Requests aiohttp itself refuses (header too long, NUL in a header) get the same JSON: bot.http_errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot import bodies
from bot.api_orders import OrderApi
from bot.metrics import CONTENT_TYPE, Metrics
from bot.platform import OrderLookupError, SignatureError, order_from_json, verify
from dialogs.cases import CaseWorkflow
from dialogs.domain import Case, RefundAttempt
from dialogs.lifecycle import ForbiddenTransition
from dialogs.order_facts import FactsLocked
from dialogs.ports import UnitOfWork, UnitOfWorkFactory
from dialogs.refunds import AmountMismatch, AttemptSettled, NothingInFlight, UnknownAttempt, settle
from storage.importer import InvalidOrder, plain_amount, printable, unknown_fields

log = logging.getLogger(__name__)

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES = 1 << 20  # an order or a refund callback is a few hundred bytes


class Refused(Exception):
    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, **self.extra}, status=self.status)


# Written into bot/openapi.json (RefundCallback, the case_no path parameter) too: change both together.
CASE_NO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Printable = Annotated[str, AfterValidator(lambda value: printable("text", value))]


class RefundCallback(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["credited", "failed"]
    case_no: str = Field(pattern=CASE_NO_PATTERN)
    idempotency_key: str = Field(pattern=IDEMPOTENCY_KEY_PATTERN)
    # The order rules (storage.importer): a plain decimal above 0, at most 2 places, no exponent.
    amount: Annotated[Decimal | None, BeforeValidator(lambda v: None if v is None else plain_amount(v))] = None
    reference: Printable | None = Field(None, max_length=128)
    reason: Printable = Field("", max_length=500)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class PlatformApi:
    """Handlers of the platform API; `add_routes(app)` mounts them on an aiohttp application."""

    def __init__(self, uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, *, secret: str,
                 max_clock_skew: float = 300, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time, health_timeout: float = 5.0,
                 ready_timeout: float = 1.0) -> None:
        self.uow_factory, self.workflow, self.secret = uow_factory, workflow, secret
        self.max_skew, self.clock, self.health_timeout = max_clock_skew, clock, health_timeout
        self.ready_timeout = ready_timeout
        self.draining = False  # set by begin_drain(): /readyz answers 503 from then on
        self._not_ready: str | None = None  # the last reason /readyz gave, to log changes only
        self.metrics = metrics if metrics is not None else Metrics()
        self._openapi = OPENAPI_PATH.read_bytes()
        # Without a secret nothing the platform sends can be checked; that matters only once it calls
        # (a demo never does), so the warning waits for the first call (_check).
        self._warned_no_secret = False

    # -- mounting ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application, *, healthz: bool = True, metrics: bool = True) -> None:
        """Mount the API (and the probes /healthz, /livez, /readyz, and /metrics) on `app`."""
        app.router.add_post(f"{PREFIX}/callbacks/refund", self._counted("refund", self.refund_callback))
        app.router.add_post(f"{PREFIX}/callbacks/order", self._counted("order", self.order_callback))
        app.router.add_get(f"{PREFIX}/cases/{{case_no}}", self._counted("case", self.get_case))
        app.router.add_get(f"{PREFIX}/openapi.json", self.openapi)
        OrderApi(self).add_routes(app, PREFIX)  # the batch import and the audited correction (bot/api_orders.py)
        app.middlewares.append(_json_refusals)
        if healthz:
            app.router.add_get("/healthz", self.healthz)
            app.router.add_get("/livez", self.livez)
            app.router.add_get("/readyz", self.readyz)
        if metrics:
            app.router.add_get("/metrics", self.metrics_page)

    def _counted(self, endpoint: str, handler: Callable[[web.Request], Awaitable[web.Response]]) -> Handler:
        async def counted(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except Refused as refused:
                response = refused.response()
            except (RecursionError, OverflowError) as exc:  # input too deep or too large for some parser
                log.warning("%s %s: input refused: %r", request.method, request.path, exc)
                response = web.json_response({"error": f"malformed input: {type(exc).__name__}"}, status=400)
            except Exception:
                log.exception("%s %s failed", request.method, request.path)
                response = web.json_response({"error": "internal error; nothing was changed"}, status=500)
            self.metrics.callbacks.labels(endpoint=endpoint, code=str(response.status)).inc()
            return response

        return counted

    # -- checks --------------------------------------------------------------------------------
    def _check(self, request: web.Request, message: bytes) -> str:
        if not self.secret and not self._warned_no_secret:
            self._warned_no_secret = True
            log.warning("the platform called %s but no [platform] secret is configured: every signed platform "
                        "request is refused (401) until it is", request.path)
        try:
            return verify(self.secret, request.headers, message, now=self.clock(), max_skew=self.max_skew)
        except SignatureError as exc:
            raise Refused(401, str(exc)) from None

    @staticmethod
    async def _body(request: web.Request) -> bytes:
        try:
            return await bodies.read_at_most(request.content, MAX_BODY_BYTES, request.content_length)
        except bodies.BodyTooLarge as exc:
            raise Refused(413, f"body {exc}") from None

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return bodies.loads(body, parse_float=Decimal)
        except ValueError as exc:  # UnicodeDecodeError and JSON nested too deep included
            raise Refused(400, f"malformed body: not JSON ({exc})") from None

    async def _fresh(self, uow: UnitOfWork, signature: str) -> None:
        if not await uow.nonces.remember(signature, _utc(self.clock())):
            raise Refused(409, "replayed request: this signature was already accepted")

    # -- callbacks -----------------------------------------------------------------------------
    async def refund_callback(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        signature = self._check(request, body)
        try:
            callback = RefundCallback.model_validate(self._json(body))
        except ValidationError as exc:
            raise Refused(400, "malformed body", details=_errors(exc)) from None
        at = _utc(self.clock())
        async with self.uow_factory() as uow:
            await self._fresh(uow, signature)
            try:
                done = await settle(uow, self.workflow, callback.case_no, succeeded=callback.event == "credited",
                                    actor="platform", at=at, idempotency_key=callback.idempotency_key,
                                    external_ref=callback.reference, amount=callback.amount,
                                    note=callback.reason or f"platform callback: {callback.event}")
            except UnknownAttempt:
                raise Refused(404, f"case {callback.case_no} has no refund attempt "
                                   f"{callback.idempotency_key}") from None
            except KeyError:
                raise Refused(404, f"no case {callback.case_no}") from None
            except (ForbiddenTransition, AttemptSettled, NothingInFlight, AmountMismatch) as exc:
                raise Refused(409, str(exc)) from None
            await uow.commit()
        return web.json_response({"ok": True, "case_no": done.case.case_no, "status": done.case.status.value,
                                  "changed": done.changed})

    async def order_callback(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        signature = self._check(request, body)
        fields = self._json(body)
        extra = unknown_fields(fields) if isinstance(fields, dict) else []
        if extra:
            raise Refused(400, f"malformed order: unknown fields: {', '.join(extra)[:200]}",
                          details=[{"field": name[:64], "problem": "unknown field"} for name in extra[:20]])
        try:
            order = order_from_json(fields)
        except OrderLookupError as exc:
            problems = exc.__cause__.problems if isinstance(exc.__cause__, InvalidOrder) else []
            raise Refused(400, f"malformed order: {exc}"[:2000],
                          details=[{"field": name, "problem": problem} for name, problem in problems]) from None
        async with self.uow_factory() as uow:
            await self._fresh(uow, signature)
            try:
                inserted = await uow.orders.upsert(order)
            except FactsLocked as exc:  # an order with cases: only the audited correction changes these
                raise Refused(409, str(exc), reason="order_has_cases", fields=list(exc.fields)) from None
            await uow.commit()
        return web.json_response({"ok": True, "order_no": order.order_no, "inserted": inserted})

    # -- reads ---------------------------------------------------------------------------------
    async def get_case(self, request: web.Request) -> web.Response:
        self._check(request, request.raw_path.encode())
        case_no = request.match_info["case_no"]
        async with self.uow_factory() as uow:
            case = await uow.cases.get(case_no)
            if case is None:
                raise Refused(404, f"no case {case_no}")
            attempts = await uow.refunds.for_case(case_no)
            timers = await uow.timers.pending(case_no)
            events_of = getattr(uow.cases, "events", None)  # the SQL repository keeps the audit trail
            events = await events_of(case_no) if events_of is not None else []
        return web.json_response(case_json(case, attempts, timers, events))

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    async def _database_answers(self, timeout: float) -> None:
        async with asyncio.timeout(timeout), self.uow_factory() as uow:
            await uow.cases.get("")  # one indexed read: the database answers

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self._database_answers(self.health_timeout)
        except Exception:
            log.warning("health check: database unreachable", exc_info=True)
            return web.json_response({"ok": False, "error": "database unreachable"}, status=503)
        return web.json_response({"ok": True})

    async def livez(self, request: web.Request) -> web.Response:
        """Liveness: answering at all means the event loop runs. Nothing else is checked, so a database
        outage makes the process unready (/readyz), never restarted."""
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: not draining, and the database answers a trivial read within ready_timeout."""
        reason: str | None = "draining" if self.draining else None
        error: Exception | None = None
        if reason is None:
            try:
                await self._database_answers(self.ready_timeout)
            except TimeoutError:
                reason = f"database did not answer within {self.ready_timeout:g} s"
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; logged below
                reason, error = "database unreachable", exc
        if reason != self._not_ready:  # probes come every few seconds: log the changes, not each answer
            if reason is None:
                log.info("ready again")
            elif reason != "draining":  # begin_drain said so already
                log.warning("not ready: %s", reason, exc_info=error)
            self._not_ready = reason
        if reason is not None:
            return web.json_response({"ok": False, "error": reason}, status=503)
        return web.json_response({"ok": True})

    def begin_drain(self) -> None:
        """The process is stopping (SIGTERM): /readyz answers 503 from now on, so a load balancer sends
        no new work here, while everything else (webhook, callbacks, /livez) keeps answering."""
        if not self.draining:
            log.info("draining: /readyz answers 503 from now on")
        self.draining = True

    @web.middleware
    async def metrics_page(self, request: web.Request) -> web.Response:
        await self.metrics.refresh(self.uow_factory)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    # -- housekeeping --------------------------------------------------------------------------
    async def forget_old_nonces(self) -> int:
        """Drop replay-ledger entries whose timestamps can no longer pass the skew check anyway."""
        before = _utc(self.clock()) - timedelta(seconds=2 * self.max_skew + 60)
        async with self.uow_factory() as uow:
            count = await uow.nonces.prune(before)
            await uow.commit()
        return count


@web.middleware
async def _json_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals under the API prefix (no route: a case_no with a "/"; a wrong method) in the
    API's Error JSON rather than plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith(PREFIX + "/") or exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)


def add_api_routes(app: web.Application, api: PlatformApi, *, healthz: bool = True, metrics: bool = True) -> None:
    api.add_routes(app, healthz=healthz, metrics=metrics)


def case_json(case: Case, attempts: list[RefundAttempt], timers: list[tuple[Any, datetime]],
              events: list[tuple[str | None, str, str]]) -> dict[str, Any]:
    return {
        "case_no": case.case_no,
        "order_no": case.order_no,
        "user_id": case.user_id,
        "status": case.status.value,
        "version": case.version,
        "reason": case.reason.value,
        "verdict": case.verdict.value,
        "rule_id": case.rule_id,
        "amount": f"{case.amount:.2f}",
        "order_paid": f"{case.order_paid:.2f}" if case.order_paid is not None else None,  # when filed
        "created_at": case.created_at.isoformat(),
        "rating": case.rating,
        "deadlines": {
            "review_due": case.review_due.isoformat(),
            "credit_due": case.credit_due.isoformat() if case.credit_due else None,
            "timers": [{"kind": str(getattr(kind, "value", kind)), "due_at": due.isoformat()} for kind, due in timers],
        },
        "events": [{"from": before, "to": after, "actor": actor} for before, after, actor in events],
        "refunds": [{
            "idempotency_key": a.idempotency_key, "gateway": a.gateway, "amount": f"{a.amount:.2f}",
            "status": a.status.value, "external_ref": a.external_ref, "note": a.note,
            "created_at": a.created_at.isoformat(),
        } for a in attempts],
    }


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(part) for part in error["loc"]) or "(body)", "problem": error["msg"]}
            for error in exc.errors()]
