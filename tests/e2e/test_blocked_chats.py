"""A 403 is not forever: a customer who blocked the bot and comes back (unblocks, writes again) gets what
was held, in order; while blocked, their needs_info case does not close for a silence that was not
theirs; the desk group that lost the bot gets its topics and cards once the bot is added back, and the
supervisors hear of both. Real bot (both frameworks), real relay, the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.workers.timers import TimerSweeper
from dialogs.domain import CaseStatus, TimerKind
from sandbox import BOT_USER_ID
from tests.e2e.conftest import Control, Customer, make_config, texts
from tests.e2e.test_case_aftercare import ZH, card_of, eventually, file_case, move, stored
from tests.e2e.test_desk_actions import DESK, SUPER, SUPER2, Desk, desk, desk_factory, has, until  # noqa: F401

XIAOMING = 10001
ASKED = "请提供充值记录截图"


async def blocks(c: Customer, blocked: bool = True, *, quiet: bool = False) -> None:
    """The customer blocks (unblocks) the bot; unless quiet, the bot hears of it (my_chat_member)."""
    answer = await c.control.post("block", user_id=c.user_id, blocked=blocked, quiet=quiet)
    if answer["update_id"] is not None:
        await c.control.wait(answer["update_id"])


async def forbidden(control: Control, chat_id: int) -> int:
    return len([c for c in await control.get("calls") if c["status"] == 403
                and str(c["params"].get("chat_id")) == str(chat_id)])


async def asked_while_blocked(bot, c: Customer, *, quiet: bool) -> str:  # type: ignore[no-untyped-def]
    case_no = await file_case(c, ZH)
    await eventually(c, lambda m: card_of(m, case_no) is not None)
    await blocks(c, quiet=quiet)
    await move(bot, case_no, "start_review", "ask_info", note=ASKED)
    return case_no


async def test_news_held_by_a_403_reaches_the_customer_who_writes_again(bot, customer):
    c = await customer(XIAOMING)
    case_no = await asked_while_blocked(bot, c, quiet=True)  # the bot learns of the block from a 403

    async def refused() -> bool:
        return await forbidden(c.control, c.user_id) > 0
    await until(refused)
    await blocks(c, blocked=False, quiet=True)
    shown = await c.say("/status")  # writing again reopens the chat; /status answers as ever
    assert case_no in texts(shown) and ZH("status.needs_info") in texts(shown)
    messages = await eventually(c, lambda m: any(ASKED in (x.get("text") or "") for x in m))
    assert ZH("status.needs_info") in (card_of(messages, case_no) or {}).get("text", "")
    assert await forbidden(c.control, c.user_id) == 1  # held, never retried blindly


async def test_a_customer_who_unblocks_the_bot_gets_the_held_news_without_writing(bot, customer):
    c = await customer(XIAOMING)
    case_no = await asked_while_blocked(bot, c, quiet=False)  # my_chat_member: kicked
    await blocks(c, blocked=False)  # my_chat_member: member
    messages = await eventually(c, lambda m: any(ASKED in (x.get("text") or "") for x in m))
    assert ZH("status.needs_info") in (card_of(messages, case_no) or {}).get("text", "")
    assert await forbidden(c.control, c.user_id) == 0  # told by Telegram: nothing was even tried


async def test_a_needs_info_case_does_not_close_for_silence_while_the_chat_is_blocked(bot, customer):
    c = await customer(XIAOMING)
    case_no = await asked_while_blocked(bot, c, quiet=False)
    sweeper = TimerSweeper(bot.running.database.uow, bot.running.service.workflow)
    later = datetime.now(UTC) + timedelta(days=8)
    await sweeper.run_once(later)  # the reminders and the close came due while blocked
    assert (await stored(bot, case_no)).status is CaseStatus.NEEDS_INFO

    reopened = datetime.now(UTC)
    await blocks(c, blocked=False)
    async with bot.running.database.uow() as uow:
        pending = dict(await uow.timers.pending(case_no))
    close = pending[TimerKind.INFO_CLOSE]
    assert close >= reopened + timedelta(days=7)  # a full week from when the request could arrive
    await sweeper.run_once(close + timedelta(seconds=1))
    assert (await stored(bot, case_no)).status is CaseStatus.CLOSED


async def test_a_desk_that_lost_the_bot_gets_its_topics_when_the_bot_is_back_and_supervisors_hear(
        desk: Desk, customer):  # noqa: F811 - the fixture imported above
    control = desk.control
    await control.post("members", chat_id=DESK, user_id=BOT_USER_ID, status="kicked", by_user_id=SUPER)
    for supervisor in (SUPER, SUPER2):
        await until(lambda s=supervisor: _said(control, s, ZH("desk.unreachable", reason="my_chat_member: kicked")))
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)  # its topic and card are held
    assert (await desk.item(case_no)).thread_id is None

    await control.post("members", chat_id=DESK, user_id=BOT_USER_ID, status="administrator", by_user_id=SUPER)
    await desk.seen_in_topic(case_no, has(case_no))
    for supervisor in (SUPER, SUPER2):
        await until(lambda s=supervisor: _said(control, s, ZH("desk.reachable")))
        alerts = [m for m in await control.messages(supervisor) if "⚠️" in (m.get("text") or "")]
        assert len(alerts) == 1  # once, not per held row


async def _said(control: Control, chat_id: int, text: str) -> bool:
    return any(text in (m.get("text") or "") for m in await control.messages(chat_id))


async def test_a_webhook_bot_hears_the_unblock_and_delivers_what_was_held(start_bot, customer, control, tmp_path):
    config = make_config(tmp_path, mode="webhook", webhook_secret="s3cret-token", listen_port=0)
    bot = await start_bot(config)
    c = await customer(XIAOMING)
    case_no = await asked_while_blocked(bot, c, quiet=False)
    assert "my_chat_member" in (await control.get("state"))["webhook"]["allowed_updates"]
    await blocks(c, blocked=False)
    messages = await eventually(c, lambda m: any(ASKED in (x.get("text") or "") for x in m))
    assert ZH("status.needs_info") in (card_of(messages, case_no) or {}).get("text", "")


async def test_a_polling_bot_asks_telegram_for_my_chat_member(bot, customer, control):
    await (await customer(XIAOMING)).say("/help")  # the bot is polling
    assert "my_chat_member" in (await control.get("state"))["allowed_updates"]
