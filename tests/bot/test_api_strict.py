"""Issue 19's fuzzer findings, one test each: strict order input (400 naming the field, the same verdict as
bot/openapi.json), 413 before the signature, never a 500, and aiohttp's own protocol refusals in the API's
Error JSON (a NUL byte in a header logged as one WARNING line, no traceback)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.api import OPENAPI_PATH, PlatformApi, add_api_routes
from bot.http_errors import ApiRunner
from storage.uow import Database
from tests.bot.test_api import CASE, NOW, SECRET, WORKFLOW, client, post, refunding, refused, snapshot
from tests.bot.test_platform import ORDER

__all__ = ["client", "refunding"]  # fixtures, imported for their side effect on pytest

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
DOCUMENT = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def documented(schema: str, instance: Any) -> bool:
    """Whether bot/openapi.json's components.schemas[schema] takes `instance`."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": DOCUMENT["components"]}
    return jsonschema.Draft202012Validator(root).is_valid(instance)


FIELD_REFUSALS = [  # (field, value): each one seen in the fuzzer's run, or its close kin
    ("amount", "1E+2"),
    ("amount", "0"),
    ("amount", "+5"),
    ("amount", "007.50"),
    ("amount", "1.005"),
    ("paid_at", "+2026-11-24T10:00:00+08:00"),
    ("paid_at", "0001-01-01T00:00:00+08:00"),  # OverflowError converting to UTC
    ("paid_at", "9999-12-31T23:59:59-08:00"),
    ("paid_at", "9999-12-31T23:59:59+00:00"),  # stored once, then every lookup crashed
    ("paid_at", "1999-12-31T23:59:59Z"),
    ("paid_at", "2026-W48-2T10:00:00+08:00"),
    ("order_no", "A1\x00"),
    ("order_no", "A1\u202e"),
    ("order_no", "A 1"),
    ("order_no", ""),
    ("buyer_phone", ""),
    ("buyer_phone", "138\x00"),
    ("product_name", "Q币\u2066卡"),
    ("product_name", "two\nlines"),
    ("trade_no", "T\x07"),
    ("tags", "x" * 900_000),
    ("tags", ["a"] * 100_000),
    ("tags", ["y" * 33]),
    ("buyer_telegram_id", "+5"),
    ("card_redeemed", "yes"),
    ("delivery_status", 1),
]


@SQLITE_ONLY
@pytest.mark.parametrize(("field", "value"), FIELD_REFUSALS,
                         ids=[f"{field}={str(value)[:16]!r}" for field, value in FIELD_REFUSALS])
async def test_a_bad_order_field_is_refused_400_naming_it_as_the_document_says(
        database: Database, client: TestClient[Any, Any], field: str, value: Any) -> None:
    order = {**ORDER, field: value}
    assert not documented("Order", order), "the document must refuse what the server refuses"
    before = await snapshot(database)
    response = await post(client, "/api/v1/callbacks/order", order)
    assert "malformed order" in await refused(response, 400)
    assert field in [detail["field"] for detail in (await response.json())["details"]]
    assert await snapshot(database) == before


# Rules JSON Schema cannot state (across fields, or after splitting a text): the server alone refuses them.
@SQLITE_ONLY
@pytest.mark.parametrize(("changes", "field"), [
    ({"paid_at": "2026-11-24T10:00:00+08:00", "delivered_at": "2026-11-24T09:59:59+08:00"}, "delivered_at"),
    ({"paid_at": "2000-01-01T07:59:59+08:00", "delivered_at": None}, "paid_at"),  # 1999 in UTC
    ({"paid_at": "2026-02-30T10:00:00+08:00"}, "paid_at"),
    ({"tags": ",".join(f"t{n}" for n in range(33))}, "tags"),
    ({"tags": "a," + "z" * 33}, "tags"),
])
async def test_what_the_document_cannot_say_is_refused_by_the_server(
        database: Database, client: TestClient[Any, Any], changes: dict[str, Any], field: str) -> None:
    response = await post(client, "/api/v1/callbacks/order", {**ORDER, **changes})
    await refused(response, 400)
    assert [d["field"] for d in (await response.json())["details"]] == [field]
    assert (await snapshot(database))["orders"] == 0


@SQLITE_ONLY
@pytest.mark.parametrize(("field", "value"), [
    ("amount", "0.01"), ("amount", 49.9), ("amount", 100), ("amount", " 30.00 "), ("order_no", 20261124001),
    ("order_no", "DJ-2026.11:24_1"), ("paid_at", "2000-01-01T00:00:00Z"), ("paid_at", "2099-12-31T23:59:59Z"),
    ("tags", ["y" * 32] * 32), ("tags", None), ("delivered_at", ""), ("buyer_telegram_id", " 42 "),
    ("product_name", "Q币卡 100 元（限时折扣）"), ("card_redeemed", "TRUE"),
])
async def test_orders_at_the_edges_of_the_rules_are_taken_and_documented(
        database: Database, client: TestClient[Any, Any], field: str, value: Any) -> None:
    order = {**ORDER, field: value, **({"delivered_at": None} if field == "paid_at" else {})}
    assert documented("Order", order)
    response = await post(client, "/api/v1/callbacks/order", order)
    assert response.status == 200, await response.text()


