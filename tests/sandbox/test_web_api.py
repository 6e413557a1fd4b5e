"""The control API behind the web page: the page and its assets, the directory, the language switch, the
demo reset with the owner's hook, the window of a chat, and the live feed of server-sent events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiogram import Bot

from sandbox import BOT_USER_ID, ControlAPIError, Emulator, EmulatorClient, EmulatorState

from .conftest import OTHER_USER, UPDATE_BASE, USER, png_bytes

AGENT = 3001


async def make_forum(tg: EmulatorClient) -> int:
    await tg.create_user(AGENT, "Li", "Wei", started=False)
    created = await tg.create_group("退款客服", creator_id=AGENT)
    return int(created["chat"]["id"])


async def test_the_page_is_served_at_the_root_with_its_assets(emu: Emulator):
    async with aiohttp.ClientSession() as http:
        async with http.get(emu.web_url) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
        assert '<script src="/web/app.js"' in page and "/web/style.css" in page
        assert "http" not in page.replace('http-equiv', "")  # nothing loaded from elsewhere
        async with http.get(f"{emu.base_url}/web", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/web/"
        for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
            async with http.get(f"{emu.base_url}/web/{name}") as resp:
                assert resp.status == 200 and resp.content_type == ctype
                assert resp.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("name", ["__init__.py", "missing.js", "..%2Fserver.py", ".hidden.css"])
async def test_only_the_pages_own_files_are_served(emu: Emulator, name: str):
    async with aiohttp.ClientSession() as http, http.get(f"{emu.base_url}/web/{name}") as resp:
        assert resp.status == 404


async def test_directory_lists_users_groups_members_and_topics_general_first(tg: EmulatorClient, bot: Bot):
    group = await make_forum(tg)
    older = await bot.create_forum_topic(group, "R-0001")
    newer = await bot.create_forum_topic(group, "R-0002")
    await bot.send_message(group, "案件 R-0001", message_thread_id=older.message_thread_id)
    await tg.send_text(AGENT, "hello all", chat_id=group)

    d = await tg.directory()

    assert d["bot"]["id"] == BOT_USER_ID
    users = {u["id"]: u for u in d["users"]}
    assert users[AGENT]["name"] == "Li Wei" and users[AGENT]["groups"] == [group]
    assert users[USER]["groups"] == [] and users[USER]["language_code"] == "zh-hans"
    (g,) = d["groups"]
    assert g["title"] == "退款客服" and g["is_forum"] is True
    assert {m["user_id"]: m["status"] for m in g["members"]} == {AGENT: "creator", BOT_USER_ID: "administrator"}
    names = [t["name"] for t in g["topics"]]
    assert names == ["General", "R-0001", "R-0002"]  # General, then by latest message
    general, first, second = g["topics"]
    assert general["is_general"] and general["message_thread_id"] == 1
    assert general["last"]["text"] == "hello all" and general["messages"] == 1
    assert first["messages"] == 2 and first["last"]["text"] == "案件 R-0001"  # the opening service message too
    assert second["message_thread_id"] == newer.message_thread_id and second["last"]["kind"] == "service"


async def test_language_switch_reaches_the_bot_on_the_next_message(tg: EmulatorClient, bot: Bot):
    answer = await tg.set_language(USER, "en")
    assert answer["user"]["language_code"] == "en"
    await tg.send_text(USER, "/lang")
    (update,) = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.from_user is not None
    assert update.message.from_user.language_code == "en"
    cleared = await tg.set_language(USER, None)
    assert "language_code" not in cleared["user"]


async def test_language_of_an_unknown_user_is_a_404(tg: EmulatorClient):
    with pytest.raises(ControlAPIError) as err:
        await tg.set_language(999, "en")
    assert err.value.status == 404


async def test_demo_reset_clears_chats_keeps_people_and_runs_the_hook(emu: Emulator, tg: EmulatorClient, bot: Bot):
    calls: list[str] = []

    async def restore() -> None:
        await asyncio.sleep(0)
        calls.append("restored")

    emu.on_reset = restore
    group = await make_forum(tg)
    topic = await bot.create_forum_topic(group, "R-0001")
    before = await bot.send_message(USER, "your case")
    await tg.send_photo(USER, png_bytes())

    answer = await tg.demo_reset()

    assert answer["reset"] is True and answer["hook"] is True and calls == ["restored"]
    assert await tg.chat(USER) == [] and await tg.chat(group) == []
    assert await tg.topics(group) == [] and await tg.updates() == []
    d = await tg.directory()
    assert {u["id"] for u in d["users"]} == {USER, OTHER_USER, AGENT}
    assert [t["name"] for t in d["groups"][0]["topics"]] == ["General"]
    after = await bot.send_message(USER, "fresh")
    assert after.message_id > before.message_id  # ids keep counting: nothing old points at something new
    assert topic.message_thread_id not in {t["message_thread_id"] for t in await tg.topics(group)}


async def test_demo_reset_without_a_hook_only_clears_and_a_failing_hook_is_said(emu: Emulator, tg: EmulatorClient,
                                                                               bot: Bot):
    await bot.send_message(USER, "hi")
    assert (await tg.demo_reset())["hook"] is False
    assert await tg.chat(USER) == []

    def broken() -> None:
        raise RuntimeError("database is gone")

    emu.on_reset = broken
    with pytest.raises(ControlAPIError) as err:
        await tg.demo_reset(clear_chats=False)
    assert err.value.status == 500 and "database is gone" in err.value.message


async def test_chat_last_keeps_the_latest_messages(tg: EmulatorClient, bot: Bot):
    for i in range(5):
        await bot.send_message(USER, f"m{i}")
    async with aiohttp.ClientSession() as http, http.get(
            f"{tg.base_url}/control/chat", params={"chat_id": USER, "last": "2"}) as resp:
        texts = [m["text"] for m in await resp.json()]
    assert texts == ["m3", "m4"]


async def test_control_messages_carry_what_the_page_draws(tg: EmulatorClient, bot: Bot):
    sent = await bot.send_message(USER, "<b>卡密</b> ok", parse_mode="HTML")
    await bot.edit_message_text("<i>已更新</i>", chat_id=USER, message_id=sent.message_id, parse_mode="HTML")
    await tg.send_photo(USER, png_bytes(200, 100))
    await tg.send_sticker(USER, "⭐")
    edited, photo, sticker = await tg.chat(USER)
    assert edited["edit_date"] and edited["entities"] == [{"type": "italic", "offset": 0, "length": 3}]
    assert (photo["width"], photo["height"]) == (200, 100)
    assert sticker["emoji"] == "⭐"


async def read_event(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next `changed` event of a server-sent event stream (comments and retry lines skipped)."""
    event: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
        if not line:
            if event.get("event") == "changed":
                return json.loads(event["data"])
            event = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        event[key] = value


