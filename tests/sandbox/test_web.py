"""The web page in headless Chromium: a customer and an agent act in the page, a fake bot (plain Bot API
calls, the emulator takes any token) answers, and the page follows live. Screenshots of both panes go to
the test's tmp_path.

Needs Debian's chromium and chromium-driver; skipped with the reason when they are missing, unless
REFUNDBOT_REQUIRE_BROWSER=1 (CI), where that is a failure."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import Emulator, EmulatorState

from .conftest import png_bytes

CUSTOMER = 10001
AGENT = 501
TOPIC = "R20261124-0001 · 小明"
WAIT = 8.0


def browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def need_browser() -> tuple[str, str]:
    found = browser_paths()
    reason = ("no headless browser: install Debian's chromium and chromium-driver "
              "(apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        found, reason = None, "selenium is not installed: pip install -e '.[test]'"
    if found is None:
        if os.environ.get("REFUNDBOT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (REFUNDBOT_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return found


class FakeBot:
    """A bot as plain Bot API calls: getUpdates with an offset, sends, edits, answers."""

    def __init__(self, emu: Emulator) -> None:
        self.api = emu.api_url()
        self.offset: int | None = None

    def call(self, method: str, **params: Any) -> Any:
        req = urllib.request.Request(f"{self.api}/{method}", data=json.dumps(params).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.load(resp)
        assert body["ok"], body
        return body["result"]

    def next_update(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        """The next update of this kind (others are skipped); fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for update in self.call("getUpdates", offset=self.offset, timeout=1):
                self.offset = update["update_id"] + 1
                if kind in update:
                    return dict(update[kind])
        raise AssertionError(f"no {kind} update within {timeout}s")


