"""The platform API over real HTTP on SQLite and PostgreSQL: signed callbacks settle refunds and upsert
orders; a bad signature, a stale timestamp, a replay or a malformed body is refused and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from sqlalchemy import func, select

from bot.api import PlatformApi, add_api_routes
from bot.metrics import Metrics
from bot.platform import SIGNATURE_HEADER, signed_headers
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, RefundStatus
from dialogs.outbox import CASE_NEWS
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.models import ApiNonceRow, CaseEventRow, OrderRow, OutboxRow
from storage.uow import Database
from tests.bot.test_platform import ORDER, SECRET
from tests.storage.factories import T0, make_case, make_order

NOW = T0.timestamp() + 3600  # the API's clock: an hour after the case was filed
CASE = "R20261124-0001"
KEY = f"{CASE}-1"
WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar(), "manual")
# Refusals before any write (signature, body) look the same on both databases: SQLite keeps them fast.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
async def refunding(database: Database) -> str:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal("30.00")))
        await uow.cases.add(make_case(CASE, "A1001", amount=Decimal("30.00"), status=CaseStatus.IN_REVIEW))
        await WORKFLOW.approve(uow, CASE, actor="agent:1", at=T0)
        await uow.commit()
    return CASE


def build_api(database: Database, metrics: Metrics | None = None) -> tuple[web.Application, PlatformApi]:
    app = web.Application()
    api = PlatformApi(database.uow, WORKFLOW, secret=SECRET, max_clock_skew=300, metrics=metrics, clock=lambda: NOW)
    add_api_routes(app, api)
    return app, api


@pytest.fixture
async def client(database: Database) -> AsyncIterator[TestClient[Any, Any]]:
    app, _ = build_api(database)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def post(client: TestClient[Any, Any], path: str, payload: Any, *, at: float = NOW, secret: str = SECRET,
               headers: dict[str, str] | None = None) -> ClientResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signed = headers if headers is not None else signed_headers(secret, body, at)
    return await client.post(path, data=body, headers={**signed, "Content-Type": "application/json"})


async def get(client: TestClient[Any, Any], path: str, *, at: float = NOW) -> ClientResponse:
    return await client.get(path, headers=signed_headers(SECRET, path.encode(), at))


def credited(**changes: Any) -> dict[str, Any]:
    return {"event": "credited", "case_no": CASE, "idempotency_key": KEY, "amount": "30.00",
            "reference": "ALIPAY-9", **changes}


async def snapshot(database: Database) -> dict[str, Any]:
    """Everything a callback could change."""
    async with database.uow() as uow:
        session = uow.session  # type: ignore[attr-defined]

        async def count(model: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(model)))

        case = await uow.cases.get(CASE)
        return {
            "case": (case.status, case.version) if case else None,
            "attempts": [(a.status, a.external_ref) for a in await uow.refunds.for_case(CASE)],
            "events": await count(CaseEventRow), "outbox": await count(OutboxRow),
            "nonces": await count(ApiNonceRow), "orders": await count(OrderRow),
        }


async def refused(response: ClientResponse, status: int) -> str:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return str((await response.json())["error"])


# --- the refund callback ----------------------------------------------------------------------


async def test_a_credited_callback_refunds_the_case_and_queues_the_customers_news(
        database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    response = await post(client, "/api/v1/callbacks/refund", credited())
    assert response.status == 200, await response.text()
    assert await response.json() == {"ok": True, "case_no": CASE, "status": "refunded", "changed": True}
    after = await snapshot(database)
    assert after["case"][0] is CaseStatus.REFUNDED
    assert after["attempts"] == [(RefundStatus.SUCCEEDED, "ALIPAY-9")]
    async with database.uow() as uow:
        news = await uow.session.scalars(select(OutboxRow).where(OutboxRow.kind == CASE_NEWS))  # type: ignore[attr-defined]
        assert [r.payload["to"] for r in news][-1] == "refunded"
        assert (await uow.cases.events(CASE))[-1] == ("refunding", "refunded", "platform")  # type: ignore[attr-defined]


async def test_a_failed_callback_moves_the_case_to_refund_failed(
        database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    response = await post(client, "/api/v1/callbacks/refund", credited(event="failed", reason="card closed"))
    assert response.status == 200
    assert (await snapshot(database))["case"][0] is CaseStatus.REFUND_FAILED


async def test_the_same_outcome_sent_again_with_a_new_signature_changes_nothing(
        database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    assert (await post(client, "/api/v1/callbacks/refund", credited())).status == 200
    before = await snapshot(database)
    again = await post(client, "/api/v1/callbacks/refund", credited(), at=NOW + 1)
    assert again.status == 200 and (await again.json())["changed"] is False
    assert {**await snapshot(database), "nonces": before["nonces"]} == before


async def test_an_exact_replay_is_refused(database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    body = json.dumps(credited(event="failed")).encode()
    headers = signed_headers(SECRET, body, NOW)
    assert (await post(client, "/api/v1/callbacks/refund", body, headers=headers)).status == 200
    before = await snapshot(database)
    assert "replay" in await refused(await post(client, "/api/v1/callbacks/refund", body, headers=headers), 409)
    assert await snapshot(database) == before


@SQLITE_ONLY
@pytest.mark.parametrize("attack", ["wrong_secret", "tampered_body", "no_headers", "stale", "from_the_future"])
async def test_an_unauthentic_callback_is_refused_and_changes_nothing(
        database: Database, refunding: str, client: TestClient[Any, Any], attack: str) -> None:
    before = await snapshot(database)
    body = json.dumps(credited()).encode()
    headers = signed_headers(SECRET, body, NOW)
    if attack == "wrong_secret":
        headers = signed_headers("guessed", body, NOW)
    elif attack == "tampered_body":
        body = json.dumps(credited(amount="29.00")).encode()
    elif attack == "no_headers":
        headers = {}
    else:
        headers = signed_headers(SECRET, body, NOW + (-301 if attack == "stale" else 301))
    await refused(await post(client, "/api/v1/callbacks/refund", body, headers=headers), 401)
    assert await snapshot(database) == before


@SQLITE_ONLY
@pytest.mark.parametrize(("payload", "field"), [
    (b"{not json", None),
    (b"[1, 2]", "(body)"),
    ({"event": "credited", "case_no": CASE}, "idempotency_key"),
    ({"event": "paid", "case_no": CASE, "idempotency_key": KEY}, "event"),
    ({"event": "credited", "case_no": CASE, "idempotency_key": KEY, "amount": "-1"}, "amount"),
    ({"event": "credited", "case_no": 42, "idempotency_key": KEY}, "case_no"),
])
async def test_a_malformed_callback_is_refused_with_a_json_error_and_changes_nothing(
        database: Database, refunding: str, client: TestClient[Any, Any], payload: Any, field: str | None) -> None:
    before = await snapshot(database)
    response = await post(client, "/api/v1/callbacks/refund", payload)
    assert "malformed" in await refused(response, 400)
    if field is not None:
        assert field in [d["field"] for d in (await response.json())["details"]]
    assert await snapshot(database) == before


DEEP_LISTS = b"[" * 100_000 + b"]" * 100_000  # json.loads alone raises RecursionError on it
DEEP_OBJECTS = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@SQLITE_ONLY
@pytest.mark.parametrize("path", ["/api/v1/callbacks/refund", "/api/v1/callbacks/order"])
@pytest.mark.parametrize("payload", [DEEP_LISTS, DEEP_OBJECTS, b'{"event": ' + b"[" * 200 + b"]" * 200 + b"}"],
                         ids=["lists", "objects", "deeper_than_any_real_body"])
async def test_deeply_nested_json_is_refused_400_with_a_json_error_not_500(
        database: Database, refunding: str, client: TestClient[Any, Any], path: str, payload: bytes) -> None:
    before = await snapshot(database)
    assert "malformed" in await refused(await post(client, path, payload), 400)
    assert await snapshot(database) == before


@SQLITE_ONLY
async def test_an_over_large_body_is_refused_413_with_a_json_error_not_500(
        database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    before = await snapshot(database)
    payload = json.dumps(credited(reason="x" * (2 << 20))).encode()
    assert "larger than" in await refused(await post(client, "/api/v1/callbacks/refund", payload), 413)
    assert await snapshot(database) == before


@pytest.mark.parametrize(("payload", "status"), [
    (credited(case_no="R20990101-0001"), 404),
    (credited(idempotency_key=f"{CASE}-7"), 404),
    (credited(amount="30.01"), 409),  # more than this attempt pays
])
async def test_an_unknown_case_or_attempt_or_a_wrong_amount_is_refused(
        database: Database, refunding: str, client: TestClient[Any, Any], payload: dict[str, Any],
        status: int) -> None:
    before = await snapshot(database)
    await refused(await post(client, "/api/v1/callbacks/refund", payload), status)
    assert await snapshot(database) == before


async def test_credited_after_failed_is_a_forbidden_move(
        database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    assert (await post(client, "/api/v1/callbacks/refund", credited(event="failed"))).status == 200
    before = await snapshot(database)
    await refused(await post(client, "/api/v1/callbacks/refund", credited(), at=NOW + 1), 409)
    assert await snapshot(database) == before


async def test_a_callback_for_a_case_not_in_refunding_is_a_forbidden_move(
        database: Database, client: TestClient[Any, Any]) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case(CASE, "A1001", status=CaseStatus.IN_REVIEW))
        await uow.refunds.add(_attempt())  # an attempt exists, yet the case is in review
        await uow.commit()
    before = await snapshot(database)
    assert "in_review" in await refused(await post(client, "/api/v1/callbacks/refund", credited(amount=None)), 409)
    assert await snapshot(database) == before


def _attempt() -> Any:
    from dialogs.domain import RefundAttempt

    return RefundAttempt(case_no=CASE, idempotency_key=KEY, gateway="manual", amount=Decimal("100.00"),
                         status=RefundStatus.PENDING, created_at=T0)


# --- the order callback -----------------------------------------------------------------------


async def test_an_order_callback_inserts_then_replaces_the_order(
        database: Database, client: TestClient[Any, Any]) -> None:
    first = await post(client, "/api/v1/callbacks/order", ORDER)
    assert first.status == 200 and (await first.json())["inserted"] is True
    second = await post(client, "/api/v1/callbacks/order", {**ORDER, "delivery_status": "failed"}, at=NOW + 1)
    assert second.status == 200 and (await second.json())["inserted"] is False
    async with database.uow() as uow:
        order = await uow.orders.get(ORDER["order_no"])
    assert order is not None and order.delivery_status.value == "failed" and order.amount == Decimal("30.00")


@SQLITE_ONLY
@pytest.mark.parametrize("bad", [{"amount": "abc"}, {"paid_at": "2026-11-24T10:00:00"}, {"order_no": None}])
async def test_a_malformed_order_is_refused_with_the_field_named(
        database: Database, client: TestClient[Any, Any], bad: dict[str, Any]) -> None:
    before = await snapshot(database)
    error = await refused(await post(client, "/api/v1/callbacks/order", {**ORDER, **bad}), 400)
    assert next(iter(bad)) in error
    assert await snapshot(database) == before


async def test_an_unsigned_order_callback_is_refused(database: Database, client: TestClient[Any, Any]) -> None:
    await refused(await post(client, "/api/v1/callbacks/order", ORDER, secret="guessed"), 401)
    assert (await snapshot(database))["orders"] == 0


# --- reading a case ---------------------------------------------------------------------------


async def test_a_signed_get_shows_status_events_deadlines_and_refunds(
        database: Database, refunding: str, client: TestClient[Any, Any]) -> None:
    response = await get(client, f"/api/v1/cases/{CASE}")
    assert response.status == 200, await response.text()
    case = await response.json()
    assert case["status"] == "refunding" and case["amount"] == "30.00"
    assert [e["to"] for e in case["events"]] == ["in_review", "approved", "refunding"]
    assert case["deadlines"]["review_due"] == "2026-11-26" and case["deadlines"]["credit_due"]
    assert "credit_due" in [t["kind"] for t in case["deadlines"]["timers"]]
    assert case["refunds"] == [{"idempotency_key": KEY, "gateway": "manual", "amount": "30.00", "status": "pending",
                                "external_ref": None, "note": "", "created_at": case["refunds"][0]["created_at"]}]


async def test_reading_a_case_needs_a_fresh_signature_over_the_path(
        refunding: str, client: TestClient[Any, Any]) -> None:
    path = f"/api/v1/cases/{CASE}"
    await refused(await client.get(path), 401)
    await refused(await client.get(path, headers=signed_headers(SECRET, b"/api/v1/cases/other", NOW)), 401)
    await refused(await get(client, path, at=NOW - 600), 401)
    await refused(await get(client, "/api/v1/cases/R20990101-0001"), 404)


# --- the document, health and metrics ---------------------------------------------------------


async def test_the_openapi_document_is_valid_and_describes_every_route(
        database: Database, client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)  # OpenAPI 3.1
    app, _ = build_api(database)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert len(routes) == 10
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes <= described, routes - described


async def test_healthz_is_ok_while_the_database_answers(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and await response.json() == {"ok": True}


async def test_healthz_is_503_when_the_database_is_unreachable() -> None:
    unreachable = Database.from_url("postgresql://postgres@127.0.0.1:1/nowhere")
    app = web.Application()
    add_api_routes(app, PlatformApi(unreachable.uow, WORKFLOW, secret=SECRET, health_timeout=2))
    try:
        async with TestClient(TestServer(app)) as test_client:
            response = await test_client.get("/healthz")
            assert response.status == 503 and (await response.json())["ok"] is False
            metrics = await (await test_client.get("/metrics")).text()
            assert "refundbot_database_up 0.0" in metrics
    finally:
        await unreachable.dispose()


async def test_metrics_read_cases_and_backlog_at_scrape_time_and_count_what_others_report(
        database: Database, refunding: str) -> None:
    metrics = Metrics()
    app, _ = build_api(database, metrics)
    metrics.send_errors.labels(code="429").inc(2)
    metrics.updates_handled.inc()
    metrics.count_updates_from(lambda: 41)
    metrics.count_send_errors_from(lambda: {"429": 1, "403": 3})
    metrics.count_shared_limit_fallbacks_from(lambda: 2)
    async with TestClient(TestServer(app)) as test_client:
        assert (await post(test_client, "/api/v1/callbacks/refund", credited(), secret="guessed")).status == 401
        response = await test_client.get("/metrics")
        text = await response.text()
    assert response.status == 200 and response.content_type == "text/plain"
    lines = set(text.splitlines())
    assert 'refundbot_cases{status="refunding"} 1.0' in lines
    assert 'refundbot_cases{status="refunded"} 0.0' in lines
    assert 'refundbot_send_errors_total{code="429"} 3.0' in lines
    assert 'refundbot_send_errors_total{code="403"} 3.0' in lines
    assert "refundbot_updates_handled_total 42.0" in lines
    assert "refundbot_relay_shared_limit_fallbacks_total 2.0" in lines
    assert 'refundbot_platform_requests_total{code="401",endpoint="refund"} 1.0' in lines
    assert any(line.startswith("refundbot_outbox_backlog ") and not line.endswith(" 0.0") for line in lines)
    fresh = Metrics().render().decode()
    assert 'code="429"' not in fresh  # one registry per instance: nothing leaks between apps


def test_the_signature_header_is_documented() -> None:
    from bot.api import OPENAPI_PATH

    assert SIGNATURE_HEADER in OPENAPI_PATH.read_text(encoding="utf-8")


async def test_old_signatures_are_forgotten_once_they_could_not_pass_the_clock_check(
        database: Database, refunding: str) -> None:
    _, api = build_api(database)
    async with database.uow() as uow:
        await uow.nonces.remember("old", datetime.fromtimestamp(NOW - 700, UTC))
        await uow.nonces.remember("recent", datetime.fromtimestamp(NOW - 500, UTC))
        await uow.commit()
    assert await api.forget_old_nonces() == 1


