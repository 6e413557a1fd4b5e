"""The desk's people end to end (both frameworks, SQLite): a supervisor adds and removes agents in the
desk group (/agents) and the desk obeys the database at once; an agent may not; /ban and /mute silence a
case's customer (one polite notice, nothing else happens); /id tells a group's admins the ids config needs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from dialogs.clock import utcnow
from dialogs.domain import CaseStatus
from storage.models import RestrictionRow, StaffEventRow
from tests.e2e import test_desk_actions
from tests.e2e.conftest import Control, texts
from tests.e2e.test_case_aftercare import eventually, file_case, stored
from tests.e2e.test_desk_actions import (
    AGENT,
    AGENT2,
    DESK,
    EN,
    STRANGER,
    SUPER,
    XIAOMING,
    ZH,
    Desk,
    has,
    on_the_desk,
)

GENERAL = 1
# The desk's fixtures, shared with the desk's action tests.
desk_factory, desk = test_desk_actions.desk_factory, test_desk_actions.desk


async def general(control: Control, after: int = 0) -> str:
    """What the bot said in the desk's General topic after message `after`."""
    said = await control.get("chat", chat_id=DESK, message_thread_id=GENERAL)
    return texts([m for m in said if m["from_bot"] and m["message_id"] > after])


async def last_id(control: Control, chat_id: int = DESK) -> int:
    return max([m["message_id"] for m in await control.get("chat", chat_id=chat_id)] or [0])


async def test_a_supervisor_adds_an_agent_in_the_desk_who_can_then_take_a_case(desk: Desk, customer) -> None:
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    assert await desk.stranger.press(card, label=ZH("dk.btn.take")) == ZH("desk.refused")
    mark = await last_id(desk.control)
    await desk.supervisor.send(f"/agents add {STRANGER} 小新")
    assert ZH("desk.staff_added", user=str(STRANGER), alias="小新") in await general(desk.control, mark)
    assert await desk.stranger.press(card, label=ZH("dk.btn.take")) == ZH("desk.you_took", case=case_no)
    assert (await desk.item(case_no)).owner_id == STRANGER
    async with desk.bot.running.database.uow() as uow:
        changes = (await uow.session.execute(  # type: ignore[attr-defined]
            select(StaffEventRow.user_id, StaffEventRow.action, StaffEventRow.by)
            .where(StaffEventRow.action == "add"))).all()
    assert [tuple(r) for r in changes] == [(STRANGER, "add", f"agent:{SUPER}")]


async def test_a_person_added_by_replying_to_their_message_is_an_agent(desk: Desk) -> None:
    said = await desk.stranger.send("我是新同事")
    sent = await desk.control.post("send_text", user_id=SUPER, chat_id=DESK, text="/agents add",
                                   reply_to_message_id=said["message_id"])
    await desk.control.wait(sent["update_id"])
    async with desk.bot.running.database.uow() as uow:
        members = {m.user_id: m.role for m in await uow.staff.members()}
    assert members[STRANGER] == "agent"


async def test_a_removed_agent_can_no_longer_take_a_case(desk: Desk, customer) -> None:
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    mark = await last_id(desk.control)
    await desk.supervisor.send(f"/agents remove {AGENT2}")
    assert ZH("desk.staff_removed", user=str(AGENT2)) in await general(desk.control, mark)
    assert await desk.agent2.press(card, label=ZH("dk.btn.take")) == ZH("desk.refused")
    assert (await desk.item(case_no)).owner_id is None
    listed = await desk.supervisor.private("/queue")  # still an agent: the private desk commands answer
    assert listed and ZH("desk.refused") not in texts(listed)


async def test_an_agents_agents_add_is_refused_recorded_and_changes_nothing(desk: Desk) -> None:
    mark = await last_id(desk.control)
    await desk.agent.send(f"/agents add {STRANGER} supervisor")
    assert ZH("desk.staff_refused") in await general(desk.control, mark)
    async with desk.bot.running.database.uow() as uow:
        assert STRANGER not in {m.user_id for m in await uow.staff.members()}
    assert (AGENT, "agents_add", None, False) in await desk.audit()


