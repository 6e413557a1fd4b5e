"""The platform API's order operations over real HTTP on SQLite and PostgreSQL: an upsert that would
change the facts of an order with cases is refused 409; the batch import answers the file import's
report; bodies over the limits are refused 413 before they are parsed or their signature checked; the
audited correction changes facts, tells every case and never goes below what is refunded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

import bot.api_orders
from bot.api import MAX_BODY_BYTES
from bot.platform import signed_headers
from dialogs.domain import CaseStatus, Reason, RefundAttempt, RefundStatus
from storage.importer import import_orders
from storage.uow import Database
from tests.bot.test_api import NOW, SECRET, SQLITE_ONLY, build_api, get, post, refused, snapshot
from tests.bot.test_platform import ORDER
from tests.storage.factories import T0, make_case, make_order

ORDER_NO = ORDER["order_no"]
CASE = "R20261124-0001"
BATCH = "/api/v1/orders/batch"


@pytest.fixture
async def client(database: Database) -> AsyncIterator[TestClient[Any, Any]]:
    app, _ = build_api(database)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def correction_path(order_no: str = ORDER_NO) -> str:
    return f"/api/v1/orders/{order_no}/correction"


async def _with_case(database: Database, *, status: CaseStatus, refunded: str | None = None,
                     in_flight: str | None = None) -> None:
    """ORDER (¥99.50, as the fuzzer's) with a case, and what it refunded or has on its way."""
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(ORDER_NO, amount=Decimal("99.50"), buyer_phone=ORDER["buyer_phone"],
                                           buyer_telegram_id=ORDER["buyer_telegram_id"]))
        await uow.cases.add(make_case(CASE, ORDER_NO, amount=Decimal("99.50"), status=status))
        for n, value, state in ((1, refunded, RefundStatus.SUCCEEDED), (2, in_flight, RefundStatus.REQUESTED)):
            if value is not None:
                await uow.refunds.add(RefundAttempt(case_no=CASE, idempotency_key=f"{CASE}-{n}", gateway="manual",
                                                    amount=Decimal(value), status=state, created_at=T0))
        await uow.commit()


async def _amount(database: Database) -> tuple[Decimal, int | None] | None:
    async with database.uow() as uow:
        order = await uow.orders.get(ORDER_NO)
    return None if order is None else (order.amount, order.buyer_telegram_id)