async def test_events_stream_says_when_something_visible_changed(emu: Emulator, tg: EmulatorClient, bot: Bot):
    async with aiohttp.ClientSession() as http, http.get(f"{emu.control_url}/events") as resp:
        assert resp.content_type == "text/event-stream"
        first = await read_event(resp)
        assert first["revision"] == emu.state.revision
        await bot.send_message(USER, "新消息")
        second = await read_event(resp)
        assert second["revision"] > first["revision"]


async def test_polling_and_confirming_do_not_count_as_visible_changes(emu: Emulator, tg: EmulatorClient, bot: Bot):
    await tg.send_text(USER, "hi")
    revision = emu.state.revision
    got = await bot.get_updates(timeout=0)
    await bot.get_updates(offset=got[-1].update_id + 1, timeout=0)
    assert emu.state.revision == revision
    sent = await bot.send_message(USER, "answer")
    await bot.edit_message_text("edited answer", chat_id=USER, message_id=sent.message_id)
    assert emu.state.revision == revision + 2


async def test_an_open_event_stream_ends_when_the_emulator_stops():
    emu = Emulator(port=0, state=EmulatorState(update_id_base=UPDATE_BASE))
    await emu.start()
    async with aiohttp.ClientSession() as http, http.get(f"{emu.control_url}/events") as resp:
        await read_event(resp)
        started = asyncio.get_running_loop().time()
        await emu.close()
        assert await asyncio.wait_for(resp.content.read(), 5) == b""
        assert asyncio.get_running_loop().time() - started < 3
