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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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

    def upload(self, method: str, files: dict[str, tuple[str, bytes]], **params: Any) -> Any:
        """A multipart call: `files` maps a part name to (filename, bytes); other params go as JSON strings."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in params.items():
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{text}\r\n'.encode())
        for name, (filename, data) in files.items():
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n")
            parts.append(head.encode() + data + b"\r\n")
        req = urllib.request.Request(f"{self.api}/{method}", data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
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


CARD = "新案件 R20261124-0001\n订单 KM20261101000001 · ¥100 · 卡密无效"
World = tuple[Emulator, FakeBot, int, int, list[str]]


@pytest.fixture
def world() -> Iterator[World]:
    """An emulator with a customer, an agent, the agents' forum and one case topic; the reset hook logs."""
    with open_world() as w:
        yield w


@contextmanager
def open_world(timezone: str | None = None) -> Iterator[World]:
    resets: list[str] = []
    emu = Emulator(port=0, state=EmulatorState(update_id_base=700_000),
                   on_reset=lambda: resets.append("demo data restored"), timezone=timezone)
    emu.start_in_thread()
    try:
        control(emu, "users", {"user_id": CUSTOMER, "first_name": "小明", "language_code": "zh-hans"})
        control(emu, "users", {"user_id": AGENT, "first_name": "Agent Li", "language_code": "en", "started": False})
        group = control(emu, "groups", {"title": "退款客服 Refund desk", "creator_id": AGENT})["chat"]["id"]
        bot = FakeBot(emu)
        topic = bot.call("createForumTopic", chat_id=group, name=TOPIC)["message_thread_id"]
        bot.call("sendMessage", chat_id=group, message_thread_id=topic, text=CARD,
                 reply_markup={"inline_keyboard": [[{"text": "接手 Take over", "callback_data": "take:1"}]]})
        yield emu, bot, group, topic, resets
    finally:
        emu.stop()


def headless_chromium(window_size: str = "1280,860") -> Iterator[Any]:
    """Debian's Chromium, headless, through its chromedriver (skipped or failed by need_browser)."""
    chromium, chromedriver = need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window_size}", "--lang=en-US"):
        options.add_argument(arg)
    # Both paths given: Selenium Manager has nothing to look up or download.
    d = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture
def driver() -> Iterator[Any]:
    yield from headless_chromium()


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


def in_view(d: Any, element: Any) -> bool:
    """The element is wholly inside its scrolling chat and inside the window: the viewer sees it."""
    return bool(d.execute_script("""
        const el = arguments[0], box = el.closest('.messages').getBoundingClientRect(), r = el.getBoundingClientRect();
        return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1
            && r.top >= 0 && r.bottom <= window.innerHeight;""", element))


def open_page(d: Any, emu: Emulator, **params: Any) -> None:
    """The page with these query parameters (user, lang, topic...), once its live feed is up."""
    d.get(emu.web_url + "?" + "&".join(f"{k}={v}" for k, v in params.items()))
    wait_for(d, lambda d: d.find_element("id", "live").get_attribute("data-state") == "live", "no live feed")


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


# ---- the page's own language --------------------------------------------------------------------

def labels(d: Any) -> dict[str, str]:
    """What the page itself says (not the chats): headings, buttons, placeholders, empty states."""
    return d.execute_script("""
        const $ = (s) => document.querySelector(s);
        return {title: $('#customer-title').textContent, group: $('#group-title').textContent,
                reset: $('#reset').textContent, start: $('#customer-start').textContent,
                live: $('#live').textContent, placeholder: $('#customer-input').placeholder,
                send: $('#customer-composer .send').getAttribute('aria-label'),
                empty: $('#customer-messages .empty').textContent, sub: $('#topic-sub').textContent,
                lang: document.documentElement.lang};""")


