"""The platform and the running bot: orders read from the platform's API, a signed refund callback that
reaches the customer, /healthz and /metrics on the bot's web app. Real HTTP everywhere: a small
platform server, the bot's own web app, the emulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.platform import signed_headers
from dialogs.domain import CaseStatus
from dialogs.texts import Texts
from tests.e2e.conftest import CASE_NO, make_config, png_bytes, texts
from tests.e2e.test_case_aftercare import eventually, move, stored

ZH = Texts("zh_CN")
SECRET = "platform-secret"
PLATFORM_ORDER = "KM20261124777777"  # not among the demo orders: only the platform knows it


class Platform:
    """The shop's order API: GET /orders/{no}, signed; `down` makes it answer 503."""

    def __init__(self) -> None:
        self.down = False
        self.asked: list[str] = []
        now = datetime.now(UTC)
        self.orders = {PLATFORM_ORDER: {
            "order_no": PLATFORM_ORDER, "buyer_phone": "13900001111", "buyer_telegram_id": 10001,
            "product_name": "网易一卡通 50元", "product_kind": "card_code", "tags": "", "amount": "50.00",
            "payment_channel": "wechat", "paid_at": (now - timedelta(hours=2)).isoformat(),
            "delivered_at": (now - timedelta(hours=2)).isoformat(), "delivery_status": "delivered",
            "card_redeemed": False, "topup_credited": None,
        }}

    async def order(self, request: web.Request) -> web.Response:
        self.asked.append(request.match_info["no"])
        if self.down:
            return web.Response(status=503, text="maintenance")
        found = self.orders.get(request.match_info["no"])
        return web.json_response(found) if found else web.json_response({"error": "no such order"}, status=404)


@pytest.fixture
async def platform() -> AsyncIterator[tuple[Platform, str]]:
    shop = Platform()
    app = web.Application()
    app.router.add_get("/orders/{no}", shop.order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield shop, f"http://127.0.0.1:{port}/orders"
    await runner.cleanup()


def platform_config(tmp_path: Any, orders_url: str = "") -> Any:
    config = make_config(tmp_path)
    platform: dict[str, Any] = {"secret": SECRET}
    if orders_url:
        platform.update(orders="http", orders_url=orders_url)
    return config.model_copy(update={"platform": config.platform.model_copy(update=platform)})


async def test_an_order_only_the_platform_knows_is_found_and_filed(start_bot, customer, platform, tmp_path):
    shop, url = platform
    bot = await start_bot(platform_config(tmp_path, url))
    c = await customer(10001)
    shown = await c.say(f"/start order_{PLATFORM_ORDER}")
    assert "网易一卡通 50元" in texts(shown)
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")
    await c.photo(png_bytes())
    await c.press(ZH("btn_done"))
    case_no = CASE_NO.search(texts(await c.press(ZH("btn_submit"))))
    assert case_no and shop.asked == [PLATFORM_ORDER]
    async with bot.running.database.uow() as uow:  # the copy the case, deadlines and exports read
        local = await uow.orders.get(PLATFORM_ORDER)
    assert local is not None and local.product_name == "网易一卡通 50元"


async def test_the_platform_being_down_is_said_plainly_and_does_not_count_as_a_failed_try(
        start_bot, customer, platform, tmp_path):
    shop, url = platform
    await start_bot(platform_config(tmp_path, url))
    shop.down = True
    c = await customer(10001)
    await c.say("/refund")
    for _ in range(6):  # more than the failed-lookup allowance
        assert texts(await c.say(PLATFORM_ORDER)) == ZH("orders_unavailable")
    shop.down = False
    assert "网易一卡通 50元" in texts(await c.say(PLATFORM_ORDER))  # no cool-down


async def test_a_signed_credited_callback_tells_the_customer_the_money_is_back(start_bot, customer, tmp_path):
    bot = await start_bot(platform_config(tmp_path))
    c = await customer(10001)
    await c.say("/start order_KM20261101000001")
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")
    await c.photo(png_bytes())
    await c.press(ZH("btn_done"))
    found = CASE_NO.search(texts(await c.press(ZH("btn_submit"))))
    assert found
    case_no = found.group(0)
    await move(bot, case_no, "start_review", "approve")
    async with bot.running.database.uow() as uow:
        key = (await uow.refunds.for_case(case_no))[0].idempotency_key

    body = json.dumps({"event": "credited", "case_no": case_no, "idempotency_key": key}).encode()
    async with aiohttp.ClientSession() as http:
        url = f"{bot.running.web_url}/api/v1/callbacks/refund"
        async with http.post(url, data=body, headers={**signed_headers(SECRET, body),
                                                      "Content-Type": "application/json"}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post(url, data=body, headers={**signed_headers(SECRET, body, 0),  # a stale copy
                                                      "Content-Type": "application/json"}) as resp:
            assert resp.status == 401
        async with http.get(f"{bot.running.web_url}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{bot.running.web_url}/metrics") as resp:
            page = await resp.text()
    assert (await stored(bot, case_no)).status is CaseStatus.REFUNDED
    news = await eventually(c, lambda m: "🎉" in texts(m))
    assert case_no in texts(news) and "5⭐" in [b["text"] for m in news
                                               for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
                                               for b in row]
    assert 'status="refunded"' in page
