"""The dashboard's sign-in over real HTTP (aiohttp's test server, a migrated SQLite database): Telegram
Login Widget data signed as Telegram signs it, the shared password and its per-address limit, the
session cookie, and the data endpoint that refuses without it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.dashboard import Dashboard
from bot.dashboard.auth import SessionSigner
from bot.dashboard.routes import COOKIE
from dialogs.settings import DashboardSettings, DeskSettings
from storage.uow import Database

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # sign-in touches no SQL but the data read

TOKEN = "7000000001:dashboard-test-token"
SUPERVISOR, AGENT = 601, 501
NOW = 1_800_000_000.0
PASSWORD = "correct horse battery staple"
DESK = DeskSettings(agents=(AGENT,), supervisors=(SUPERVISOR,))


def widget_payload(user_id: int = SUPERVISOR, auth_date: float = NOW - 60, token: str = TOKEN) -> dict[str, str]:
    """What Telegram's Login Widget sends back, signed as https://core.telegram.org/widgets/login says."""
    data = {"id": str(user_id), "first_name": "王", "username": "wang_sup",
            "photo_url": "https://t.me/i/userpic/320/wang.jpg", "auth_date": str(int(auth_date))}
    check = "\n".join(f"{k}={data[k]}" for k in sorted(data))
    data["hash"] = hmac.new(hashlib.sha256(token.encode()).digest(), check.encode(), hashlib.sha256).hexdigest()
    return data


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_client(database: Database) -> Callable[..., Any]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**settings: Any) -> TestClient[Any, Any]:
        limiter_clock = settings.pop("limiter_clock", Clock())
        dashboard = Dashboard(database, DashboardSettings(**settings), DESK, token=TOKEN, timezone="Asia/Shanghai",
                              clock=lambda: NOW, limiter_clock=limiter_clock)
        app = web.Application()
        dashboard.add_routes(app)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[TestClient[Any, Any]]:
    c = await make_client(password=PASSWORD, bot_username="refund_test_bot")
    yield c
    await c.close()


async def sign_in(client: TestClient[Any, Any], password: str = PASSWORD) -> Any:
    return await client.post("/dashboard/login?lang=en", data={"password": password}, allow_redirects=False)


async def test_a_widget_payload_signed_as_telegram_does_lets_a_supervisor_in(client: TestClient[Any, Any]) -> None:
    response = await client.get("/dashboard/login/telegram", params=widget_payload())
    assert response.status == 200
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/dashboard"
    page = await (await client.get("/dashboard?lang=en")).text()
    assert '<canvas id="chart-agents">' in page and "Signed in as Agent 2" in page  # the desk alias, not the Telegram name


@pytest.mark.parametrize("field", ["id", "first_name", "auth_date", "hash"])
async def test_a_tampered_widget_payload_is_refused(client: TestClient[Any, Any], field: str) -> None:
    payload = widget_payload()
    payload[field] = payload[field][:-1] + ("0" if payload[field][-1] != "0" else "1")
    response = await client.get("/dashboard/login/telegram", params={**payload, "lang": "en"})
    assert response.status == 403 and COOKIE not in response.cookies
    assert "could not be verified, or this account is not a supervisor" in await response.text()


async def test_a_widget_payload_signed_with_another_bots_token_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get("/dashboard/login/telegram", params=widget_payload(token="1:other-bot"))
    assert response.status == 403 and COOKIE not in response.cookies


async def test_a_widget_payload_older_than_a_day_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get("/dashboard/login/telegram", params=widget_payload(auth_date=NOW - 86_401))
    assert response.status == 403 and COOKIE not in response.cookies


async def test_an_agent_who_is_not_a_supervisor_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get("/dashboard/login/telegram", params={**widget_payload(AGENT), "lang": "zh_CN"})
    assert response.status == 403 and COOKIE not in response.cookies
    assert "该账号不是主管" in await response.text()


async def test_the_right_password_signs_in_and_opens_the_charts(client: TestClient[Any, Any]) -> None:
    response = await sign_in(client)
    assert response.status == 303 and response.headers["Location"] == "/dashboard?lang=en"
    assert response.cookies[COOKIE]["httponly"] and response.cookies[COOKIE]["samesite"] == "Strict"
    data = await client.get("/dashboard/data?days=7")
    assert data.status == 200 and len((await data.json())["days"]) == 7


