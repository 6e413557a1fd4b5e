"""A real aiogram Bot talks to the emulator over HTTP; tests act as users via the control API."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
    Update,
)

from sandbox import Emulator, EmulatorClient

from .conftest import OTHER_USER, UPDATE_BASE, USER, png_bytes


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in pairs]])


async def next_updates(bot: Bot, offset: int | None = None) -> list[Update]:
    return await bot.get_updates(offset=offset, timeout=2)


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username, me.first_name) == (7000000001, True, "refund_demo_bot", "RefundBot")
    assert me.can_join_groups is True and me.supports_inline_queries is False


async def test_start_command_arrives_with_bot_command_entity(bot: Bot, tg: EmulatorClient) -> None:
    sent = await tg.send_text(USER, "/start order_X")
    assert sent["update_id"] == UPDATE_BASE
    [update] = await next_updates(bot)
    assert isinstance(update, Update) and update.update_id == sent["update_id"]
    msg = update.message
    assert msg is not None and msg.text == "/start order_X" and msg.message_id == sent["message_id"]
    assert msg.chat.id == USER and msg.chat.type == "private" and msg.from_user is not None
    assert msg.from_user.language_code == "zh-hans" and msg.from_user.username == "ann"
    [entity] = msg.entities or []
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    assert abs(msg.date.timestamp() - time.time()) < 5


async def test_keyboard_press_answer_and_edit(bot: Bot, tg: EmulatorClient) -> None:
    sent = await bot.send_message(USER, "卡密有什么问题？", reply_markup=keyboard(("卡密无效", "inv"), ("已被使用", "used")))
    assert isinstance(sent, Message) and sent.reply_markup is not None
    pressed = await tg.press(USER, sent.message_id, button_text="已被使用")
    [update] = await next_updates(bot)
    cq = update.callback_query
    assert cq is not None and cq.id == pressed["callback_query_id"] and cq.data == "used"
    assert cq.from_user.id == USER and cq.chat_instance and cq.message is not None
    assert cq.message.message_id == sent.message_id and cq.message.text == "卡密有什么问题？"

    assert await bot.answer_callback_query(cq.id, text="收到", show_alert=True)
    [answer] = await tg.callback_answers(cq.id)
    assert answer["answer"]["text"] == "收到" and answer["answer"]["show_alert"] is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(cq.id)  # answered twice
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")

    edited = await bot.edit_message_text("已记录：已被使用", chat_id=USER, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.text == "已记录：已被使用" and edited.edit_date is not None
    assert edited.reply_markup is None  # an edit without reply_markup drops the keyboard, as on Telegram
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("已记录：已被使用", chat_id=USER, message_id=sent.message_id)

    [shown] = await tg.bot_messages(USER)
    assert shown["text"] == "已记录：已被使用" and shown["edits"] == 1 and shown["reply_markup"] is None
    assert shown["edit_history"][0]["text"] == "卡密有什么问题？"
    with pytest.raises(Exception, match="404"):
        await tg.press(USER, sent.message_id, button_text="已被使用")  # the button is gone
    forged = await tg.press(USER, sent.message_id, data="forged:1")  # raw data is sent regardless
    [update] = await next_updates(bot, offset=update.update_id + 1)
    assert update.callback_query is not None and update.callback_query.data == forged["data"] == "forged:1"

    again = await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id,
                                                reply_markup=keyboard(("OK", "ok")))
    assert isinstance(again, Message) and again.reply_markup is not None


async def test_photo_from_user_downloads_identical_bytes(bot: Bot, tg: EmulatorClient) -> None:
    data = png_bytes(640, 480)
    sent = await tg.send_photo(USER, data, caption="凭证")
    [update] = await next_updates(bot)
    msg = update.message
    assert msg is not None and msg.photo and msg.caption == "凭证"
    largest = msg.photo[-1]
    assert (largest.width, largest.height, largest.file_size) == (640, 480, len(data))
    assert largest.file_id == sent["file_id"] and len(msg.photo) == 2 and msg.photo[0].width <= 90
    file = await bot.get_file(largest.file_id)
    assert file.file_path and file.file_size == len(data) and file.file_unique_id == sent["file_unique_id"]
    buf = io.BytesIO()
    await bot.download(file, destination=buf)
    assert buf.getvalue() == data

    again = await tg.send_photo(USER, data)
    assert again["file_unique_id"] == sent["file_unique_id"] and again["file_id"] != sent["file_id"]
    other = await tg.send_photo(USER, png_bytes(10, 10, "blue"))
    assert other["file_unique_id"] != sent["file_unique_id"]


async def test_bot_sends_document_photo_and_media_group(bot: Bot, tg: EmulatorClient) -> None:
    pdf = b"%PDF-1.4\n% sandbox receipt\n"
    doc = await bot.send_document(USER, BufferedInputFile(pdf, "receipt.pdf"), caption="收据")
    assert doc.document is not None and doc.document.file_name == "receipt.pdf"
    assert doc.document.mime_type == "application/pdf" and doc.caption == "收据"
    assert await tg.download(doc.document.file_id) == pdf

    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER, BufferedInputFile(b"not an image", "x.jpg"))
    photo = await bot.send_photo(USER, BufferedInputFile(png_bytes(), "p.png"), reply_markup=keyboard(("A", "a")))
    assert photo.photo and photo.photo[-1].width == 200 and photo.reply_markup is not None
    by_id = await bot.send_photo(OTHER_USER, photo.photo[-1].file_id)
    assert by_id.photo and by_id.photo[-1].file_unique_id == photo.photo[-1].file_unique_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(USER, "no-such-file-id")

    user_photo = await tg.send_photo(USER, png_bytes(300, 300, "green"))
    album = await bot.send_media_group(USER, media=[
        InputMediaPhoto(media=BufferedInputFile(png_bytes(50, 60), "a.png"), caption="第一张"),
        InputMediaPhoto(media=user_photo["file_id"]),
    ])
    assert len(album) == 2 and album[0].media_group_id and album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "第一张" and album[1].photo and album[1].photo[-1].width == 300
    shown = await tg.bot_messages(USER, after_message_id=photo.message_id)
    assert [m["kind"] for m in shown] == ["photo", "photo"]
    assert {m["media_group_id"] for m in shown} == {album[0].media_group_id}


async def test_copy_message_and_reply(bot: Bot, tg: EmulatorClient) -> None:
    sent = await tg.send_photo(USER, png_bytes(), caption="原图")
    copied = await bot.copy_message(OTHER_USER, from_chat_id=USER, message_id=sent["message_id"])
    [shown] = await tg.bot_messages(OTHER_USER)
    assert shown["message_id"] == copied.message_id and shown["kind"] == "photo"
    assert shown["file_id"] == sent["file_id"] and shown["caption"] == "原图"
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await bot.copy_message(OTHER_USER, from_chat_id=USER, message_id=999)

    reply = await bot.send_message(USER, "收到", reply_parameters=ReplyParameters(message_id=sent["message_id"]))
    assert reply.reply_to_message is not None and reply.reply_to_message.message_id == sent["message_id"]
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(USER, "x", reply_parameters=ReplyParameters(message_id=999))


async def test_commands_delete_and_chat_action(bot: Bot, tg: EmulatorClient) -> None:
    cmds = [BotCommand(command="start", description="开始"), BotCommand(command="refund", description="申请退款")]
    assert await bot.set_my_commands(cmds, language_code="zh")
    assert await bot.set_my_commands([BotCommand(command="help", description="help")],
                                     scope=BotCommandScopeChat(chat_id=USER))
    assert [c.command for c in await bot.get_my_commands(language_code="zh")] == ["start", "refund"]
    assert await bot.get_my_commands() == []
    stored = await tg.commands()
    assert {(s["scope"]["type"], s["language_code"]) for s in stored} == {("default", "zh"), ("chat", "")}
    assert await bot.delete_my_commands(language_code="zh")
    assert await bot.get_my_commands(language_code="zh") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Command", description="x")])

    msg = await bot.send_message(USER, "to be deleted")
    assert await bot.delete_message(USER, msg.message_id)
    [shown] = await tg.bot_messages(USER)
    assert shown["deleted"] is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, msg.message_id)

    assert await bot.send_chat_action(USER, "typing")
    assert [a["action"] for a in await tg.chat_actions(USER)] == ["typing"]


async def test_offset_confirms_and_forgets(bot: Bot, tg: EmulatorClient) -> None:
    ids = [(await tg.send_text(USER, f"m{i}"))["update_id"] for i in range(3)]
    assert (await tg.update_status(ids[0]))["status"] == "pending"
    first = await bot.get_updates(timeout=0)
    assert [u.update_id for u in first] == ids
    assert (await tg.update_status(ids[0]))["status"] == "delivered"
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == ids  # unconfirmed: handed out again
    assert [u.update_id for u in await bot.get_updates(offset=ids[1], timeout=0)] == ids[1:]
    assert (await tg.update_status(ids[0]))["status"] == "confirmed"
    assert await bot.get_updates(offset=ids[-1] + 1, timeout=0) == []
    await tg.wait_confirmed(ids[-1], timeout=1)
    assert (await tg.state())["pending_updates"] == 0

    late = await tg.send_text(USER, "late")
    with pytest.raises(TimeoutError):
        await tg.wait_confirmed(late["update_id"], timeout=0.2)


async def test_redeliver_gives_same_update_id(bot: Bot, tg: EmulatorClient) -> None:
    sent = await tg.send_text(USER, "退款")
    [update] = await next_updates(bot)
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == []
    await tg.redeliver(sent["update_id"])
    assert (await tg.update_status(sent["update_id"]))["status"] == "pending"
    # The bot's offset is already past it, yet the redelivered update comes back, same id and content.
    [again] = await bot.get_updates(offset=update.update_id + 1, timeout=1)
    assert again.update_id == update.update_id and again.message is not None
    assert again.message.text == "退款" and again.message.message_id == update.message.message_id  # type: ignore[union-attr]
    assert await bot.get_updates(offset=again.update_id + 1, timeout=0) == []
    await tg.wait_confirmed(sent["update_id"], timeout=1)


async def test_long_poll_returns_as_soon_as_an_update_exists(bot: Bot, tg: EmulatorClient) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    await tg.send_text(USER, "hi")
    updates = await asyncio.wait_for(poll, 3)
    assert len(updates) == 1 and time.monotonic() - started < 2


async def test_other_user_kinds_parse_in_aiogram(bot: Bot, tg: EmulatorClient) -> None:
    await tg.send_sticker(USER)
    await tg.send_voice(USER)
    await tg.send_location(USER, 22.5, 114.1)
    doc = await tg.send_document(USER, b"MZ\x90\x00", filename="invoice.pdf", mime_type="application/pdf")
    first = await tg.send_text(USER, "typo")
    await tg.edit_text(USER, first["message_id"], "fixed")
    updates = await next_updates(bot)
    msgs = [u.message or u.edited_message for u in updates]
    assert msgs[0] and msgs[0].sticker and msgs[0].sticker.type == "regular"
    assert msgs[1] and msgs[1].voice and msgs[1].voice.mime_type == "audio/ogg"
    assert msgs[2] and msgs[2].location and msgs[2].location.latitude == 22.5
    assert msgs[3] and msgs[3].document and msgs[3].document.mime_type == "application/pdf"  # claimed, not sniffed
    assert msgs[3].document.file_id == doc["file_id"]
    assert updates[5].edited_message is not None and updates[5].edited_message.text == "fixed"
    assert updates[5].edited_message.edit_date is not None


async def test_allowed_updates_filters_unwanted_kinds(bot: Bot, tg: EmulatorClient) -> None:
    msg = await bot.send_message(USER, "pick", reply_markup=keyboard(("A", "a")))
    await tg.press(USER, msg.message_id, data="a")
    await tg.send_text(USER, "text")
    updates = await bot.get_updates(timeout=0, allowed_updates=["message"])
    assert [u.message.text for u in updates if u.message] == ["text"] and len(updates) == 1


async def test_errors_match_telegram(bot: Bot, tg: EmulatorClient, emu: Emulator) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "hi")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    assert (await bot.send_message(USER, "字" * 4096)).text
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=keyboard(("A", "d" * 65)))
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "   ")
    with pytest.raises(TelegramBadRequest, match="can't parse entities: Unsupported start tag"):
        await bot.send_message(USER, "订单 <12345> 已退款", parse_mode="HTML")
    ok = await bot.send_message(USER, "<b>订单</b> &lt;12345&gt;", parse_mode="HTML")
    assert ok.text == "订单 <12345>" and ok.entities and ok.entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="reserved"):
        await bot.send_message(USER, "金额 1.5 元", parse_mode="MarkdownV2")

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emu.api_url()}/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        # Plain JSON bodies and GET query strings work too.
        async with http.post(f"{emu.api_url()}/sendMessage", json={"chat_id": USER, "text": "json"}) as resp:
            body = await resp.json()
            assert body["ok"] is True and body["result"]["text"] == "json"
        async with http.get(f"{emu.api_url()}/sendMessage", params={"chat_id": str(USER), "text": "q"}) as resp:
            assert (await resp.json())["result"]["chat"]["id"] == USER
    [call] = [c for c in await tg.calls("sendMessage") if c["params"].get("text") == "json"]
    assert call["status"] == 200 and call["params"]["chat_id"] == USER


async def test_faults_surface_as_aiogram_exceptions(bot: Bot, tg: EmulatorClient) -> None:
    await tg.add_fault("sendMessage", 429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as retry:
        await bot.send_message(USER, "x")
    assert retry.value.retry_after == 7 and "retry after 7" in retry.value.message
    assert (await bot.send_message(USER, "now fine")).text == "now fine"

    await tg.add_fault("sendMessage", 403, chat_id=OTHER_USER)
    assert await bot.send_message(USER, "other chat unaffected")
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(OTHER_USER, "x")

    await tg.add_fault("sendMessage", 500, count=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Internal Server Error"):
            await bot.send_message(USER, "x")
    await tg.add_fault("getFile", 502)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.get_file("whatever")

    await tg.add_fault("sendMessage", 0, delay=0.3)
    started = time.monotonic()
    assert await bot.send_message(USER, "slow")
    assert time.monotonic() - started >= 0.3

    await tg.add_fault("sendMessage", 500, count=5)
    assert len(await tg.faults()) == 1
    await tg.clear_faults()
    assert await bot.send_message(USER, "cleared")
    failed = [c for c in await tg.calls("sendMessage") if c["status"] != 200]
    assert [c["status"] for c in failed] == [429, 403, 500, 500]

    await tg.block_bot(USER)
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(USER, "x")
    await tg.create_user(4004, "Never", started=False)
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(4004, "hello?")
    await tg.send_text(4004, "/start")
    assert await bot.send_message(4004, "hello!")


async def test_flood_limits(bot: Bot, tg: EmulatorClient) -> None:
    await tg.set_limits(enabled=True, per_chat_per_s=2)
    await bot.send_message(USER, "1")
    await bot.send_message(USER, "2")
    with pytest.raises(TelegramRetryAfter) as exc:
        await bot.send_message(USER, "3")
    assert exc.value.retry_after >= 1
    assert await bot.send_message(OTHER_USER, "another chat is fine")
    await tg.set_limits(enabled=False)
    assert await bot.send_message(USER, "3")


async def test_get_file_refuses_files_over_20_mb(bot: Bot, tg: EmulatorClient) -> None:
    big = await tg.send_file_ref(USER, "document", 30 * 1024 * 1024, mime_type="application/pdf",
                                 filename="scan.pdf")
    [update] = await next_updates(bot)
    assert update.message and update.message.document and update.message.document.file_size == 30 * 1024 * 1024
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(big["file_id"])
    small = await tg.send_file_ref(USER, "photo", 5 * 1024 * 1024)
    file = await bot.get_file(small["file_id"])
    assert file.file_size == 5 * 1024 * 1024
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


async def test_webhook_blocks_get_updates_and_polling_conflict(bot: Bot, tg: EmulatorClient) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, 2)
    assert await second == []

    assert await bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert info.url == "http://127.0.0.1:9/hook" and info.max_connections == 40
    assert await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []


async def test_reset_forgets_everything_but_the_bot(bot: Bot, tg: EmulatorClient) -> None:
    await tg.send_text(USER, "hi")
    await tg.reset()
    state = await tg.state()
    assert state["users"] == [] and state["pending_updates"] == 0
    assert (await bot.get_me()).username == "refund_demo_bot"


async def test_an_answer_late_fault_carries_the_call_out_before_the_client_gives_up(bot: Bot, tg: EmulatorClient) -> None:
    await tg.add_fault("sendMessage", 0, delay=1.0, answer_late=True)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(USER, "went through", request_timeout=0.2)
    # The client gave up, yet the message is in the chat.
    assert [m["text"] for m in await tg.messages(USER) if m.get("text") == "went through"] == ["went through"]


async def test_a_user_blocking_the_bot_sends_my_chat_member_kicked_and_sends_fail_with_403(
        bot: Bot, tg: EmulatorClient) -> None:
    answer = await tg.block_bot(USER)
    [update] = await next_updates(bot)
    mcm = update.my_chat_member
    assert mcm is not None and update.update_id == answer["update_id"]
    assert mcm.chat.id == USER and mcm.chat.type == "private" and mcm.from_user.id == USER
    assert (mcm.old_chat_member.status, mcm.new_chat_member.status) == ("member", "kicked")
    assert mcm.new_chat_member.user.id == (await bot.get_me()).id
    with pytest.raises(TelegramForbiddenError, match="blocked by the user"):
        await bot.send_message(USER, "x")


async def test_a_user_unblocking_the_bot_sends_my_chat_member_member_and_sends_work_again(
        bot: Bot, tg: EmulatorClient) -> None:
    await tg.block_bot(USER, quiet=True)
    answer = await tg.block_bot(USER, blocked=False)
    [update] = await next_updates(bot)
    mcm = update.my_chat_member
    assert mcm is not None and update.update_id == answer["update_id"]
    assert (mcm.old_chat_member.status, mcm.new_chat_member.status) == ("kicked", "member")
    assert await bot.send_message(USER, "welcome back")


async def test_blocking_twice_or_quietly_sends_no_update(bot: Bot, tg: EmulatorClient) -> None:
    assert (await tg.block_bot(USER, quiet=True))["update_id"] is None
    assert (await tg.block_bot(USER))["update_id"] is None  # already blocked: nothing changed
    assert await next_updates(bot) == []