def control(emu: Emulator, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(f"{emu.control_url}/{path}", method="GET" if body is None else "POST",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


@pytest.fixture
def world() -> Iterator[tuple[Emulator, FakeBot, int, int, list[str]]]:
    """An emulator with a customer, an agent, the agents' forum and one case topic; the reset hook logs."""
    resets: list[str] = []
    emu = Emulator(port=0, state=EmulatorState(update_id_base=700_000),
                   on_reset=lambda: resets.append("demo data restored"))
    emu.start_in_thread()
    try:
        control(emu, "users", {"user_id": CUSTOMER, "first_name": "小明", "language_code": "zh-hans"})
        control(emu, "users", {"user_id": AGENT, "first_name": "Agent Li", "language_code": "en", "started": False})
        group = control(emu, "groups", {"title": "退款客服 Refund desk", "creator_id": AGENT})["chat"]["id"]
        bot = FakeBot(emu)
        topic = bot.call("createForumTopic", chat_id=group, name=TOPIC)["message_thread_id"]
        bot.call("sendMessage", chat_id=group, message_thread_id=topic,
                 text="新案件 R20261124-0001\n订单 KM20261101000001 · ¥100 · 卡密无效",
                 reply_markup={"inline_keyboard": [[{"text": "接手 Take over", "callback_data": "take:1"}]]})
        yield emu, bot, group, topic, resets
    finally:
        emu.stop()


@pytest.fixture
def driver() -> Iterator[Any]:
    chromium, chromedriver = need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,860", "--lang=en-US"):
        options.add_argument(arg)
    # Both paths given: Selenium Manager has nothing to look up or download.
    d = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield d
    finally:
        d.quit()


def wait_for(d: Any, what: Callable[[Any], Any], message: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(what, message)


def by_css(d: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(d.find_elements(By.CSS_SELECTOR, css))


def button(d: Any, scope: str, text: str) -> Any:
    found = [b for b in by_css(d, f"{scope} .inline-btn") if b.text == text]
    return found[0] if found else False


def clear_toasts(d: Any) -> None:
    """Toasts float over the panes: out of the way of a click or a screenshot."""
    d.execute_script("document.querySelectorAll('#toasts .toast').forEach((t) => t.remove())")


def test_customer_and_agent_act_in_the_page_and_the_page_follows_the_bot_live(
        driver: Any, world: tuple[Emulator, FakeBot, int, int, list[str]], tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    emu, bot, group, topic, resets = world
    d = driver
    d.get(f"{emu.web_url}?user={CUSTOMER}")
    wait_for(d, lambda d: d.find_element("id", "live").get_attribute("data-state") == "live", "no live feed")
    assert d.find_element("id", "customer-select").get_attribute("value") == str(CUSTOMER)

    # The customer types and presses Enter: the bot gets the message.
    box = d.find_element("id", "customer-input")
    box.send_keys("你好，我要退款 KM20261101000001", Keys.ENTER)
    message = bot.next_update("message")
    assert message["from"]["id"] == CUSTOMER and message["text"] == "你好，我要退款 KM20261101000001"
    wait_for(d, lambda d: any("我要退款" in m.text for m in by_css(d, "#customer-messages .msg.out")),
             "the customer's message is not shown")
    assert box.get_attribute("value") == ""

    # The bot answers with a button; it shows up without a reload and the customer presses it.
    card = bot.call("sendMessage", chat_id=CUSTOMER, text="请选择退款原因：",
                    reply_markup={"inline_keyboard": [[{"text": "卡密无效", "callback_data": "reason:invalid"}]]})
    wait_for(d, lambda d: button(d, "#customer-messages", "卡密无效"), "the bot's button did not appear").click()
    query = bot.next_update("callback_query")
    assert query["from"]["id"] == CUSTOMER and query["data"] == "reason:invalid"
    assert query["message"]["message_id"] == card["message_id"]
    bot.call("answerCallbackQuery", callback_query_id=query["id"], text="已收到")
    wait_for(d, lambda d: any("已收到" in t.text for t in by_css(d, "#toasts .toast")), "no toast for the answer")

    # The bot edits its message: the same bubble changes in place, the keyboard goes.
    bot.call("editMessageText", chat_id=CUSTOMER, message_id=card["message_id"], text="已选择：卡密无效")
    selector = f'#customer-messages .msg[data-message-id="{card["message_id"]}"]'
    wait_for(d, lambda d: any(e.text.startswith("已选择：卡密无效") for e in by_css(d, selector)), "no live edit")
    (edited,) = by_css(d, selector)
    assert edited.get_attribute("data-edits") == "1" and "edited" in edited.text
    assert not by_css(d, selector + " .inline-btn")

    # A picture from the file input reaches the bot as a photo.
    picture = tmp_path / "screenshot-of-order.png"
    picture.write_bytes(png_bytes(320, 200, "navy"))
    d.find_element("css selector", "#customer-composer input[type=file]").send_keys(str(picture))
    photo = bot.next_update("message")
    assert photo["from"]["id"] == CUSTOMER and photo["photo"][-1]["width"] == 320
    wait_for(d, lambda d: by_css(d, "#customer-messages .msg.out img.photo"), "the photo is not shown")

    # The agents' pane: General and the case topic, the case card with its button.
    topics = [t.text for t in by_css(d, "#topic-list .topic .name")]
    assert topics[0] == "General" and TOPIC in topics
    current = by_css(d, '#topic-list .topic[aria-current="true"]')
    assert current and current[0].get_attribute("data-thread") == str(topic)
    assert d.find_element("id", "agent-select").get_attribute("value") == str(AGENT)
    wait_for(d, lambda d: button(d, "#group-messages", "接手 Take over"), "no case card").click()
    take = bot.next_update("callback_query")
    assert take["from"]["id"] == AGENT and take["data"] == "take:1"
    assert take["message"]["chat"]["id"] == group
    bot.call("answerCallbackQuery", callback_query_id=take["id"])

    # The agent writes in the topic.
    d.find_element("id", "group-input").send_keys("我来处理这个案件", Keys.ENTER)
    said = bot.next_update("message")
    assert said["from"]["id"] == AGENT and said["chat"]["id"] == group
    assert said["message_thread_id"] == topic and said.get("is_topic_message") is True
    bot.call("sendMessage", chat_id=group, message_thread_id=topic, text="Agent Li took the case over")
    wait_for(d, lambda d: any("took the case over" in m.text for m in by_css(d, "#group-messages .msg.in")),
             "the bot's topic message is not shown")
    assert any("我来处理" in m.text for m in by_css(d, "#group-messages .msg.out"))

    # The customer's language toggle sets their Telegram language.
    clear_toasts(d)
    d.find_element("css selector", '#lang-toggle button[data-lang="en"]').click()
    wait_for(d, lambda d: d.find_element("css selector", '#lang-toggle button[data-lang="en"]')
             .get_attribute("aria-pressed") == "true", "the language toggle did not switch")
    users = {u["id"]: u for u in control(emu, "directory")["users"]}
    assert users[CUSTOMER]["language_code"] == "en"

    clear_toasts(d)
    d.find_element("id", "customer-pane").screenshot(str(tmp_path / "customer-pane.png"))
    d.find_element("id", "group-pane").screenshot(str(tmp_path / "agents-pane.png"))
    d.save_screenshot(str(tmp_path / "page.png"))

    # At phone width the panes stack.
    d.set_window_size(390, 844)
    wait_for(d, lambda d: d.find_element("id", "group-pane").rect["y"]
             >= d.find_element("id", "customer-pane").rect["y"] + d.find_element("id", "customer-pane").rect["height"],
             "the panes do not stack at phone width")
    d.save_screenshot(str(tmp_path / "phone.png"))

    # Reset (asks once more): chats cleared, the owner's hook ran, the page follows.
    d.set_window_size(1280, 860)
    reset = d.find_element("id", "reset")
    reset.click()
    reset.click()
    wait_for(d, lambda d: by_css(d, "#customer-messages .empty"), "the customer's chat was not cleared")
    assert resets == ["demo data restored"]
    assert control(emu, f"chat?chat_id={CUSTOMER}") == []
    for name in ("customer-pane.png", "agents-pane.png", "page.png", "phone.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
