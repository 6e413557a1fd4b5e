"""The desk's people and moderation in the core, on the in-memory unit of work: what /agents, /ban and
/mute change, and what a banned or muted customer hears (tests/e2e/test_desk_staff.py adds Telegram)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dialogs.io import EventKind
from dialogs.service import RefundService
from dialogs.texts import Texts
from tests.dialogs import test_desk as d
from tests.fakes import FakeDatabase

ZH, EN = Texts("zh_CN"), Texts("en")


@pytest.fixture
def clock() -> d.Clock:
    return d.Clock()


@pytest.fixture
def service(database: FakeDatabase, clock: d.Clock) -> RefundService:
    return RefundService(database.uow, d.SETTINGS, clock=clock)


async def topic_texts(database: FakeDatabase) -> list[str]:
    return await d.texts_queued(database)


async def test_a_banned_customers_button_press_gets_the_notice_as_its_toast_once(service, database) -> None:
    await d.put_case(database)
    await service.handle(d.cmd(d.AGENT, "ban", "spam"))
    first = await service.handle(d.customer(EventKind.BUTTON, "c.R20261124-0001.withdraw"))
    assert (first.toast, first.replies) == (ZH("moderation.banned"), ())
    again = await service.handle(d.customer(EventKind.BUTTON, "c.R20261124-0001.withdraw"))
    assert (again.toast, again.replies) == (None, ())


async def test_a_ban_notice_comes_again_after_a_day_and_not_before(service, database, clock) -> None:
    await d.put_case(database)
    await service.handle(d.cmd(d.AGENT, "ban"))
    assert [r.text for r in (await service.handle(d.customer(text="hi"))).replies] == [ZH("moderation.banned")]
    clock.now += timedelta(hours=23)
    assert (await service.handle(d.customer(text="hi"))).replies == ()
    clock.now += timedelta(hours=1)
    assert [r.text for r in (await service.handle(d.customer(text="hi"))).replies] == [ZH("moderation.banned")]


async def test_a_mute_is_told_once_and_a_new_mute_is_told_again(service, database, clock) -> None:
    await d.put_case(database)
    await service.handle(d.cmd(d.AGENT, "mute", "1.5"))
    told = (await service.handle(d.customer(text="hi"))).replies
    assert [r.text for r in told] == [ZH("moderation.muted", until="2026-11-24 12:00")]  # T0: 10:30 in Shanghai
    clock.now += timedelta(hours=1)
    assert (await service.handle(d.customer(text="hi"))).replies == ()
    await service.handle(d.cmd(d.AGENT, "mute", "3"))
    assert len((await service.handle(d.customer(text="hi"))).replies) == 1
    said = [(p["text_key"], p["params"]) for _, _, p in await d.outbox(database, "desk_text")]
    assert said == [("desk.moderation_muted", {"case": d.CASE, "hours": "1.5"}),
                    ("desk.moderation_muted", {"case": d.CASE, "hours": "3"})]


@pytest.mark.parametrize("length", ["", "0", "-1", "721", "1.25", "abc", "nan", "inf"])
async def test_a_bad_mute_length_gets_the_usage_and_mutes_nobody(service, database, length) -> None:
    await d.put_case(database)
    await service.handle(d.cmd(d.AGENT, "mute", length))
    assert await topic_texts(database) == ["desk.moderation_mute_usage"]
    assert database.tables.restrictions == {}


async def test_ban_outside_a_case_topic_says_where_to_send_it(service, database) -> None:
    await d.put_case(database)
    shown = await service.handle(d.cmd(d.AGENT, "ban", thread=None))
    assert [r.text for r in shown.replies] == [ZH("desk.moderation_in_topic", command="ban")]
    assert database.tables.restrictions == {}


async def test_a_stranger_cannot_ban_and_is_recorded(service, database) -> None:
    await d.put_case(database)
    await service.handle(d.cmd(d.STRANGER, "ban"))
    assert database.tables.restrictions == {}
    assert (d.STRANGER, "ban", False) in await d.audit(database)


async def test_unban_of_a_customer_who_is_not_banned_says_so(service, database) -> None:
    await d.put_case(database)
    await service.handle(d.cmd(d.AGENT, "unban"))
    assert await topic_texts(database) == ["desk.moderation_none"]


async def test_a_supervisor_cannot_remove_themselves(service, database) -> None:
    shown = await service.handle(d.cmd(d.SUPER, "agents", f"remove {d.SUPER}", thread=None))
    assert [r.text for r in shown.replies] == [ZH("desk.staff_not_yourself")]
    async with database.uow() as uow:
        assert database.tables.staff_events == [] and await uow.staff.members() == []


async def test_a_removed_agents_private_desk_command_goes_to_the_customer_dialog(service, database) -> None:
    before = await service.handle(d.cmd(d.AGENT2, "queue", chat=d.AGENT2))
    assert [r.text for r in before.replies] == [ZH("desk.queue_empty")]
    await service.handle(d.cmd(d.SUPER, "agents", f"remove {d.AGENT2}", thread=None))
    after = await service.handle(d.cmd(d.AGENT2, "queue", chat=d.AGENT2))
    assert ZH("desk.queue_empty") not in [r.text for r in after.replies]
    assert (d.AGENT2, "queue", False) not in await d.audit(database)  # not a refused desk attempt: not the desk's


async def test_an_alias_longer_than_64_characters_is_refused(service, database) -> None:
    shown = await service.handle(d.cmd(d.SUPER, "agents", f"add 8001 {'名' * 65}", thread=None))
    assert [r.text for r in shown.replies] == [ZH("desk.staff_alias_long", max="64")]
    assert 8001 not in database.tables.staff
