"""Bad input gets a clear, polite answer and changes nothing; nothing is lost or applied twice."""

from __future__ import annotations

import asyncio
import io

from PIL import Image
from sqlalchemy import delete

from dialogs.texts import Texts
from storage.models import LookupFailureRow
from tests.e2e.conftest import CASE_NO, Customer, buttons, png_bytes, texts

ZH, EN = Texts("zh_CN"), Texts("en")
LIMITS = {"max_photo_mb": 10, "max_document_mb": 20, "max_pixels_mp": 40, "max": 5}


async def at_evidence_step(c: Customer, t: Texts = ZH) -> None:
    await c.say("/start order_KM20261101000001")
    await c.press(t("reason.card_invalid"))
    await c.press(t("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")


async def test_sticker_voice_and_text_where_a_screenshot_is_expected_get_a_hint(bot, customer):
    c = await customer()
    await at_evidence_step(c)
    for kind in ("sticker", "voice"):
        assert texts(await c.other(kind)) == ZH("hint.collecting_evidence")
    assert texts(await c.say("好的")) == ZH("hint.collecting_evidence")


async def test_text_where_a_button_is_expected_gets_a_hint(bot, customer):
    c = await customer(10002, "en")
    await c.say("/start order_KM20261101000004")
    assert texts(await c.say("the first one")) == EN("hint.choosing_reason")
    assert texts(await c.other("sticker")) == EN("hint.choosing_reason")


async def test_a_30_mb_file_is_refused_without_downloading_it(bot, customer, control):
    c = await customer()
    await at_evidence_step(c)
    sent = await control.post("send_file_ref", user_id=c.user_id, kind="document", file_size=30 * 1024 * 1024,
                              mime_type="image/png", filename="huge.png")
    shown = await c._after(sent)
    assert texts(shown) == ZH("evidence_problem.too_large", **LIMITS)
    assert not [call for call in await control.get("calls", method="getFile")]


async def test_a_text_file_claiming_to_be_an_image_is_refused(bot, customer):
    c = await customer()
    await at_evidence_step(c)
    shown = await c.document(b"this is not a picture at all", "shot.png", "image/png")
    assert texts(shown) == ZH("evidence_problem.not_image", **LIMITS)
    assert texts(await c.press(ZH("btn_done"))) == ZH("evidence_required", needed=1, count=0)


async def test_a_picture_with_too_many_pixels_is_refused(bot, customer):
    c = await customer()
    await at_evidence_step(c)
    buffer = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buffer, format="PNG")  # 48 MP but a few KB on the wire
    shown = await c.document(buffer.getvalue(), "big.png", "image/png")
    assert texts(shown) == ZH("evidence_problem.too_many_pixels", **LIMITS)


async def test_an_image_document_is_accepted_and_the_same_screenshot_counts_once(bot, customer, tmp_path):
    c = await customer()
    await at_evidence_step(c)
    # The sender's mime type is ignored: the bytes are sniffed.
    shown = await c.document(png_bytes("purple"), "shot.bin", "application/octet-stream")
    assert texts(shown) == ZH("evidence_received", count=1, **LIMITS)
    assert texts(await c.photo(png_bytes("orange"))) == ZH("evidence_received", count=2, **LIMITS)
    assert texts(await c.photo(png_bytes("orange"))) == ZH("evidence_problem.duplicate", **LIMITS)
    stored = sorted(p.read_bytes() for p in (tmp_path / "evidence").rglob("*.png"))
    assert stored == sorted([png_bytes("purple"), png_bytes("orange")])


async def test_a_forged_button_changes_nothing(bot, customer, control):
    c = await customer()
    await c.say("/start order_KM20261101000001")
    message = await c.message_with_button(ZH("reason.card_invalid"))
    shown = await c.press_data(message["message_id"], "forged.submit")
    assert shown == [] and await c.toast() == ZH("stale_button")
    # A real nonce with a reason the product does not offer is refused as well.
    nonce = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(".")[0]
    shown = await c.press_data(message["message_id"], f"{nonce}.r.topup_duplicate")
    assert await c.toast() == ZH("stale_button")
    # The conversation is where it was: the genuine button still works.
    shown = await c.press(ZH("reason.card_invalid"))
    assert ZH("rule_title.CARD_DEFECT_IN_WINDOW", hours=24) in texts(shown)


async def test_a_stale_button_of_an_earlier_step_changes_nothing(bot, customer):
    c = await customer()
    await c.say("/start order_KM20261101000001")
    reasons = await c.message_with_button(ZH("reason.card_invalid"))
    await c.press(ZH("reason.card_invalid"))
    old = reasons["reply_markup"]["inline_keyboard"][1][0]["callback_data"]
    assert await c.press_data(reasons["message_id"], old) == []
    assert await c.toast() == ZH("stale_button")