def test_the_language_toggle_switches_the_pages_labels_between_english_and_chinese(
        driver: Any, world: World) -> None:
    emu, *_ = world
    d = driver
    open_page(d, emu, user=CUSTOMER, lang="en")
    english = {"title": "Customer", "group": "Agents' group", "reset": "Reset demo", "start": "START", "live": "live",
               "placeholder": "Message", "send": "Send", "empty": "No messages yet. Press START or say /start.",
               "sub": "退款客服 Refund desk · 2 members", "lang": "en"}
    wait_for(d, lambda d: labels(d) == english, f"not the English page: {labels(d)}")

    d.find_element("css selector", '#lang-toggle button[data-lang="zh-hans"]').click()
    chinese = {"title": "顾客", "group": "客服群", "reset": "重置演示", "start": "开始", "live": "实时",
               "placeholder": "输入消息", "send": "发送", "empty": "还没有消息。点击“开始”或发送 /start。",
               "sub": "退款客服 Refund desk · 2 位成员", "lang": "zh-Hans"}
    wait_for(d, lambda d: labels(d) == chinese, f"the page did not switch to Chinese: {labels(d)}")
    wait_for(d, lambda d: any("Telegram 语言已设为中文" in t.text for t in by_css(d, "#toasts .toast")),
             "no Chinese toast for the switch")
    assert d.find_element("css selector", '#lang-toggle button[data-lang="zh-hans"]').get_attribute(
        "aria-pressed") == "true"

    d.find_element("css selector", '#lang-toggle button[data-lang="en"]').click()
    wait_for(d, lambda d: labels(d) == english, f"the page did not switch back to English: {labels(d)}")


def test_a_bots_edited_message_says_edited_in_the_pages_language(driver: Any, world: World) -> None:
    emu, bot, *_ = world
    d = driver
    sent = bot.call("sendMessage", chat_id=CUSTOMER, text="请选择退款原因")
    bot.call("editMessageText", chat_id=CUSTOMER, message_id=sent["message_id"], text="已选择：卡密无效")
    open_page(d, emu, user=CUSTOMER, lang="zh")
    meta = f'#customer-messages .msg[data-message-id="{sent["message_id"]}"] .meta'
    wait_for(d, lambda d: any(m.text.startswith("已编辑 ") for m in by_css(d, meta)), "not 已编辑 in Chinese")
    d.find_element("css selector", '#lang-toggle button[data-lang="en"]').click()
    wait_for(d, lambda d: any(m.text.startswith("edited ") for m in by_css(d, meta)), "not 'edited' in English")


# ---- times in the platform's zone -----------------------------------------------------------------

def far_zone() -> str:
    """A zone whose clock differs from this machine's now (the browser's own zone is the machine's)."""
    here = datetime.now().astimezone().utcoffset()
    return next(z for z in ("America/Los_Angeles", "Asia/Shanghai")
                if datetime.now(ZoneInfo(z)).utcoffset() != here)


def test_a_messages_time_shows_in_the_configured_zone_not_the_browsers(driver: Any) -> None:
    zone = far_zone()
    with open_world(timezone=zone) as (emu, bot, _group, _topic, _resets):
        sent = bot.call("sendMessage", chat_id=CUSTOMER, text="您的退款单已提交")
        expected = datetime.fromtimestamp(sent["date"], ZoneInfo(zone)).strftime("%H:%M")
        browser = datetime.fromtimestamp(sent["date"]).strftime("%H:%M")
        assert expected != browser  # else this test could not tell the zones apart
        d = driver
        open_page(d, emu, user=CUSTOMER, lang="en")
        meta = f'#customer-messages .msg[data-message-id="{sent["message_id"]}"] .meta'
        wait_for(d, lambda d: by_css(d, meta), "the bot's message is not shown")
        (shown,) = by_css(d, meta)
        assert shown.text == expected
        assert control(emu, "directory")["timezone"] == zone


def test_the_emulator_refuses_a_time_zone_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        Emulator(port=0, timezone="Mars/Olympus")


