"""The whole sandbox story in headless Chromium, through the web page only: the real bot (aiogram adapter,
relay, desk, SQLite) on the emulator, started as `refundbot sandbox` starts it (stage_sandbox, running_bot,
seed_demo_orders, serve). The customer 小明 files a card-code refund with a screenshot, the agent 客服小李
takes it over in the agents' forum, they exchange a message, the agent approves, finance confirms the
payout (no page for that: dialogs.refunds.mark_refunded, as `refundbot cases mark-refunded` does) and the
customer's status card turns to refunded in place. Screenshots of both panes go to the test's tmp_path;
the side-by-side one is copied to docs/sandbox.png (and the page in English to docs/sandbox-en.png) for
the README when REFUNDBOT_UPDATE_SCREENSHOT=1.

Needs Debian's chromium and chromium-driver; skipped with the reason when they are missing, unless
REFUNDBOT_REQUIRE_BROWSER=1 (CI), where that is a failure (see tests/sandbox/test_web.py)."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.app import SANDBOX_TOKEN, Running, running_bot, seed_demo_orders, serve, stage_sandbox
from bot.config import AppConfig
from bot.demo import AGENTS, CUSTOMERS, DESK_TITLE
from dialogs.refunds import mark_refunded
from dialogs.texts import Texts
from sandbox.server import Emulator
from tests.e2e.conftest import png_bytes
from tests.sandbox import test_web as web
from tests.sandbox.test_web import by_css, clear_toasts, in_view, wait_for

pytestmark = pytest.mark.slow

ZH = Texts("zh_CN")
XIAOMING = CUSTOMERS[0]
AGENT = next(a for a in AGENTS if not a.supervisor)
ORDER = "KM20261101000001"
CASE_NO = re.compile(r"R\d{8}-\d{4}")
WAIT = 15.0  # the relay keeps Telegram's limits (1 message a second per chat): the bot's news takes a moment
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "sandbox.png"  # the page in Chinese
README_SHOT_EN = README_SHOT.with_name("sandbox-en.png")  # the same page, its labels in English
T = TypeVar("T")

driver = web.driver  # the headless Chromium fixture of the page's own test


@dataclass
class Sandbox:
    """The running sandbox, on its own thread and event loop (Selenium blocks; the bot must not)."""

    web_url: str
    running: Running
    config: AppConfig  # as staged: the demo group is the desk
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


@pytest.fixture
def sandbox(tmp_path: Path, framework: str) -> Iterator[Sandbox]:
    """What `refundbot sandbox` runs (bot.app.run without a token), on a temporary SQLite database, with
    the emulator and the platform API on free ports."""
    config = AppConfig.model_validate({
        "telegram": {"poll_timeout": 1, "listen_port": 0, "framework": framework},
        "database": {"url": f"sqlite:///{tmp_path}/refundbot.db"},
        "storage": {"evidence_dir": str(tmp_path / "evidence")},
        "sandbox": {"port": 0},
    })
    assert not config.telegram.token  # no token: the sandbox
    started: queue.Queue[Sandbox | BaseException] = queue.Queue()
    stop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        stop_box.append((asyncio.get_running_loop(), stop))
        try:
            async with Emulator(host=config.sandbox.host, port=config.sandbox.port,
                                timezone=config.i18n.timezone) as emulator:
                staged = await stage_sandbox(emulator.base_url, config)
                async with running_bot(staged, SANDBOX_TOKEN, emulator.base_url) as running:
                    await seed_demo_orders(running.database)
                    started.put(Sandbox(emulator.web_url, running, staged, asyncio.get_running_loop()))
                    await serve(running, staged, stop)
        except BaseException as exc:
            started.put(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="sandbox", daemon=True)
    thread.start()
    first = started.get(timeout=60)
    if isinstance(first, BaseException):
        raise first
    try:
        yield first
    finally:
        loop, stop = stop_box[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the sandbox did not stop within 30 s"


def texts_of(d: Any, css: str) -> list[str]:
    return [e.text for e in by_css(d, css)]


def seen(d: Any, css: str, text: str) -> bool:
    return any(text in t for t in texts_of(d, css))


def lead(key: str, **known: str) -> str:
    """The text of `key` up to its first placeholder not in `known`: what shows whatever fills the rest."""
    template = ZH(key)  # without arguments: the template itself
    for name, value in known.items():
        template = template.replace("{" + name + "}", value)
    return template.split("{")[0].strip()


def click_when(d: Any, find: Callable[[Any], Any], message: str) -> None:
    """Click what `find` finds once it is there. The page redraws what changed (a bubble on an edit, the
    topic list on every event), so a find and its click go together and are tried again on a redraw."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    def found_and_clicked(d: Any) -> bool:
        clear_toasts(d)
        target = find(d)
        if not target:
            return False
        try:
            target.click()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return False
        return True

    wait_for(d, found_and_clicked, message, WAIT)