async def outbox_drained(bot, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    """Until the relay has sent every due notification."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with bot.running.database.uow() as uow:
            if await uow.outbox.backlog() == 0:
                return
        assert asyncio.get_running_loop().time() < deadline, "the relay did not drain"
        await asyncio.sleep(0.05)


async def test_a_repeated_update_does_nothing_twice(bot, customer, control):
    c = await customer()
    await c.say("/start order_KM20261101000001")
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")
    await c.photo(png_bytes("red"))
    await c.press(ZH("btn_done"))
    submitted = await c.press(ZH("btn_submit"))
    assert CASE_NO.search(texts(submitted))
    # The filed case's status card goes out through the relay, a moment after the reply: compare only once
    # it is out, or a late card reads as a second answer (and /status below as two cases).
    await outbox_drained(bot)
    before = await control.messages(c.user_id)
    again = await control.post("redeliver", update_id=c.last_update)
    await control.wait(again["update_id"])
    await asyncio.sleep(0.2)
    await outbox_drained(bot)
    assert await control.messages(c.user_id) == before
    await c.read()  # the status card, read here so that /status's answer is all /status says
    status = texts(await c.say("/status"))
    assert len(CASE_NO.findall(status)) == 1, status


async def test_twenty_rapid_messages_end_as_a_sequential_run_would(bot, customer, control):
    script = ["/refund", "KM1", "KM20261101000015"] + ["1234", "KM20261101000015"] * 3 + ["9999"] + [
        "随便说说"] * 10
    assert len(script) == 20
    sequential = await customer(10003)
    for line in script:
        await sequential.say(line)
    # Failed guesses also count per order number, for every chat: the twin starts from a clean slate.
    async with bot.running.database.uow() as uow:
        await uow.session.execute(delete(LookupFailureRow))
        await uow.commit()
    rapid = await customer(10003 + 100000)
    # Same orders for the twin: bind nothing, the phone check uses the order's digits.
    ids = [await rapid.send_nowait(line) for line in script]
    await control.wait(ids[-1], timeout=30)
    await rapid.read()
    assert [m for m in rapid.transcript] == [m for m in sequential.transcript]


async def test_a_flood_gets_one_polite_notice(start_bot, customer, control, tmp_path):
    from tests.e2e.conftest import make_config

    await start_bot(make_config(tmp_path, flood_max_updates=5, flood_window_seconds=30))
    c = await customer()
    ids = [await c.send_nowait("/help") for _ in range(9)]
    await control.wait(ids[-1])
    said = [m.get("text") for m in await c.read()]
    assert said.count(ZH("flood")) == 1
    assert said.count(ZH("help", hours=24, min_days=1, max_days=3)) == 5


async def test_cancel_help_agent_and_lang(bot, customer):
    c = await customer()
    await c.say("/refund")
    assert texts(await c.say("/cancel")) == ZH("cancelled")
    assert texts(await c.say("KM20261101000001")) != ZH("hint.awaiting_order")  # idle accepts a number
    assert "24" in texts(await c.say("/help"))
    assert texts(await c.say("/agent")) == ZH("agent_recorded")
    assert texts(await c.say("/agent")) == ZH("agent_recorded_again")
    assert texts(await c.say("/lang")) == EN("lang_switched")
    assert texts(await c.say("/help")).startswith("How refunds work")
    assert texts(await c.say("/lang zh")) == ZH("lang_switched")


async def test_a_429_on_a_reply_is_waited_out_and_the_reply_arrives(bot, customer, control):
    c = await customer()
    await control.post("faults", method="sendMessage", chat_id=c.user_id, error_code=429, count=1, retry_after=1)
    assert texts(await c.say("/help")).startswith("退款规则")


async def test_a_blocked_chat_does_not_stop_the_bot(bot, customer, control):
    blocked = await customer(10002, "en")
    await control.post("faults", method="sendMessage", chat_id=blocked.user_id, error_code=403, count=1)
    assert await blocked.say("/help") == []
    other = await customer(10001)
    assert texts(await other.say("/help")).startswith("退款规则")


async def test_commands_are_published_in_both_languages(bot, customer, control):
    c = await customer()
    await c.say("/help")  # the bot is up
    commands = await control.get("commands")
    flat = str(commands)
    assert "申请退款" in flat and "Request a refund" in flat


async def test_a_failed_set_my_commands_is_not_fatal(start_bot, customer, control):
    await control.post("faults", method="setMyCommands", error_code=500, count=10)
    await start_bot()
    c = await customer()
    assert texts(await c.say("/help")).startswith("退款规则")
    assert buttons([]) == []


async def test_claims_older_than_telegrams_retention_are_forgotten(bot, customer, control):
    from datetime import timedelta

    c = await customer()
    await c.say("/help")
    service = bot.running.service
    assert await service.forget_old_claims(older_than=timedelta(hours=48)) == 0
    assert await service.forget_old_claims(older_than=timedelta(seconds=-1)) >= 1
    # A new update that reuses a forgotten id is handled again instead of being taken for a repeat.
    again = await control.post("redeliver", update_id=c.last_update)
    await control.wait(again["update_id"])
    assert texts(await c.read()).startswith("退款规则")


async def test_get_updates_errors_and_429_are_waited_out(bot, customer, control):
    c = await customer()
    await c.say("/help")  # the bot is polling
    await control.post("faults", method="getUpdates", error_code=502, count=2)
    await control.post("faults", method="getUpdates", error_code=429, count=1, retry_after=1)
    assert texts(await c.say("/help")).startswith("退款规则")
    assert len(await control.get("calls", method="getUpdates")) > 3