async def _error(response: ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert isinstance(body["error"], str)
    return body


# -- 409: an order with cases keeps its facts ------------------------------------------------------

async def test_an_upsert_to_0_01_of_an_order_refunded_99_50_is_refused_409(
        database: Database, client: TestClient[Any, Any]) -> None:
    await _with_case(database, status=CaseStatus.REFUNDED, refunded="99.50")
    before = await snapshot(database)
    body = await _error(await post(client, "/api/v1/callbacks/order", {**ORDER, "amount": "0.01"}), 409)
    assert body["reason"] == "order_has_cases" and body["fields"] == ["amount"]
    assert await snapshot(database) == before and await _amount(database) == (Decimal("99.50"), 10001)


async def test_an_upsert_to_5000_and_another_buyer_of_a_refunding_order_is_refused_409(
        database: Database, client: TestClient[Any, Any]) -> None:
    await _with_case(database, status=CaseStatus.REFUNDING, in_flight="99.50")
    body = await _error(await post(client, "/api/v1/callbacks/order",
                                   {**ORDER, "amount": "5000.00", "buyer_phone": "13900000214",
                                    "buyer_telegram_id": 214}), 409)
    assert body["fields"] == ["amount", "buyer_phone", "buyer_telegram_id"]
    assert "correction" in body["error"]
    assert await _amount(database) == (Decimal("99.50"), 10001)


async def test_an_upsert_of_an_order_with_cases_that_keeps_its_facts_is_stored(
        database: Database, client: TestClient[Any, Any]) -> None:
    await _with_case(database, status=CaseStatus.REFUNDING, in_flight="99.50")
    response = await post(client, "/api/v1/callbacks/order", {**ORDER, "amount": "99.50", "card_redeemed": True})
    assert response.status == 200, await response.text()
    async with database.uow() as uow:
        stored = await uow.orders.get(ORDER_NO)
    assert stored is not None and stored.card_redeemed is True


# -- 413: limits before parsing or signing ---------------------------------------------------------

@SQLITE_ONLY
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("path", ["/api/v1/callbacks/order", correction_path()])
async def test_a_body_over_1_mib_is_refused_413_signed_or_not(
        database: Database, client: TestClient[Any, Any], signed: bool, path: str) -> None:
    body = json.dumps([ORDER] * 4000).encode()  # the fuzzer's bulk body: thousands of orders
    assert len(body) > MAX_BODY_BYTES
    before = await snapshot(database)
    assert "larger than" in await refused(await post(client, path, body, headers=None if signed else {}), 413)
    assert await snapshot(database) == before


def _jsonl(*rows: dict[str, Any] | str) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


async def _batch(client: TestClient[Any, Any], body: bytes, *, signed: bool = True, chunked: bool = False,
                 at: float = NOW) -> ClientResponse:
    headers = {**(signed_headers(SECRET, body, at) if signed else {}), "Content-Type": "application/x-ndjson"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start:start + 1000]

    return await client.post(BATCH, data=chunks() if chunked else body, headers=headers)


@SQLITE_ONLY
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("chunked", [True, False])
async def test_a_batch_over_its_line_or_byte_limit_is_refused_413_before_anything_is_read_into_orders(
        database: Database, client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch,
        signed: bool, chunked: bool) -> None:
    monkeypatch.setattr(bot.api_orders, "BATCH_MAX_LINES", 3)
    rows = [{**ORDER, "order_no": f"KM2026112400000{n}"} for n in range(4)]
    before = await snapshot(database)
    body = await _error(await _batch(client, _jsonl(*rows), signed=signed, chunked=chunked), 413)
    assert body["max_lines"] == 3
    monkeypatch.setattr(bot.api_orders, "BATCH_MAX_BYTES", 500)
    body = await _error(await _batch(client, _jsonl(*rows[:2]), signed=signed, chunked=chunked), 413)
    assert body["max_bytes"] == 500
    assert await snapshot(database) == before


@SQLITE_ONLY
async def test_a_last_line_without_a_newline_counts_toward_the_limit(
        database: Database, client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.api_orders, "BATCH_MAX_LINES", 1)
    body = _jsonl(ORDER) + json.dumps({**ORDER, "order_no": "KM20261124000002"}).encode()
    await _error(await _batch(client, body), 413)


# -- the batch -------------------------------------------------------------------------------------

async def test_the_batch_answers_the_file_imports_report_row_by_row(
        database: Database, client: TestClient[Any, Any], tmp_path: Path) -> None:
    await _with_case(database, status=CaseStatus.REFUNDED, refunded="99.50")
    body = _jsonl({**ORDER, "order_no": "KM20261124000002"},  # 1: inserted
                  {**ORDER, "amount": "0.01"},  # 2: the order has cases
                  "{not json",  # 3
                  {**ORDER, "order_no": "KM20261124000003", "amount": "abc"},  # 4
                  "",  # 5: blank, skipped
                  {**ORDER, "amount": "99.50", "card_redeemed": True})  # 6: updated, facts unchanged
    response = await _batch(client, body, chunked=True)
    assert response.status == 200, await response.text()
    report = await response.json()
    assert (report["inserted"], report["updated"]) == (1, 1)
    assert [row["line"] for row in report["rejected"]] == [2, 3, 4]
    assert "amount cannot change" in report["rejected"][0]["reason"]
    assert await _amount(database) == (Decimal("99.50"), 10001)
    # The same rows through `refundbot orders import` (fresh orders) read the same, line by line.
    path = tmp_path / "orders.jsonl"
    path.write_bytes(body.replace(b'"KM20261124000002"', b'"KM20261124000009"'))
    file_report = await import_orders(database, path)
    assert [(r.line, r.reason) for r in file_report.rejected] == [(r["line"], r["reason"]) for r in report["rejected"]]


@SQLITE_ONLY
async def test_an_unsigned_or_replayed_batch_writes_nothing(database: Database, client: TestClient[Any, Any]) -> None:
    body = _jsonl({**ORDER, "order_no": "KM20261124000002"})
    before = await snapshot(database)
    await _error(await _batch(client, body, signed=False), 401)
    await _error(await _batch(client, body, at=NOW - 3600), 401)  # a stale timestamp
    forged = {**signed_headers("not the secret", body, NOW), "Content-Type": "application/x-ndjson"}
    await _error(await client.post(BATCH, data=body, headers=forged), 401)
    assert await snapshot(database) == before
    assert (await _batch(client, body)).status == 200
    assert "replayed" in (await _error(await _batch(client, body), 409))["error"]


@SQLITE_ONLY
async def test_a_batch_that_is_not_utf8_is_refused_400_and_writes_nothing(
        database: Database, client: TestClient[Any, Any]) -> None:
    before = await snapshot(database)
    body = _jsonl({**ORDER, "order_no": "KM20261124000002"}) + b'{"order_no": "\xff"}\n'
    assert "UTF-8" in (await _error(await _batch(client, body), 400))["error"]
    assert await snapshot(database) == before


# -- the audited correction ------------------------------------------------------------------------

async def test_a_correction_changes_the_amount_and_is_an_event_on_every_case(
        database: Database, client: TestClient[Any, Any]) -> None:
    await _with_case(database, status=CaseStatus.IN_REVIEW, refunded="20.00")
    async with database.uow() as uow:
        await uow.cases.add(make_case("R20261124-0002", ORDER_NO, amount=Decimal("10.00"),
                                      reason=Reason.CARD_USED))
        await uow.commit()
    response = await post(client, correction_path(), {"amount": "80.00", "buyer_telegram_id": 214,
                                                      "reason": "shop typo, ticket 77", "actor": "alice"})
    assert response.status == 200, await response.text()
    assert await response.json() == {"ok": True, "order_no": ORDER_NO, "corrected": ["amount", "buyer_telegram_id"],
                                     "amount": "80.00", "cases": [CASE, "R20261124-0002"]}
    assert await _amount(database) == (Decimal("80.00"), 214)
    for case_no in (CASE, "R20261124-0002"):
        case = await (await get(client, f"/api/v1/cases/{case_no}")).json()
        assert case["order_paid"] == "99.50"  # as when it was filed
        events = case["events"]
        assert events[-1]["actor"] == "platform:alice" and events[-1]["from"] == events[-1]["to"]
        async with database.uow() as uow:
            [note] = [e.note for e in await uow.desk.history(case_no) if e.note.startswith("order_correction")]
        assert note == "order_correction: amount 99.50 -> 80.00, buyer_telegram_id; shop typo, ticket 77"


async def test_a_correction_below_what_is_refunded_or_on_its_way_is_refused_409(
        database: Database, client: TestClient[Any, Any]) -> None:
    await _with_case(database, status=CaseStatus.REFUNDING, refunded="20.00", in_flight="30.00")
    before = await snapshot(database)
    body = await _error(await post(client, correction_path(), {"amount": "49.99", "reason": "r", "actor": "a"}), 409)
    assert (body["reason"], body["fields"], body["committed"]) == ("below_refunded", ["amount"], "50.00")
    assert await snapshot(database) == before and await _amount(database) == (Decimal("99.50"), 10001)


@SQLITE_ONLY
@pytest.mark.parametrize(("payload", "status"), [
    ({"amount": "80.00", "actor": "a"}, 400),  # no reason
    ({"amount": "1E+2", "reason": "r", "actor": "a"}, 400),  # not a plain decimal
    ({"amount": None, "reason": "r", "actor": "a"}, 400),  # an order always has an amount
    ({"amount": "80.00", "reason": "r\u202e", "actor": "a"}, 400),  # bidi control in the audit trail
    ({"product_name": "x", "reason": "r", "actor": "a"}, 400),  # not a fact
    ({"amount": "99.50", "reason": "r", "actor": "a"}, 400),  # changes nothing
])
async def test_a_bad_correction_is_refused_400_and_changes_nothing(
        database: Database, client: TestClient[Any, Any], payload: dict[str, Any], status: int) -> None:
    await _with_case(database, status=CaseStatus.IN_REVIEW)
    before = await snapshot(database)
    await _error(await post(client, correction_path(), payload), status)
    assert await snapshot(database) == before


@SQLITE_ONLY
async def test_a_correction_of_an_unknown_order_is_404_and_unsigned_is_401(
        database: Database, client: TestClient[Any, Any]) -> None:
    payload = {"amount": "80.00", "reason": "r", "actor": "a"}
    await _error(await post(client, correction_path("KM20990101000001"), payload), 404)
    await _error(await post(client, correction_path(), payload, headers={}), 401)


# -- the OpenAPI document ------------------------------------------------------------------------


async def test_the_openapi_document_describes_the_order_operations(
        client: TestClient[Any, Any]) -> None:
    from openapi_spec_validator import validate

    document = await (await client.get("/api/v1/openapi.json")).json()
    validate(document)  # OpenAPI 3.1, every $ref resolving
    operations = {op["operationId"]: op for item in document["paths"].values() for op in item.values()}
    assert {"orderBatch", "orderCorrection", "orderCallback", "getCase"} <= set(operations)
    linked = {link["operationId"] for op in operations.values() for answer in op["responses"].values()
              for link in answer.get("links", {}).values()}
    assert linked <= set(operations) and {"orderCorrection", "getCase"} <= linked
    assert "order_paid" in document["components"]["schemas"]["Case"]["properties"]
    assert "case_no" in document["components"]["schemas"]["Case"]["properties"]
    correction = document["components"]["schemas"]["OrderCorrection"]
    assert set(correction["properties"]) - {"reason", "actor"} == set(bot.api_orders.Correction.model_fields) - {
        "reason", "actor"}