async def test_agents_lists_the_staff_with_their_aliases(desk: Desk) -> None:
    mark = await last_id(desk.control)
    await desk.agent.send("/agents")
    listed = await general(desk.control, mark)
    assert ZH("desk.staff_line", user=str(AGENT), alias="小王", role=ZH("desk.staff_agent")) in listed
    assert ZH("desk.staff_line", user=str(SUPER), alias="客服3号", role=ZH("desk.staff_supervisor")) in listed


async def _history(desk: Desk, case_no: str) -> list[tuple[str, str]]:
    async with desk.bot.running.database.uow() as uow:
        return [(r.actor, r.note) for r in await uow.desk.history(case_no, limit=50)]


async def test_a_banned_customer_is_told_once_and_nothing_else_happens(desk: Desk, customer) -> None:
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await eventually(c, has("📋"))  # the relay's status card is out: what follows is the ban's doing
    await c.read()
    await desk.agent.send("/ban 辱骂客服", topic)
    await desk.seen_in_topic(case_no, has(ZH("desk.moderation_banned", case=case_no)))
    assert (f"agent:{AGENT}", "ban: 辱骂客服") in await _history(desk, case_no)  # the card says it in words

    assert texts(await c.say("/start")) == ZH("moderation.banned")  # once, in the customer's language
    assert await c.say("退款！") == []  # and then silence
    assert await c.say("/agent") == []
    assert (await stored(desk.bot, case_no)).status is CaseStatus.SUBMITTED
    assert (await desk.item(case_no)).owner_id is None

    await desk.agent.send("/unban", topic)
    await desk.seen_in_topic(case_no, has(ZH("desk.moderation_lifted", case=case_no)))
    assert await c.say("/start")  # answered again


async def test_a_mute_tells_the_customer_when_it_ends_and_then_expires(desk: Desk, customer) -> None:
    c = await customer(XIAOMING, language_code="en")
    case_no = await on_the_desk_en(c)
    topic = await desk.topic(case_no)
    await eventually(c, has("📋"))
    await c.read()
    await desk.agent.send("/mute 2", topic)
    await desk.seen_in_topic(case_no, has(ZH("desk.moderation_muted", case=case_no, hours="2")))
    notice = texts(await c.say("hello?"))
    assert notice.startswith(EN("moderation.muted", until="X").split("X")[0])
    assert await c.say("hello again") == []

    async with desk.bot.running.database.uow() as uow:  # two hours later
        await uow.session.execute(update(RestrictionRow).values(until=utcnow() - timedelta(seconds=1)))  # type: ignore[attr-defined]
        await uow.commit()
    answered = texts(await c.say("/status"))
    assert case_no in answered and "muted" not in answered


async def on_the_desk_en(c: Any) -> str:
    return await file_case(c, EN)


async def test_a_bad_mute_length_gets_the_usage_and_mutes_nobody(desk: Desk, customer) -> None:
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/mute forever", topic)
    await desk.seen_in_topic(case_no, has(ZH("desk.moderation_mute_usage", max="720")))
    assert await c.say("/status")  # still answered


GROUP = -1001555000111


async def test_id_in_a_group_answers_its_admin_and_ignores_a_member(desk: Desk) -> None:
    await desk.control.post("groups", title="运营群", chat_id=GROUP, is_forum=False, creator_id=SUPER,
                            members=[{"user_id": STRANGER, "status": "member"}])
    await desk.stranger.send("/id", chat=GROUP)
    assert [m for m in await desk.control.get("chat", chat_id=GROUP) if m["from_bot"]] == []
    await desk.supervisor.send("/id", chat=GROUP)
    said = texts([m for m in await desk.control.get("chat", chat_id=GROUP) if m["from_bot"]])
    assert said == ZH("desk.id_answer", chat=str(GROUP), user=str(SUPER), forum=ZH("desk.id_forum_no"))


async def test_id_in_the_desk_answers_an_agent_and_says_it_is_a_forum(desk: Desk) -> None:
    mark = await last_id(desk.control)
    await desk.agent.send("/id")
    assert ZH("desk.id_answer", chat=str(DESK), user=str(AGENT), forum=ZH("desk.id_forum_yes")) in \
        await general(desk.control, mark)
