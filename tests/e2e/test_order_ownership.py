"""Who may open an order: its bound account at once; phone digits only for an unbound order; failed
guesses counted per order number as well as per chat, so many accounts get no more guesses than one."""

from __future__ import annotations

import re

from dialogs.texts import Texts
from tests.e2e.conftest import buttons, texts

ZH, EN = Texts("zh_CN"), Texts("en")
XIAOMING, ALICE, XIAOHONG, STRANGER = 10001, 10002, 10003, 10009
BOUND = "KM20261101000001"  # 小明's, phone 13800001234
UNBOUND = "KM20261101000015"  # nobody's account; phone 13700009999
EXAMPLE = "KM20261124000001"


async def guess(c, number: str, digits: str) -> str:  # type: ignore[no-untyped-def]
    """Type an order number and, when asked, the digits; the bot's last answer."""
    asked = texts(await c.say(number))
    if asked not in (ZH("ask_phone"), EN("ask_phone")):
        return asked
    return texts(await c.say(digits))


def paused(t: Texts, said: str) -> bool:
    pattern = re.escape(t("cooling_down", minutes="§", until="§")).replace("§", ".+")
    return re.fullmatch(pattern, said) is not None


async def test_a_stranger_with_the_right_digits_cannot_open_a_bound_order(bot, customer):
    c = await customer(ALICE, "en")
    assert texts(await c.say(BOUND)) == EN("ask_phone")
    assert texts(await c.say("1234")) == EN("order_not_found", example=EXAMPLE, left=4)


async def test_three_accounts_guessing_one_order_are_paused_together(bot, customer):
    xiaoming, alice, stranger = [await customer(u, "en") for u in (XIAOMING, ALICE, STRANGER)]
    # Five failures on one number from three chats: each chat alone is far below the limit of five.
    assert await guess(xiaoming, UNBOUND, "0000") == EN("order_not_found", example=EXAMPLE, left=4)
    assert await guess(alice, UNBOUND, "0001") == EN("order_not_found", example=EXAMPLE, left=3)
    await guess(stranger, UNBOUND, "0002")
    await guess(xiaoming, UNBOUND, "0003")
    assert paused(EN, await guess(alice, UNBOUND, "0004"))
    # Now the number is paused for everyone: no digits are even asked for, the right ones included.
    assert paused(EN, texts(await stranger.say(UNBOUND)))
    xiaohong = await customer(XIAOHONG)
    assert paused(ZH, texts(await xiaohong.say(UNBOUND)))


async def test_a_paused_number_leaves_the_accounts_other_orders_open(bot, customer):
    guessers = [await customer(u) for u in (XIAOMING, ALICE, STRANGER)]
    for i in range(5):
        await guess(guessers[i % 3], UNBOUND, "0000")
    xiaohong = await customer(XIAOHONG)
    assert paused(ZH, texts(await xiaohong.say(UNBOUND)))
    assert texts(await xiaohong.say("KM20261101000014")) == ZH("ask_phone")
    assert "KM20261101000014" in texts(await xiaohong.say("9999"))


async def test_a_paused_unknown_number_reads_like_a_paused_order(bot, customer):
    guessers = [await customer(u, "en") for u in (XIAOMING, ALICE, STRANGER)]
    for number in (UNBOUND, "KM29991231999999"):
        for i in range(5):
            await guess(guessers[i % 3], number, "0000")
    late = await customer(XIAOHONG, "en")
    said = [texts(await late.say(number)) for number in (UNBOUND, "KM29991231999999")]
    assert all(paused(EN, s) for s in said)
    assert re.sub(r"\d", "#", said[0]) == re.sub(r"\d", "#", said[1])


async def test_the_owner_opens_a_bound_order_at_once_even_while_strangers_are_paused_on_it(bot, customer):
    strangers = [await customer(u) for u in (ALICE, XIAOHONG, STRANGER)]
    for i in range(5):
        await guess(strangers[i % 3], BOUND, "1234")
    assert paused(ZH, texts(await strangers[0].say(BOUND)))
    owner = await customer(XIAOMING)
    shown = await owner.say(BOUND)
    assert BOUND in texts(shown) and ZH("reason.card_invalid") in buttons(shown)


async def test_an_unbound_order_still_opens_with_the_right_digits_after_some_wrong_guesses(bot, customer):
    stranger = await customer(STRANGER)
    for _ in range(3):
        await guess(stranger, UNBOUND, "0000")
    xiaohong = await customer(XIAOHONG)
    assert texts(await xiaohong.say(UNBOUND)) == ZH("ask_phone")
    shown = await xiaohong.say("9999")
    assert UNBOUND in texts(shown) and ZH("reason.card_invalid") in buttons(shown)
