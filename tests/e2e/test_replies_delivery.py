"""Replies are never silently lost or doubled: a reply Telegram did not take (a long 429, 5xx past the
inline retries, a crash between commit and reply) goes again, with its buttons, before the answer to the
customer's next message or when the update comes again; a send that timed out but went through is not
repeated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.evidence import EvidenceIntake
from bot.inbound import Inbound
from dialogs.io import Event, EventKind
from dialogs.texts import Texts
from tests.e2e.conftest import CASE_NO, Customer, buttons, png_bytes, texts

ZH = Texts("zh_CN")
ORDER = "KM20261101000001"  # bound to the default customer: the order number leads to the reason buttons
REASON = ZH("reason.card_invalid")


async def the_next_text_gets_the_lost_prompt_and_the_case_is_filed(c: Customer) -> None:
    shown = await c.say("在吗？")
    assert REASON in buttons(shown)
    assert ZH("hint.choosing_reason") not in texts(shown)  # never a hint about buttons not shown
    await files_the_case_from_the_reason_buttons(c)


async def files_the_case_from_the_reason_buttons(c: Customer) -> str:
    await c.press(REASON)
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")
    await c.photo(png_bytes("red"))
    await c.press(ZH("btn_done"))
    shown = texts(await c.press(ZH("btn_submit")))
    assert CASE_NO.search(shown), shown
    return shown


def prompts_with_reasons(messages: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [m for m in messages if REASON in buttons([m])]


@pytest.mark.parametrize("fault", [{"error_code": 429, "count": 1, "retry_after": 60},  # not waited out inline
                                   {"error_code": 502, "count": 4}],  # past the inline retries
                         ids=["long_429", "5xx_past_the_retries"])
async def test_a_lost_reply_comes_with_the_next_answer_and_the_case_can_be_filed(bot, customer, control, fault):
    c = await customer()
    await c.say("/refund")
    await control.post("faults", method="sendMessage", chat_id=c.user_id, **fault)
    assert await c.say(ORDER) == []
    await the_next_text_gets_the_lost_prompt_and_the_case_is_filed(c)


async def test_a_reply_refused_while_the_chat_was_blocked_reaches_the_customer_who_writes_again(
        bot, customer, control):
    c = await customer()
    await c.say("/refund")
    await control.post("faults", method="sendMessage", chat_id=c.user_id, error_code=403, count=1)
    assert await c.say(ORDER) == []
    shown = await c.say("在吗？")  # unblocked, and writing again
    assert REASON in buttons(shown)
    assert ZH("hint.choosing_reason") not in texts(shown)


async def test_a_send_that_timed_out_but_went_through_appears_once(bot, customer, control):
    bot.running.runner.sender.request_timeout = 1
    c = await customer()
    await c.say("/refund")
    await control.post("faults", method="sendMessage", chat_id=c.user_id, error_code=0, count=1, delay=2.0,
                       answer_late=True)
    await c.say(ORDER)
    [prompt] = prompts_with_reasons(await control.messages(c.user_id))
    await files_the_case_from_the_reason_buttons(c)
    assert [m["text"] for m in await control.messages(c.user_id)].count(prompt["text"]) == 1


async def test_a_lost_reply_the_customer_has_moved_past_is_not_sent_again(bot, customer, control):
    c = await customer()
    await control.post("faults", method="sendMessage", chat_id=c.user_id, error_code=429, count=1, retry_after=60)
    assert await c.say("/refund") == []  # "send your order number" is lost
    shown = await c.say(ORDER)  # the customer sends it anyway: a new prompt supersedes the lost one
    assert len(shown) == 1 and REASON in buttons(shown)  # the reasons only, not the lost question first


async def crashed_after_commit(bot, c: Customer) -> Event:  # type: ignore[no-untyped-def]
    """The order number handled and committed, and the process gone before the reply was sent."""
    event = Event(update_id=10**12, chat_id=c.user_id, user_id=c.user_id, kind=EventKind.TEXT,
                  at=datetime.now(UTC), text=ORDER, language_code=c.language_code)
    outcome = await bot.running.service.handle(event)
    assert REASON in [b.text for r in outcome.replies for row in r.buttons for b in row]
    return event


async def test_after_a_crash_between_commit_and_reply_a_text_gets_the_prompt_with_its_buttons_not_a_hint(
        bot, customer):
    c = await customer()
    await c.say("/refund")
    await crashed_after_commit(bot, c)
    await the_next_text_gets_the_lost_prompt_and_the_case_is_filed(c)


async def test_after_a_crash_between_commit_and_reply_a_repeat_of_the_update_sends_the_prompt_once(
        bot, customer, tmp_path):
    c = await customer()
    await c.say("/refund")
    event = await crashed_after_commit(bot, c)
    service = bot.running.service
    inbound = Inbound(service, EvidenceIntake(tmp_path, service.settings.policy), bot.running.runner.sender)
    await inbound.handle(event)  # Telegram delivers the update again
    assert REASON in buttons(await c.read())
    await inbound.handle(event)  # and again: the prompt went and is settled
    assert await c.read() == []
    assert texts(await c.say("在吗？")) == ZH("hint.choosing_reason")  # it was shown: a hint is right now


async def test_lost_replies_never_pile_up_behind_real_answers(bot, customer, control):
    """A lost prompt goes again only in place of a hint: a real answer supersedes it. (Three workers
    answering one chat's 20 rapid messages once sent 210 replies, each update re-sending the pile.)"""
    c = await customer(10003)  # 小红: her unbound order asks for phone digits
    await c.say("/refund")
    await control.post("faults", method="sendMessage", chat_id=c.user_id, error_code=429, count=1, retry_after=60)
    assert await c.say("KM20261101000015") == []  # the digits prompt is lost
    for wrong in ("12", "345"):
        assert texts(await c.say(wrong)) == ZH("phone_format")  # one answer each, nothing piled before it
