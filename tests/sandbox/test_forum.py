"""Forum supergroups in the emulator: topics, members, and users acting in groups, driven by a real aiogram Bot
over HTTP with Telegram's result objects and error texts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import (
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ForumTopic,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
    Update,
)

from sandbox import BOT_USER_ID, ControlAPIError, Emulator, EmulatorClient

from .conftest import OTHER_USER, USER, png_bytes

GROUP = -1001234567890
OWNER = 3001  # created the agents' group
AGENT = 3002  # an administrator without can_manage_topics
SUPERVISOR = 3003  # an administrator who manages topics
CARD_TITLE = "R20261124-0001 · 卡密无效 · ¥50.00"


@pytest.fixture
async def group(tg: EmulatorClient) -> AsyncIterator[dict[str, Any]]:
    for uid, name in ((OWNER, "Olga"), (AGENT, "Alan"), (SUPERVISOR, "Sue")):
        await tg.create_user(uid, name, started=False)  # agents need not have opened the bot
    created = await tg.create_group("退款客服", GROUP, creator_id=OWNER, members=[
        {"user_id": AGENT, "status": "administrator", "rights": {"can_manage_topics": False,
                                                                 "can_delete_messages": False}},
        {"user_id": SUPERVISOR, "status": "administrator", "custom_title": "主管"},
        {"user_id": OTHER_USER, "status": "member"},
    ])
    yield created


async def updates_of(bot: Bot) -> list[Update]:
    """Everything pending, confirmed at once (the next call starts after it)."""
    got = await bot.get_updates(timeout=0)
    if got:
        await bot.get_updates(offset=got[-1].update_id + 1, timeout=0)
    return got


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in pairs]])


async def test_a_forum_supergroup_and_its_members_as_get_chat_and_get_chat_member_show_them(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    assert group["chat"] == {"id": GROUP, "type": "supergroup", "title": "退款客服", "is_forum": True}
    chat = await bot.get_chat(GROUP)
    assert (chat.type, chat.is_forum, chat.title) == ("supergroup", True, "退款客服")

    me = await bot.get_chat_member(GROUP, BOT_USER_ID)
    assert isinstance(me, ChatMemberAdministrator) and me.can_manage_topics and me.can_delete_messages
    assert me.user.is_bot and me.can_be_edited is False and me.can_promote_members is False
    owner = await bot.get_chat_member(GROUP, OWNER)
    assert isinstance(owner, ChatMemberOwner) and owner.user.first_name == "Olga"
    agent = await bot.get_chat_member(GROUP, AGENT)
    assert isinstance(agent, ChatMemberAdministrator) and agent.can_manage_topics is False
    supervisor = await bot.get_chat_member(GROUP, SUPERVISOR)
    assert isinstance(supervisor, ChatMemberAdministrator) and supervisor.custom_title == "主管"
    assert isinstance(await bot.get_chat_member(GROUP, OTHER_USER), ChatMemberMember)
    assert isinstance(await bot.get_chat_member(GROUP, USER), ChatMemberLeft)  # known user, never joined
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await bot.get_chat_member(GROUP, 999_999)

    admins = await bot.get_chat_administrators(GROUP)
    assert {a.user.id for a in admins} == {OWNER, AGENT, SUPERVISOR, BOT_USER_ID}
    assert await bot.get_chat_member_count(GROUP) == 5
    assert isinstance(await bot.get_chat_member(USER, USER), ChatMemberMember)
    with pytest.raises(TelegramBadRequest, match="there are no administrators in the private chat"):
        await bot.get_chat_administrators(USER)
    assert [m["status"] for m in await tg.members(GROUP)] == [
        "creator", "administrator", "administrator", "administrator", "member"]
    assert await updates_of(bot) == []  # a group that existed before: no updates for its setup


async def test_create_forum_topic_returns_the_topic_and_opens_it_with_a_service_message(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    topic = await bot.create_forum_topic(GROUP, CARD_TITLE, icon_color=16478047)
    assert isinstance(topic, ForumTopic) and topic.name == CARD_TITLE and topic.icon_color == 16478047
    [root] = await tg.topic_messages(GROUP, topic.message_thread_id)
    assert root["message_id"] == root["message_thread_id"] == topic.message_thread_id
    assert root["kind"] == "service" and root["from_bot"] and root["is_topic_message"]
    assert root["forum_topic_created"] == {"name": CARD_TITLE, "icon_color": 16478047}
    default = await bot.create_forum_topic(GROUP, "  second\ncase  ")
    assert default.name == "second case" and default.icon_color == 7322096
    assert len((await bot.create_forum_topic(GROUP, "x" * 200)).name) == 128
    listed = await tg.topics(GROUP)
    assert [t["message_thread_id"] for t in listed][:2] == [topic.message_thread_id, default.message_thread_id]
    assert await updates_of(bot) == []  # the bot hears nothing of its own topics

    with pytest.raises(TelegramBadRequest, match="title must be non-empty"):
        await bot.create_forum_topic(GROUP, "   ")
    with pytest.raises(TelegramBadRequest, match="invalid icon color specified"):
        await bot.create_forum_topic(GROUP, "x", icon_color=0x1000000)
    await tg.create_group("plain", -1009999999999, is_forum=False)
    with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
        await bot.create_forum_topic(-1009999999999, "x")
    with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
        await bot.create_forum_topic(USER, "x")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.create_forum_topic(-1000000000001, "x")


async def test_bot_messages_in_a_topic_carry_the_thread_and_reply_to_the_topic_opening(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    card = await bot.send_message(GROUP, "<b>卡密无效</b>", parse_mode="HTML", message_thread_id=thread,
                                  reply_markup=keyboard(("接手", "take")))
    assert card.message_thread_id == thread and card.is_topic_message is True
    assert card.reply_to_message is not None and card.reply_to_message.message_id == thread
    assert card.reply_to_message.forum_topic_created is not None
    assert card.reply_to_message.forum_topic_created.name == CARD_TITLE
    assert card.chat.is_forum is True and card.chat.type == "supergroup"

    photo = await bot.send_photo(GROUP, BufferedInputFile(png_bytes(), "p.png"), message_thread_id=thread)
    doc = await bot.send_document(GROUP, BufferedInputFile(b"%PDF-1.4", "r.pdf"), message_thread_id=thread)
    album = await bot.send_media_group(GROUP, [InputMediaPhoto(media=BufferedInputFile(png_bytes(), "a.png")),
                                               InputMediaPhoto(media=BufferedInputFile(png_bytes(9, 9), "b.png"))],
                                       message_thread_id=thread)
    for msg in (photo, doc, *album):
        assert msg.message_thread_id == thread and msg.is_topic_message
        assert msg.reply_to_message is not None and msg.reply_to_message.message_id == thread

    customer = await tg.send_photo(USER, png_bytes(), caption="凭证")
    copied = await bot.copy_message(GROUP, USER, customer["message_id"], message_thread_id=thread)
    forwarded = await bot.forward_message(GROUP, USER, customer["message_id"], message_thread_id=thread)
    assert forwarded.message_thread_id == thread and forwarded.forward_origin is not None
    first = await tg.send_text(USER, "第一条")
    second = await tg.send_text(USER, "第二条")
    many = await bot.copy_messages(GROUP, USER, [first["message_id"], second["message_id"]],
                                   message_thread_id=thread)
    in_topic = await tg.bot_messages(GROUP, message_thread_id=thread)
    ids = {m["message_id"] for m in in_topic}
    assert {copied.message_id, forwarded.message_id, *(m.message_id for m in many)} <= ids
    assert [m["text"] for m in in_topic[-2:]] == ["第一条", "第二条"]
    assert all(m["message_thread_id"] == thread and m["is_topic_message"] for m in in_topic)

    general = await bot.send_message(GROUP, "/queue: 1 open case")
    assert general.message_thread_id is None and general.is_topic_message is None
    assert general.reply_to_message is None
    assert [m["text"] for m in await tg.bot_messages(GROUP, message_thread_id=1)] == ["/queue: 1 open case"]
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(GROUP, "x", message_thread_id=1)  # General is addressed without a thread
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(GROUP, "x", message_thread_id=thread + 1000)
    assert await bot.send_chat_action(GROUP, "typing", message_thread_id=1)
    assert await bot.send_chat_action(GROUP, "typing", message_thread_id=thread)
    with pytest.raises(TelegramBadRequest, match="message can't be copied"):
        await bot.copy_message(USER, GROUP, thread)  # the forum_topic_created service message


async def test_users_post_text_photo_document_sticker_into_a_topic_and_the_bot_gets_them(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    text = await tg.send_text(AGENT, "您好，我来处理", chat_id=GROUP, message_thread_id=thread)
    assert text["chat_id"] == GROUP and text["message_thread_id"] == thread and text["is_topic_message"]
    await tg.send_photo(AGENT, png_bytes(), caption="截图", chat_id=GROUP, message_thread_id=thread)
    await tg.send_document(AGENT, b"%PDF", filename="退款单.pdf", mime_type="application/pdf",
                           chat_id=GROUP, message_thread_id=thread)
    await tg.send_sticker(AGENT, chat_id=GROUP, message_thread_id=thread)
    await tg.send_text(OTHER_USER, "/queue", chat_id=GROUP)  # General
    updates = await updates_of(bot)
    msgs = [u.message for u in updates]
    assert all(m is not None for m in msgs) and len(msgs) == 5
    first = msgs[0]
    assert first is not None and first.text == "您好，我来处理" and first.message_id == text["message_id"]
    assert first.chat.id == GROUP and first.from_user is not None and first.from_user.id == AGENT
    for m in msgs[:4]:
        assert m is not None and m.message_thread_id == thread and m.is_topic_message is True
        assert m.reply_to_message is not None and m.reply_to_message.forum_topic_created is not None
    assert msgs[1] and msgs[1].photo and msgs[1].caption == "截图"
    assert msgs[2] and msgs[2].document and msgs[2].document.file_name == "退款单.pdf"
    assert msgs[3] and msgs[3].sticker
    general = msgs[4]
    assert general is not None and general.message_thread_id is None and general.is_topic_message is None
    assert general.entities and general.entities[0].type == "bot_command"
    # a reply in General carries the reply chain as its thread, without is_topic_message (Telegram does so)
    await tg.send_text(AGENT, "我来", chat_id=GROUP, reply_to_message_id=general.message_id)
    [reply] = await updates_of(bot)
    assert reply.message and reply.message.message_thread_id == general.message_id
    assert reply.message.is_topic_message is None
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(GROUP, "x", message_thread_id=reply.message.message_thread_id)

    with pytest.raises(ControlAPIError, match="403.*not a member"):
        await tg.send_text(USER, "hi", chat_id=GROUP, message_thread_id=thread)
    with pytest.raises(ControlAPIError, match="404.*thread"):
        await tg.send_text(AGENT, "hi", chat_id=GROUP, message_thread_id=thread + 500)
    [agent] = [u for u in (await tg.state())["users"] if u["id"] == AGENT]
    assert agent["started"] is False  # posting in a group does not open a private chat with the bot
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(AGENT, "hi")


async def test_a_member_presses_a_button_on_a_group_message_and_edits_their_own_message(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    card = await bot.send_message(GROUP, "案件卡片", message_thread_id=thread,
                                  reply_markup=keyboard(("接手", "take:1"), ("批准", "approve:1")))
    pressed = await tg.press(OTHER_USER, card.message_id, button_text="批准", chat_id=GROUP)
    [update] = await updates_of(bot)
    cq = update.callback_query
    assert cq is not None and cq.id == pressed["callback_query_id"] and cq.data == "approve:1"
    assert cq.from_user.id == OTHER_USER and isinstance(cq.message, Message)
    assert cq.message.chat.id == GROUP and cq.message.message_thread_id == thread
    assert cq.message.is_topic_message is True
    assert await bot.answer_callback_query(cq.id, text="仅客服可操作", show_alert=True)
    [answer] = await tg.callback_answers(cq.id)
    assert answer["chat_id"] == GROUP and answer["answer"]["text"] == "仅客服可操作"
    with pytest.raises(ControlAPIError, match="403"):
        await tg.press(USER, card.message_id, data="take:1", chat_id=GROUP)  # not in the group

    sent = await tg.send_text(AGENT, "退款金额 50", chat_id=GROUP, message_thread_id=thread)
    photo = await tg.send_photo(AGENT, png_bytes(), caption="旧说明", chat_id=GROUP, message_thread_id=thread)
    await updates_of(bot)
    edited = await tg.edit_text(AGENT, sent["message_id"], "退款金额 45", chat_id=GROUP)
    await tg.edit_text(AGENT, photo["message_id"], "新说明", chat_id=GROUP)
    first, second = await updates_of(bot)
    assert first.update_id == edited["update_id"] and first.edited_message is not None
    em = first.edited_message
    assert em.text == "退款金额 45" and em.edit_date is not None and em.message_id == sent["message_id"]
    assert em.message_thread_id == thread and em.is_topic_message and em.chat.id == GROUP
    assert second.edited_message is not None and second.edited_message.caption == "新说明"
    with pytest.raises(ControlAPIError, match="404"):
        await tg.edit_text(SUPERVISOR, sent["message_id"], "not mine", chat_id=GROUP)

    # the bot edits its card in place, in the topic
    again = await bot.edit_message_text("案件卡片 v2", chat_id=GROUP, message_id=card.message_id,
                                        reply_markup=keyboard(("释放", "release:1")))
    assert isinstance(again, Message) and again.message_thread_id == thread and again.edit_date


async def test_private_chats_keep_edits_and_ignore_message_thread_id(bot: Bot, tg: EmulatorClient) -> None:
    photo = await tg.send_photo(USER, png_bytes(), caption="v1")
    await tg.edit_text(USER, photo["message_id"], "v2")
    [_, update] = await updates_of(bot)
    assert update.edited_message is not None and update.edited_message.caption == "v2"
    assert update.edited_message.message_thread_id is None
    sent = await bot.send_message(USER, "x", message_thread_id=77)  # no topics in a private chat: ignored
    assert sent.message_thread_id is None and sent.is_topic_message is None


async def test_closed_topic_refuses_senders_without_can_manage_topics(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    assert await bot.close_forum_topic(GROUP, thread)
    closed = await tg.topic_messages(GROUP, thread)
    assert closed[-1]["forum_topic_closed"] == {} and closed[-1]["from_bot"]
    assert (await tg.topics(GROUP))[0]["closed"] is True
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.close_forum_topic(GROUP, thread)
    # the bot manages topics: it may still post; a person without that right may not
    assert (await bot.send_message(GROUP, "已关闭", message_thread_id=thread)).message_thread_id == thread
    with pytest.raises(ControlAPIError, match="403.*TOPIC_CLOSED"):
        await tg.send_text(AGENT, "还在吗", chat_id=GROUP, message_thread_id=thread)
    assert (await tg.send_text(SUPERVISOR, "我在", chat_id=GROUP, message_thread_id=thread))["message_id"]

    await tg.set_member(GROUP, BOT_USER_ID, "administrator", rights={"can_manage_topics": False}, quiet=True)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(GROUP, "x", message_thread_id=thread)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.copy_message(GROUP, USER, (await tg.send_text(USER, "hi"))["message_id"],
                               message_thread_id=thread)
    assert await bot.reopen_forum_topic(GROUP, thread)  # its own topic: no right needed
    assert await bot.send_message(GROUP, "重新打开", message_thread_id=thread)
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.reopen_forum_topic(GROUP, thread)

    # a person closes it in the app: the bot gets the service message
    await updates_of(bot)
    await tg.close_topic(GROUP, SUPERVISOR, thread)
    [update] = await updates_of(bot)
    assert update.message is not None and update.message.forum_topic_closed is not None
    assert update.message.from_user is not None and update.message.from_user.id == SUPERVISOR
    assert update.message.message_thread_id == thread and update.message.is_topic_message
    with pytest.raises(ControlAPIError, match="403.*not enough rights to close or open the topic"):
        await tg.reopen_topic(GROUP, AGENT, thread)
    await tg.reopen_topic(GROUP, SUPERVISOR, thread)
    [update] = await updates_of(bot)
    assert update.message is not None and update.message.forum_topic_reopened is not None


async def test_deleted_topic_takes_its_messages_and_sends_to_it_fail(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    card = await bot.send_message(GROUP, "卡片", message_thread_id=thread, reply_markup=keyboard(("接手", "t")))
    await tg.send_text(AGENT, "收到", chat_id=GROUP, message_thread_id=thread)
    await updates_of(bot)
    assert (await tg.delete_topic(GROUP, SUPERVISOR, thread))["update_id"] is None
    assert await updates_of(bot) == []  # Telegram says nothing about a deleted topic
    assert all(m["deleted"] for m in await tg.topic_messages(GROUP, thread))
    assert await tg.topics(GROUP) == []
    assert (await tg.topics(GROUP, include_deleted=True))[0]["deleted"] is True

    for send in (
        lambda: bot.send_message(GROUP, "x", message_thread_id=thread),
        lambda: bot.send_photo(GROUP, BufferedInputFile(png_bytes(), "p.png"), message_thread_id=thread),
        lambda: bot.send_document(GROUP, BufferedInputFile(b"d", "d.txt"), message_thread_id=thread),
        lambda: bot.forward_message(GROUP, GROUP, card.message_id - 1, message_thread_id=thread),
    ):
        with pytest.raises(TelegramBadRequest, match="message thread not found|message to forward not found"):
            await send()
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("v2", chat_id=GROUP, message_id=card.message_id)
    with pytest.raises(TelegramBadRequest, match="TOPIC_ID_INVALID"):
        await bot.close_forum_topic(GROUP, thread)
    with pytest.raises(TelegramBadRequest, match="TOPIC_ID_INVALID"):
        await bot.delete_forum_topic(GROUP, thread)
    with pytest.raises(ControlAPIError, match="409"):
        await tg.press(AGENT, card.message_id, data="t", chat_id=GROUP)
    with pytest.raises(ControlAPIError, match="404.*thread"):
        await tg.send_text(AGENT, "x", chat_id=GROUP, message_thread_id=thread)

    again = await bot.create_forum_topic(GROUP, CARD_TITLE)  # recreated: a new thread id
    assert again.message_thread_id > card.message_id
    assert await bot.send_message(GROUP, "卡片", message_thread_id=again.message_thread_id)
    assert await bot.delete_forum_topic(GROUP, again.message_thread_id)
    assert await bot.get_updates(timeout=0) == []


async def test_topic_rights_follow_telegram(bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    made = await tg.create_topic(GROUP, SUPERVISOR, "主管的话题")
    thread = made["message_thread_id"]
    [update] = await updates_of(bot)
    assert update.update_id == made["update_id"] and update.message is not None
    assert update.message.forum_topic_created is not None and update.message.message_id == thread
    with pytest.raises(ControlAPIError, match="403.*not enough rights to create a topic"):
        await tg.create_topic(GROUP, AGENT, "x")

    await tg.set_member(GROUP, BOT_USER_ID, "administrator", quiet=True,
                        rights={"can_manage_topics": False, "can_delete_messages": False})
    with pytest.raises(TelegramBadRequest, match="not enough rights to create a topic"):
        await bot.create_forum_topic(GROUP, "x")
    with pytest.raises(TelegramBadRequest, match="not enough rights to edit the topic"):
        await bot.edit_forum_topic(GROUP, thread, name="y")
    with pytest.raises(TelegramBadRequest, match="not enough rights to close or open the topic"):
        await bot.close_forum_topic(GROUP, thread)
    with pytest.raises(TelegramBadRequest, match="not enough rights to delete the topic"):
        await bot.delete_forum_topic(GROUP, thread)
    with pytest.raises(TelegramBadRequest, match="invalid message thread identifier specified"):
        await bot.close_forum_topic(GROUP, 0)

    await tg.set_member(GROUP, BOT_USER_ID, "member", quiet=True)
    with pytest.raises(TelegramBadRequest, match="not enough rights to create a topic"):
        await bot.create_forum_topic(GROUP, "x")
    await tg.set_member(GROUP, BOT_USER_ID, "left", quiet=True)
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup chat"):
        await bot.send_message(GROUP, "x")
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup chat"):
        await bot.create_forum_topic(GROUP, "x")
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup chat"):
        await bot.get_chat_member(GROUP, AGENT)
    assert isinstance(await bot.get_chat_member(GROUP, BOT_USER_ID), ChatMemberLeft)
    await tg.set_member(GROUP, BOT_USER_ID, "kicked", quiet=True)
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.send_message(GROUP, "x")
    assert (await tg.send_text(AGENT, "/queue", chat_id=GROUP))["update_id"] is None  # it hears nothing


async def test_edit_forum_topic_renames_and_posts_forum_topic_edited(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    assert await bot.edit_forum_topic(GROUP, thread, name="R20261124-0001 · 已批准")
    [topic] = await tg.topics(GROUP)
    assert topic["name"] == "R20261124-0001 · 已批准"
    assert (await tg.topic_messages(GROUP, thread))[-1]["forum_topic_edited"] == {"name": "R20261124-0001 · 已批准"}
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.edit_forum_topic(GROUP, thread, name="R20261124-0001 · 已批准")
    assert await bot.edit_forum_topic(GROUP, thread)  # nothing to change: True, no service message
    assert len(await tg.topic_messages(GROUP, thread)) == 2
    await tg.edit_topic(GROUP, SUPERVISOR, thread, name="主管改名")
    [update] = await updates_of(bot)
    assert update.message is not None and update.message.forum_topic_edited is not None
    assert update.message.forum_topic_edited.name == "主管改名"


async def test_general_topic_can_be_closed_and_hidden(bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    assert await bot.close_general_forum_topic(GROUP)
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.close_general_forum_topic(GROUP)
    assert await bot.send_message(GROUP, "bot manages topics")
    with pytest.raises(ControlAPIError, match="TOPIC_CLOSED"):
        await tg.send_text(OTHER_USER, "hi", chat_id=GROUP)
    assert await bot.reopen_general_forum_topic(GROUP)
    assert await bot.hide_general_forum_topic(GROUP)  # hiding closes it too
    with pytest.raises(ControlAPIError, match="TOPIC_CLOSED"):
        await tg.send_text(OTHER_USER, "hi", chat_id=GROUP)
    assert await bot.unhide_general_forum_topic(GROUP)
    assert await bot.edit_general_forum_topic(GROUP, "大厅")
    services = [m for m in await tg.topic_messages(GROUP, 1) if m["kind"] == "service"]
    assert [next(k for k in m if k.startswith(("forum_", "general_"))) for m in services] == [
        "forum_topic_closed", "forum_topic_reopened", "general_forum_topic_hidden",
        "general_forum_topic_unhidden", "forum_topic_edited"]
    assert await bot.get_forum_topic_icon_stickers() == []


async def test_privacy_mode_hides_ordinary_group_messages_from_a_non_admin_bot(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    await tg.set_member(GROUP, BOT_USER_ID, "member", quiet=True)
    mine = await bot.send_message(GROUP, "我是机器人")
    assert (await tg.send_text(AGENT, "大家好", chat_id=GROUP))["update_id"] is None
    command = await tg.send_text(AGENT, "/queue", chat_id=GROUP)
    reply = await tg.send_text(AGENT, "回复你", chat_id=GROUP, reply_to_message_id=mine.message_id)
    assert [u.update_id for u in await updates_of(bot)] == [command["update_id"], reply["update_id"]]
    await tg.set_bot_privacy(can_read_all_group_messages=True)
    assert (await bot.get_me()).can_read_all_group_messages is True
    assert (await tg.send_text(AGENT, "现在能看到", chat_id=GROUP))["update_id"] is not None


async def test_membership_changes_reach_the_bot_as_telegram_sends_them(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    await tg.set_member(GROUP, BOT_USER_ID, "member", by_user_id=OWNER)
    [update] = await updates_of(bot)
    mcm = update.my_chat_member
    assert mcm is not None and mcm.chat.id == GROUP and mcm.from_user.id == OWNER
    assert mcm.old_chat_member.status == "administrator" and mcm.new_chat_member.status == "member"
    await tg.set_member(GROUP, BOT_USER_ID, "administrator")

    joined = await tg.set_member(GROUP, USER, "member")
    assert joined["member"]["status"] == "member"
    updates = await bot.get_updates(timeout=0, allowed_updates=["message", "chat_member", "my_chat_member"])
    kinds = [next(k for k, v in u.model_dump().items() if v is not None and k != "update_id") for u in updates]
    assert kinds == ["my_chat_member", "chat_member", "message"]
    assert updates[2].message is not None and updates[2].message.new_chat_members is not None
    assert updates[2].message.new_chat_members[0].id == USER
    await tg.set_member(GROUP, USER, "left")
    last = (await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0))[-1]
    assert last.message is not None and last.message.left_chat_member is not None
    with pytest.raises(ControlAPIError, match="400"):
        await tg.set_member(GROUP, AGENT, "member", rights={"can_manage_topics": True})
    with pytest.raises(ControlAPIError, match="409"):
        await tg.set_member(GROUP, AGENT, "creator")


async def test_the_group_limit_counts_every_topic_of_the_group(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    first = (await bot.create_forum_topic(GROUP, "one")).message_thread_id
    second = (await bot.create_forum_topic(GROUP, "two")).message_thread_id
    await tg.set_limits(per_group_per_min=3, per_chat_per_s=100, global_per_s=100)
    await bot.send_message(GROUP, "1", message_thread_id=first)
    await bot.send_message(GROUP, "2", message_thread_id=second)
    await bot.send_message(GROUP, "3")
    with pytest.raises(TelegramRetryAfter) as exc:
        await bot.send_message(GROUP, "4", message_thread_id=first)
    assert 1 <= exc.value.retry_after <= 60
    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_text("v2", chat_id=GROUP, message_id=second + 1)
    assert await bot.send_message(USER, "a private chat has its own window")
    assert (await tg.limits())["throttled"] == 2


async def test_reply_parameters_decide_the_topic_when_no_thread_is_given(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    other = (await bot.create_forum_topic(GROUP, "other")).message_thread_id
    asked = await tg.send_text(AGENT, "客户说什么？", chat_id=GROUP, message_thread_id=thread)
    answer = await bot.send_message(GROUP, "卡密无效", reply_parameters=ReplyParameters(
        message_id=asked["message_id"]))
    assert answer.message_thread_id == thread and answer.is_topic_message
    assert answer.reply_to_message is not None and answer.reply_to_message.message_id == asked["message_id"]
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(GROUP, "x", message_thread_id=other,
                               reply_parameters=ReplyParameters(message_id=asked["message_id"]))
    loose = await bot.send_message(GROUP, "x", message_thread_id=other, reply_parameters=ReplyParameters(
        message_id=asked["message_id"], allow_sending_without_reply=True))
    assert loose.message_thread_id == other and loose.reply_to_message is not None
    assert loose.reply_to_message.message_id == other  # only the topic's opening


async def test_delete_message_in_a_group_needs_the_right_for_others_messages(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    theirs = await tg.send_text(AGENT, "spam", chat_id=GROUP, message_thread_id=thread)
    assert await bot.delete_message(GROUP, theirs["message_id"])
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(GROUP, thread)  # a topic goes with deleteForumTopic only
    await tg.set_member(GROUP, BOT_USER_ID, "administrator", rights={"can_delete_messages": False}, quiet=True)
    again = await tg.send_text(AGENT, "spam", chat_id=GROUP, message_thread_id=thread)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(GROUP, again["message_id"])
    own = await bot.send_message(GROUP, "mine", message_thread_id=thread)
    assert await bot.delete_message(GROUP, own.message_id)


async def test_group_setup_is_validated(tg: EmulatorClient, emu: Emulator) -> None:
    with pytest.raises(ControlAPIError, match="400"):
        await tg.create_group("x", 12345)
    with pytest.raises(ControlAPIError, match="404"):
        await tg.create_group("x", creator_id=424242)
    with pytest.raises(ControlAPIError, match="unknown administrator right"):
        await tg.create_group("x", bot_rights={"can_fly": True})
    created = await tg.create_group("auto id")
    assert str(created["chat"]["id"]).startswith("-100") and len(str(created["chat"]["id"])) == 14
    state = await tg.state()
    [summary] = [c for c in state["chats"] if c["id"] == created["chat"]["id"]]
    assert summary["members"] == 1 and summary["topics"] == 0
    async with aiohttp.ClientSession() as http, http.post(f"{emu.api_url()}/createForumTopic",
                                                          json={"chat_id": created["chat"]["id"],
                                                                "name": "json"}) as resp:
        body = await resp.json()
    assert body["ok"] and set(body["result"]) == {"message_thread_id", "name", "icon_color"}


async def test_aiogram_answers_in_the_topic_a_message_came_from(
        bot: Bot, tg: EmulatorClient, group: dict[str, Any]) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"收到：{message.text}")  # aiogram fills message_thread_id for topic messages

    thread = (await bot.create_forum_topic(GROUP, CARD_TITLE)).message_thread_id
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        sent = await tg.send_text(AGENT, "你好", chat_id=GROUP, message_thread_id=thread)
        [reply] = await tg.wait_bot_messages(GROUP, sent["message_id"], message_thread_id=thread, timeout=5)
        assert reply["text"] == "收到：你好" and reply["is_topic_message"]
    finally:
        await dp.stop_polling()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
