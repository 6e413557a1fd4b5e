"""The dashboard in headless Chromium on a running bot (aiogram, on the emulator, SQLite) with cases moved
by the real workflow: a supervisor signs in with the password and sees the five charts drawn (their
canvases hold coloured pixels). The screenshot goes to the test's tmp_path, and to docs/dashboard.png for
the README when REFUNDBOT_UPDATE_SCREENSHOT=1.

Needs Debian's chromium and chromium-driver; skipped with the reason when they are missing, unless
REFUNDBOT_REQUIRE_BROWSER=1 (CI), where that is a failure."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import running_bot, serve
from bot.workers.timers import TimerSweeper
from dialogs.cases import CaseWorkflow
from dialogs.clock import utcnow
from dialogs.domain import DeskItem, PaymentChannel
from dialogs.refunds import settle
from sandbox.server import Emulator
from storage.uow import Database
from tests.e2e.conftest import TOKEN, make_config
from tests.sandbox.test_web import headless_chromium, wait_for
from tests.storage.factories import make_case, make_order

PASSWORD = "supervisor-only"
CHARTS = ("chart-open", "chart-missed", "chart-refunds", "chart-csat", "chart-agents")
# Pixels of a dataset's colour (grid lines, axes and text are grey or black).
COLOURED_PIXELS = """
const c = document.getElementById(arguments[0]);
const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let coloured = 0;
for (let i = 0; i < pixels.length; i += 4) {
  const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
  if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
}
return coloured;
"""


async def seed_cases(database: Database, workflow: CaseWorkflow, now: datetime) -> None:
    """A fortnight of cases: refunds on three channels, two ratings, a missed review date, desk work."""
    channels = [PaymentChannel.ALIPAY, PaymentChannel.WECHAT, PaymentChannel.BANK_CARD, PaymentChannel.BALANCE]
    for n in range(1, 9):
        at = now - timedelta(days=14 - n)
        order_no, case_no = f"KM2026999900{n:04d}", f"R99990000-{n:04d}"
        async with database.uow() as uow:
            order = make_order(order_no, amount=Decimal(20 * n), payment_channel=channels[n % 4], tags=frozenset(),
                               paid_at=at - timedelta(hours=1), delivered_at=at - timedelta(minutes=50))
            await uow.orders.upsert(order)
            case = make_case(case_no, order_no, amount=Decimal(20 * n), created_at=at)
            await uow.cases.add(case)
            await workflow.filed(uow, case, order)
            if n <= 5:  # decided: the rest wait for review (and one misses its date)
                await workflow.move(uow, case_no, "start_review", actor="agent:501", at=at)
                await workflow.approve(uow, case_no, actor="agent:501", at=at)
                await uow.desk.audit(actor_id=501 + n % 2, key=case_no, action="take", allowed=True, at=at, detail="")
                await uow.desk.audit(actor_id=501 + n % 2, key=case_no, action="approve", allowed=True, at=at,
                                     detail="")
            else:
                await uow.desk.open(DeskItem(key=case_no, chat_id=424242, user_id=424242, opened_at=at,
                                             case_no=case_no))
                await uow.desk.take(case_no, 502, at=at)
            await uow.commit()
        if n <= 4:
            async with database.uow() as uow:
                await settle(uow, workflow, case_no, succeeded=True, actor="platform", at=at + timedelta(hours=2))
                await uow.commit()
        if n <= 2:
            async with database.uow() as uow:
                await uow.cases.rate(case_no, 3 + n, None)
                await uow.commit()
    await TimerSweeper(database.uow, workflow).run_once(now)  # missed review dates are found


@pytest.fixture
def driver() -> Iterator[Any]:
    yield from headless_chromium("1280,1180")  # tall enough for the five charts in one screenshot


@pytest.fixture
async def dashboard_url(tmp_path: Path) -> AsyncIterator[str]:
    """A running bot with the dashboard's password set and cases on its database; yields /dashboard's URL."""
    config = make_config(tmp_path)
    config = config.model_copy(update={"dashboard": config.dashboard.model_copy(update={"password": PASSWORD}),
                                       "desk": config.desk.model_copy(update={"agents": (501, 502)})})
    async with Emulator(host="127.0.0.1", port=0) as emulator, \
            running_bot(config, TOKEN, emulator.base_url) as running:
        await seed_cases(running.database, running.service.workflow, utcnow())
        stop = asyncio.Event()
        task = asyncio.create_task(serve(running, config, stop))
        for _ in range(200):
            if running.web_url:
                break
            await asyncio.sleep(0.05)
        try:
            yield f"{running.web_url}/dashboard"
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_a_supervisor_signs_in_with_the_password_and_sees_five_charts_drawn(
        driver: Any, dashboard_url: str, tmp_path: Path) -> None:
    def in_browser() -> dict[str, int]:
        d = driver
        d.get(f"{dashboard_url}?lang=en")
        d.find_element("id", "password").send_keys(PASSWORD)
        d.find_element("id", "sign-in").click()
        wait_for(d, lambda d: d.execute_script("return document.body.dataset.drawn") == "5",
                 "the five charts were not drawn")
        coloured = {chart: int(d.execute_script(COLOURED_PIXELS, chart)) for chart in CHARTS}
        d.save_screenshot(str(tmp_path / "dashboard.png"))
        return coloured

    # Selenium blocks: it runs in a thread so that this loop keeps serving the page it asks for.
    coloured = await asyncio.to_thread(in_browser)
    assert all(count > 100 for count in coloured.values()), coloured
    if os.environ.get("REFUNDBOT_UPDATE_SCREENSHOT") == "1":  # refresh the README's picture on purpose only
        shutil.copyfile(tmp_path / "dashboard.png", Path(__file__).resolve().parents[2] / "docs" / "dashboard.png")


async def test_the_dashboard_refuses_a_wrong_password_in_the_page(driver: Any, dashboard_url: str) -> None:
    def in_browser() -> str:
        d = driver
        d.get(f"{dashboard_url}?lang=zh_CN")
        d.find_element("id", "password").send_keys("guess")
        d.find_element("id", "sign-in").click()
        return str(wait_for(d, lambda d: d.find_element("css selector", ".error").text, "no error shown"))

    assert await asyncio.to_thread(in_browser) == "密码不正确，请重新输入。"
