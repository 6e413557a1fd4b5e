from __future__ import annotations

import asyncio

import pytest

from dialogs.domain import Conversation
from dialogs.io import Button, Reply
from dialogs.ports import ConcurrentUpdate
from storage.uow import Database


async def _save_new(database: Database, chat_id: int = 7) -> Conversation:
    conversation = Conversation(chat_id=chat_id, user_id=70, locale="zh", step="ask_order", data={"n": 1})
    async with database.uow() as uow:
        await uow.conversations.save(conversation)
        await uow.commit()
    return conversation


async def test_load_of_an_unknown_chat_is_none(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.conversations.load(7) is None


async def test_saving_a_new_conversation_stores_it_at_version_1(database: Database) -> None:
    saved = await _save_new(database)
    assert saved.version == 1
    async with database.uow() as uow:
        loaded = await uow.conversations.load(7)
    assert loaded == Conversation(chat_id=7, user_id=70, locale="zh", step="ask_order", data={"n": 1}, version=1)


async def test_saving_a_loaded_conversation_bumps_its_version(database: Database) -> None:
    await _save_new(database)
    async with database.uow() as uow:
        conversation = await uow.conversations.load(7)
        assert conversation is not None
        conversation.step = "ask_reason"
        conversation.data = {"order_no": "A1001", "nested": {"list": [1, "二"]}}
        await uow.conversations.save(conversation)
        await uow.commit()
    assert conversation.version == 2
    async with database.uow() as uow:
        assert await uow.conversations.load(7) == conversation


async def test_saving_a_stale_version_raises_concurrent_update(database: Database) -> None:
    await _save_new(database)
    async with database.uow() as uow:
        stale = await uow.conversations.load(7)
    async with database.uow() as uow:
        fresh = await uow.conversations.load(7)
        assert fresh is not None
        await uow.conversations.save(fresh)
        await uow.commit()
    assert stale is not None
    async with database.uow() as uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.conversations.save(stale)
    assert stale.version == 1  # unchanged: the caller reloads and retries


async def test_creating_a_conversation_that_already_exists_raises_concurrent_update(database: Database) -> None:
    await _save_new(database)
    async with database.uow() as uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.conversations.save(Conversation(chat_id=7, user_id=70, locale="en"))


async def test_load_waits_for_the_unit_of_work_holding_the_chat(database: Database) -> None:
    # The lock taken by load() serialises two updates of one chat instead of failing one of them.
    await _save_new(database)
    loaded = asyncio.Event()

    async def first() -> None:
        async with database.uow() as uow:
            conversation = await uow.conversations.load(7)
            loaded.set()
            await asyncio.sleep(0.3)
            assert conversation is not None
            conversation.step = "first"
            await uow.conversations.save(conversation)
            await uow.commit()

    async def second() -> Conversation | None:
        await loaded.wait()
        async with database.uow() as uow:
            return await uow.conversations.load(7)

    _, seen = await asyncio.gather(first(), second())
    assert seen is not None and (seen.step, seen.version) == ("first", 2)


PROMPT = Reply("选择原因", ((Button("卡密无效", "n1.r.card_invalid"),), (Button("取消", "n1.cancel"),)))
FILED = Reply("已提交")


async def _save_unconfirmed(database: Database, update_id: int, *replies: Reply) -> None:
    async with database.uow() as uow:
        conversation = await uow.conversations.load(7)
        assert conversation is not None
        conversation.unconfirmed, conversation.unconfirmed_update = replies, update_id
        await uow.conversations.save(conversation)
        await uow.commit()


async def _unconfirmed(database: Database) -> tuple[tuple[Reply, ...], int | None]:
    async with database.uow() as uow:
        conversation = await uow.conversations.load(7)
    assert conversation is not None
    return conversation.unconfirmed, conversation.unconfirmed_update


async def test_unconfirmed_replies_are_stored_with_their_buttons_and_update(database: Database) -> None:
    await _save_new(database)
    await _save_unconfirmed(database, 501, PROMPT, FILED)
    assert await _unconfirmed(database) == ((PROMPT, FILED), 501)


async def test_settling_all_replies_clears_them_without_a_new_version(database: Database) -> None:
    await _save_new(database)
    await _save_unconfirmed(database, 501, PROMPT, FILED)
    async with database.uow() as uow:
        await uow.conversations.settle_replies(7, 501, ())
        await uow.commit()
    assert await _unconfirmed(database) == ((), None)
    async with database.uow() as uow:
        conversation = await uow.conversations.load(7)
    assert conversation is not None and conversation.version == 2  # as the last save left it


async def test_settling_keeps_the_replies_not_sent(database: Database) -> None:
    await _save_new(database)
    await _save_unconfirmed(database, 501, PROMPT, FILED)
    async with database.uow() as uow:
        await uow.conversations.settle_replies(7, 501, (FILED,))
        await uow.commit()
    assert await _unconfirmed(database) == ((FILED,), 501)


async def test_settling_an_older_update_leaves_a_newer_updates_replies(database: Database) -> None:
    await _save_new(database)
    await _save_unconfirmed(database, 502, FILED)
    async with database.uow() as uow:
        await uow.conversations.settle_replies(7, 501, ())
        await uow.commit()
    assert await _unconfirmed(database) == ((FILED,), 502)