@SQLITE_ONLY
async def test_an_unknown_order_field_is_refused(database: Database, client: TestClient[Any, Any]) -> None:
    order = {**ORDER, "amount_paid": "1.00"}
    assert not documented("Order", order)
    response = await post(client, "/api/v1/callbacks/order", order)
    assert "unknown fields: amount_paid" in await refused(response, 400)
    assert (await snapshot(database))["orders"] == 0


@SQLITE_ONLY
@pytest.mark.parametrize(("field", "value"), [
    ("amount", "1E+2"), ("amount", "30.001"), ("case_no", f"{CASE}\u202e"), ("idempotency_key", ""),
    ("reason", "bad\x00"), ("reference", "x" * 129), ("paid_by", "someone"),
])
async def test_a_bad_refund_callback_field_is_refused_400_naming_it(
        database: Database, refunding: str, client: TestClient[Any, Any], field: str, value: Any) -> None:
    callback = {"event": "credited", "case_no": CASE, "idempotency_key": f"{CASE}-1", "amount": "30.00", field: value}
    assert not documented("RefundCallback", callback)
    before = await snapshot(database)
    response = await post(client, "/api/v1/callbacks/refund", callback)
    await refused(response, 400)
    assert field in [d["field"] for d in (await response.json())["details"]]
    assert await snapshot(database) == before


@SQLITE_ONLY
@pytest.mark.parametrize("signed", [True, False])
async def test_a_body_over_the_cap_is_413_before_the_signature_is_looked_at(
        database: Database, client: TestClient[Any, Any], signed: bool) -> None:
    orders = [{**ORDER, "order_no": f"A{n}"} for n in range(10_000)]  # the fuzzer's 10,000-order body
    body = json.dumps(orders).encode()
    headers = None if signed else {}
    assert "larger than" in await refused(await post(client, "/api/v1/callbacks/order", body, headers=headers), 413)
    assert (await snapshot(database))["orders"] == 0


@SQLITE_ONLY
async def test_a_chunked_body_over_the_cap_is_413_too(database: Database, client: TestClient[Any, Any]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # 1.25 MiB in all, no Content-Length

    response = await client.post("/api/v1/callbacks/order", data=chunks())
    await refused(response, 413)


@SQLITE_ONLY
async def test_several_orders_in_one_body_are_400_not_500(database: Database, client: TestClient[Any, Any]) -> None:
    response = await post(client, "/api/v1/callbacks/order", [ORDER, ORDER])
    assert "JSON object" in await refused(response, 400)


@SQLITE_ONLY
async def test_a_wrong_method_or_a_path_no_route_takes_answers_json(client: TestClient[Any, Any]) -> None:
    response = await client.delete(f"/api/v1/cases/{CASE}")
    await refused(response, 405)
    assert "GET" in response.headers["Allow"]
    await refused(await client.get("/api/v1/cases/a/b"), 404)


# --- protocol errors: aiohttp refuses these before any handler runs ----------------------------


@pytest.fixture
async def raw_api(database: Database) -> AsyncIterator[tuple[str, int]]:
    app = web.Application()
    add_api_routes(app, PlatformApi(database.uow, WORKFLOW, secret=SECRET, clock=lambda: NOW))
    runner = ApiRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield "127.0.0.1", int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def exchange(address: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@SQLITE_ONLY
@pytest.mark.parametrize("request_bytes", [
    b"GET /api/v1/cases/" + b"R" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 10_000 + b"\r\n\r\n",
    b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Refundbot-Signature: a\x00b\r\n\r\n",
], ids=["request_line_too_long", "header_too_long", "nul_in_a_header"])
async def test_requests_aiohttp_refuses_get_the_apis_error_json_and_a_warning_without_traceback(
        raw_api: tuple[str, int], caplog: pytest.LogCaptureFixture, request_bytes: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    status, headers, body = await exchange(raw_api, request_bytes)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"].startswith("bad HTTP request")
    refusals = [r for r in caplog.records if r.name == "bot.http_errors"]
    assert [r.levelno for r in refusals] == [logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@SQLITE_ONLY
async def test_the_api_runner_still_answers_ordinary_requests(raw_api: tuple[str, int]) -> None:
    status, _, body = await exchange(raw_api, b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and json.loads(body) == {"ok": True}