async def test_a_wrong_password_is_refused_politely_in_the_visitors_language(client: TestClient[Any, Any]) -> None:
    response = await sign_in(client, "guess")
    assert response.status == 401 and COOKIE not in response.cookies
    assert "That password is not correct. Please try again." in await response.text()
    assert (await client.get("/dashboard/data")).status == 401


async def test_after_five_wrong_passwords_even_the_right_one_waits_out_the_window(
        make_client: Callable[..., Any]) -> None:
    clock = Clock()
    client = await make_client(password=PASSWORD, limiter_clock=clock)
    try:
        for _ in range(5):
            assert (await sign_in(client, "guess")).status == 401
        blocked = await sign_in(client)
        assert blocked.status == 429 and COOKIE not in blocked.cookies
        assert "Too many attempts. Please try again in 15 minutes." in await blocked.text()
        clock.now = 15 * 60 + 1  # the window has passed
        assert (await sign_in(client)).status == 303
    finally:
        await client.close()


async def test_the_data_endpoint_refuses_without_a_session(client: TestClient[Any, Any]) -> None:
    response = await client.get("/dashboard/data?days=30", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.status == 401
    assert await response.json() == {"error": "Your sign-in has ended. Please sign in again."}


async def test_a_forged_or_expired_cookie_is_no_session(client: TestClient[Any, Any]) -> None:
    forged = SessionSigner("1:other-bot", PASSWORD, 3600, clock=lambda: NOW).issue("password")
    expired = SessionSigner(TOKEN, PASSWORD, 3600, clock=lambda: NOW - 7200).issue("password")
    for cookie in (forged, expired, "password.9999999999.0000"):
        response = await client.get("/dashboard/data", cookies={COOKIE: cookie})
        assert response.status == 401, cookie


async def test_signing_out_ends_the_session(client: TestClient[Any, Any]) -> None:
    await sign_in(client)
    response = await client.post("/dashboard/logout", allow_redirects=False)
    assert response.status == 303 and response.cookies[COOKIE].value == ""
    assert (await client.get("/dashboard/data")).status == 401


async def test_a_bad_number_of_days_is_refused_with_a_clear_answer(client: TestClient[Any, Any]) -> None:
    await sign_in(client)
    for days in ("0", "400", "thirty"):
        response = await client.get(f"/dashboard/data?days={days}&lang=zh_CN")
        assert response.status == 400
        assert await response.json() == {"error": "统计天数须为 1 到 366 之间的整数。"}


async def test_without_a_password_or_telegram_sign_in_the_dashboard_is_not_there(
        make_client: Callable[..., Any]) -> None:
    client = await make_client()
    try:
        assert (await client.get("/dashboard")).status == 404
        assert (await client.get("/dashboard/data")).status == 404
    finally:
        await client.close()


async def test_the_sign_in_page_follows_accept_language_and_the_lang_toggle(client: TestClient[Any, Any]) -> None:
    chinese = await (await client.get("/dashboard")).text()
    english = await (await client.get("/dashboard", headers={"Accept-Language": "en-GB,en;q=0.8"})).text()
    toggled = await (await client.get("/dashboard?lang=zh_CN", headers={"Accept-Language": "en"})).text()
    assert "主管登录" in chinese and "Supervisor sign-in" in english and "主管登录" in toggled
    assert 'data-telegram-login="refund_test_bot"' in english


async def test_agents_show_by_their_desk_alias_and_former_staff_by_id(
        client: TestClient[Any, Any], database: Database) -> None:
    from datetime import UTC, datetime

    async with database.uow() as uow:
        for actor in (AGENT, 777):
            await uow.desk.audit(actor_id=actor, key="R1", action="take", allowed=True,
                                 at=datetime.fromtimestamp(NOW - 3600, UTC), detail="")
        await uow.commit()
    await sign_in(client)
    agents = (await (await client.get("/dashboard/data?days=1&lang=zh_CN")).json())["agents"]
    assert [(a["name"], a["taken"]) for a in agents] == [("客服1号", 1), ("客服 ID 777", 1)]