def press(d: Any, scope: str, label: str, what: str) -> None:
    """Press the bot's inline button with this label, on the latest message that has one."""
    click_when(d, lambda d: ([b for b in by_css(d, f"{scope} .inline-btn") if b.text == label] or [None])[-1],
               f"no {label!r} button: {what}")


def status_card(d: Any, case_no: str) -> tuple[str, str] | None:
    """The customer's status card of the case (one bubble, edited in place): its message id and text."""
    cards = [(m.get_attribute("data-message-id"), m.text) for m in by_css(d, "#customer-messages .msg.in")]
    mine = [(i, t) for i, t in cards if t.startswith(ZH("card.title", case_no=case_no))]
    return mine[-1] if mine else None


def card_says(d: Any, case_no: str, status_key: str) -> tuple[str, str] | None:
    card = status_card(d, case_no)
    return card if card and ZH("card.status", status=ZH(status_key)) in card[1] else None


def test_a_customer_files_a_card_refund_an_agent_takes_it_over_approves_and_it_is_refunded(
        driver: Any, sandbox: Sandbox, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    d = driver
    d.set_window_size(1400, 1000)
    d.get(f"{sandbox.web_url}?user={XIAOMING.user_id}&lang=zh")
    wait_for(d, lambda d: d.find_element("id", "live").get_attribute("data-state") == "live", "no live feed")
    assert d.find_element("id", "customer-select").get_attribute("value") == str(XIAOMING.user_id)
    assert Select(d.find_element("id", "group-select")).first_selected_option.text == DESK_TITLE
    Select(d.find_element("id", "agent-select")).select_by_value(str(AGENT.user_id))
    wait_for(d, lambda d: d.find_element("id", "agent-select").get_attribute("value") == str(AGENT.user_id),
             "the agent was not picked")

    # 1. The customer files a card-code refund: the order number, the reason, a description, a screenshot.
    customer, customer_in, customer_out = "#customer-messages", "#customer-messages .msg.in", "#customer-messages .msg.out"
    box = d.find_element("id", "customer-input")
    box.send_keys(ORDER, Keys.ENTER)
    wait_for(d, lambda d: seen(d, customer_out, ORDER), "the order number is not shown")
    press(d, customer, ZH("reason.card_invalid"), "the bot did not ask for the reason")
    press(d, customer, ZH("btn_continue"), "the bot did not offer to continue")
    wait_for(d, lambda d: seen(d, customer_in, lead("ask_description")),
             "the bot did not ask for a description", WAIT)
    description = "输入卡密时游戏提示卡号无效，错误码1002"
    box.send_keys(description, Keys.ENTER)
    wait_for(d, lambda d: seen(d, customer_out, description), "the description is not shown")
    wait_for(d, lambda d: seen(d, customer_in, lead("ask_evidence_required")),
             "the bot did not ask for a screenshot", WAIT)
    screenshot = tmp_path / "卡密截图.png"
    screenshot.write_bytes(png_bytes("navy", (480, 300)))
    d.find_element("css selector", "#customer-composer input[type=file]").send_keys(str(screenshot))
    wait_for(d, lambda d: by_css(d, customer_out + " img.photo"), "the screenshot is not shown")
    wait_for(d, lambda d: seen(d, customer_in, lead("evidence_received", count="1")),
             "the bot did not take the screenshot", WAIT)
    press(d, customer, ZH("btn_done"), "the bot did not offer to finish the evidence")
    wait_for(d, lambda d: seen(d, customer_in, lead("summary", order_no=ORDER)), "no summary to check", WAIT)
    press(d, customer, ZH("btn_submit"), "the bot did not offer to submit")
    found = wait_for(d, lambda d: next((m for t in texts_of(d, customer_in) if (m := CASE_NO.search(t))), None),
                     "no case number after submitting", WAIT)
    case_no = found.group(0)
    card_id, _ = wait_for(d, lambda d: card_says(d, case_no, "status.submitted"), "no status card (submitted)", WAIT)

    # 2. The agent sees the case's topic appear, opens it, sees the case card and takes the case over.
    def case_topic(d: Any) -> Any:
        return next((t for t in by_css(d, "#topic-list .topic")
                     if t.find_element("css selector", ".name").text.startswith(case_no)), None)
    click_when(d, case_topic, "the case's topic did not appear in the agents' group")
    group = "#group-messages"
    wait_for(d, lambda d: d.find_element("id", "topic-title").text.startswith(case_no), "the topic did not open")
    wait_for(d, lambda d: seen(d, group + " .msg.in", lead("dk.card.title", case_no=case_no)),
             "no case card in the topic", WAIT)
    card = next(m for m in by_css(d, group + " .msg.in") if lead("dk.card.title", case_no=case_no) in m.text)
    assert in_view(d, card)  # the topic opens at its card, not at the evidence under it
    press(d, group, ZH("dk.btn.take"), "the case card has no take-over button")
    wait_for(d, lambda d: seen(d, "#toasts .toast", ZH("desk.you_took", case=case_no)), "no toast for the take-over")
    alias = sandbox.config.desk.alias(AGENT.user_id, ZH.locale)  # what the customer calls the agent
    took = ZH("desk.took", agent=f"{alias} ({AGENT.first_name})")
    wait_for(d, lambda d: seen(d, group + " .msg.in", took), "the topic does not say who took it", WAIT)

    # 3. The customer is told a person joined; they exchange one message each.
    wait_for(d, lambda d: seen(d, customer_in, ZH("desk.customer_joined", alias=alias)),
             "the customer is not told a person joined", WAIT)
    hello = "您好，我是客服小李，已经看到您的截图，正在核实卡密。"
    d.find_element("id", "group-input").send_keys(hello, Keys.ENTER)
    wait_for(d, lambda d: seen(d, group + " .msg.out", hello), "the agent's message is not shown in the topic")
    wait_for(d, lambda d: seen(d, customer_in, hello), "the agent's message did not reach the customer", WAIT)
    thanks = "好的，谢谢！卡密是今天下午买的。"
    box.send_keys(thanks, Keys.ENTER)
    wait_for(d, lambda d: seen(d, customer_out, thanks), "the customer's reply is not shown")
    wait_for(d, lambda d: seen(d, group + " .msg.in", thanks), "the customer's reply did not reach the topic", WAIT)

    # 4. The agent approves (¥100, under [desk] confirm_above: no second person); the card says refunding.
    assert Decimal(100) <= sandbox.config.desk.confirm_above
    press(d, group, ZH("dk.btn.approve"), "the case card has no approve button")
    refunding = wait_for(d, lambda d: card_says(d, case_no, "status.refunding"),
                         "the customer's status card did not reach refunding", WAIT)
    assert refunding[0] == card_id  # the same bubble, edited
    wait_for(d, lambda d: seen(d, customer_in, ZH("news.approved", case_no=case_no)),
             "the customer is not told the case was approved", WAIT)

    # Finance pays the money back and confirms (no page for that): the card turns to refunded in place.
    done = sandbox.call(mark_refunded(sandbox.running.database.uow, sandbox.running.service.workflow, case_no,
                                      actor="finance", note="支付宝退款流水 2026112412345"))
    assert done.changed
    refunded = wait_for(d, lambda d: card_says(d, case_no, "status.refunded"),
                        "the customer's status card did not reach refunded", WAIT)
    assert refunded[0] == card_id and "已编辑" in refunded[1]  # the page's own label, in Chinese
    assert len([t for t in texts_of(d, customer_in) if t.startswith(ZH("card.title", case_no=case_no))]) == 1
    wait_for(d, lambda d: seen(d, customer_in, lead("news.refunded", case_no=case_no)),
             "the customer is not told the money is back", WAIT)

    # 5. Screenshots of both panes and of the page, the card in view.
    clear_toasts(d)
    d.execute_script("document.querySelector(`#customer-messages .msg[data-message-id='${arguments[0]}']`)"
                     ".scrollIntoView({block: 'center'})", card_id)
    d.find_element("id", "customer-pane").screenshot(str(tmp_path / "customer-pane.png"))
    d.find_element("id", "group-pane").screenshot(str(tmp_path / "agents-pane.png"))
    d.save_screenshot(str(tmp_path / "sandbox.png"))

    # The same page with its labels in English (the chats stay as written).
    d.find_element("css selector", '#lang-toggle button[data-lang="en"]').click()
    wait_for(d, lambda d: d.find_element("id", "customer-title").text == "Customer", "the page is not in English")
    clear_toasts(d)
    d.execute_script("document.querySelector(`#customer-messages .msg[data-message-id='${arguments[0]}']`)"
                     ".scrollIntoView({block: 'center'})", card_id)
    d.save_screenshot(str(tmp_path / "sandbox-en.png"))
    for name in ("customer-pane.png", "agents-pane.png", "sandbox.png", "sandbox-en.png"):
        assert (tmp_path / name).stat().st_size > 20_000, name
    if os.environ.get("REFUNDBOT_UPDATE_SCREENSHOT") == "1":  # refresh the README's pictures on purpose only
        shutil.copyfile(tmp_path / "sandbox.png", README_SHOT)
        shutil.copyfile(tmp_path / "sandbox-en.png", README_SHOT_EN)