# ---- a case's topic opens at its card ---------------------------------------------------------------

def send_album(bot: FakeBot, chat_id: int, kind: str, sizes: list[tuple[int, int]], **where: Any) -> list[Any]:
    """sendMediaGroup of real PNGs uploaded as `kind` (photo or document), a caption on the first."""
    files = {f"p{n}": (f"evidence-{n}.png", png_bytes(w, h, ("navy", "teal")[n % 2])) for n, (w, h) in enumerate(sizes)}
    media = [{"type": kind, "media": f"attach://p{n}", **({"caption": "证据 2 张"} if n == 0 else {})}
             for n in range(len(sizes))]
    return list(bot.upload("sendMediaGroup", files, chat_id=chat_id, media=media, **where))


def fill_topic(bot: FakeBot, group: int, topic: int) -> None:
    """More than a screen under the card: the evidence album and the case's history."""
    send_album(bot, group, "photo", [(300, 900), (300, 900)], message_thread_id=topic)
    for n in range(8):
        bot.call("sendMessage", chat_id=group, message_thread_id=topic, text=f"处理记录 {n + 1}")


def card_element(d: Any) -> Any:
    found = [m for m in by_css(d, "#group-messages .msg.in") if "新案件 R20261124-0001" in m.text]
    return found[0] if found else False


def test_opening_a_case_topic_shows_its_card_not_the_bottom(driver: Any, world: World) -> None:
    emu, bot, group, topic, _ = world
    fill_topic(bot, group, topic)
    d = driver
    open_page(d, emu, user=CUSTOMER, lang="en", topic=1)  # General first
    wait_for(d, lambda d: d.find_element("id", "topic-title").text == "General", "General is not shown")
    next(t for t in by_css(d, "#topic-list .topic") if t.get_attribute("data-thread") == str(topic)).click()
    card = wait_for(d, card_element, "the case card is not shown")
    wait_for(d, lambda d: in_view(d, card), "the case card is not in view after opening the topic")
    last = next(m for m in by_css(d, "#group-messages .msg") if "处理记录 8" in m.text)
    assert not in_view(d, last)  # the topic is longer than the screen: the card, not the bottom


def test_an_album_arriving_after_the_topic_opened_keeps_the_card_in_view(driver: Any, world: World) -> None:
    emu, bot, group, topic, _ = world
    d = driver
    open_page(d, emu, user=CUSTOMER, lang="en", topic=topic)
    card = wait_for(d, card_element, "the case card is not shown")
    fill_topic(bot, group, topic)
    wait_for(d, lambda d: any("处理记录 8" in m.text for m in by_css(d, "#group-messages .msg")),
             "the topic's later messages are not shown")
    assert in_view(d, card)


# ---- albums keep their pictures ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["photo", "document"])
def test_an_album_of_two_pngs_shows_two_picture_previews(driver: Any, world: World, kind: str) -> None:
    emu, bot, *_ = world
    sent = send_album(bot, CUSTOMER, kind, [(320, 200), (200, 320)])
    d = driver
    open_page(d, emu, user=CUSTOMER, lang="en")
    ids = [m["message_id"] for m in sent]

    def previews(d: Any) -> list[tuple[int, int]] | bool:
        sizes = [d.execute_script("const i = arguments[0]; return i.complete ? [i.naturalWidth, i.naturalHeight] : null;",
                                  img)
                 for i in ids for img in by_css(d, f'#customer-messages .msg[data-message-id="{i}"] img.photo')]
        return sizes if len(sizes) == 2 and all(sizes) else False

    assert sorted(map(tuple, wait_for(d, previews, "the album's pictures are not shown"))) == [(200, 320), (320, 200)]
    album = by_css(d, "#customer-messages .msg.album")
    assert [m.get_attribute("data-message-id") for m in album] == [str(i) for i in ids]
    assert "album-first" in album[0].get_attribute("class") and "album-last" in album[1].get_attribute("class")
