"""Card-shop customers prove an order the shop's way, through the real bot on the emulator (both
frameworks): the checkout e-mail + 查询密码, or the signed link behind the shop's 申请退款 button; wrong
answers and bad links counted per chat and per order, and never a hint of whether an order exists."""

from __future__ import annotations

import re
import time
from pathlib import Path

from bot.config import OrdersConfig
from dialogs.proof import link_parameter, secret_digest
from dialogs.texts import Texts
from tests.e2e.conftest import buttons, make_config, texts
from tests.storage.factories import make_order

ZH, EN = Texts("zh_CN"), Texts("en")
SECRET = "e2e-shop-link-secret"
EXAMPLE = "8RT2KQ1WZ3M4N5P6"  # dujiaoka's order_sn: 16 upper-case letters and digits
ORDER, OTHER = "8RT2KQ1WZ3M4N5P7", "8RT2KQ1WZ3M4N5P8"
MISSING = "ZZZZZZZZZZZZZZZZ"
EMAIL, PASSWORD = "buyer@example.com", "x7k2p9"
BUYER, STRANGER = 30001, 30009


async def shop_bot(start_bot, tmp_path: Path):  # type: ignore[no-untyped-def]
    orders = OrdersConfig(number_pattern=r"[A-Z0-9]{16}", number_example=EXAMPLE, proof="contact_password",
                          link_secret=SECRET)
    bot = await start_bot(make_config(tmp_path).model_copy(update={"orders": orders}), demo=False)
    async with bot.running.database.uow() as uow:
        for number in (ORDER, OTHER):
            await uow.orders.upsert(make_order(number, buyer_telegram_id=None, buyer_contact=EMAIL,
                                               query_secret=secret_digest(number, PASSWORD)))
        await uow.commit()
    return bot


def link(number: str, expires_in: float = 3600, secret: str = SECRET) -> str:
    return "/start " + link_parameter(secret, number, int(time.time() + expires_in))


async def tally(bot, number: str) -> int:  # type: ignore[no-untyped-def]
    async with bot.running.database.uow() as uow:
        found = await uow.lookups.get(number)
    return found.failures if found is not None else 0


async def chat_failures(bot, chat_id: int) -> int:  # type: ignore[no-untyped-def]
    async with bot.running.database.uow() as uow:
        conv = await uow.conversations.load(chat_id)
    return len(conv.data.get("failures", [])) if conv is not None else 0


def paused(t: Texts, said: str) -> bool:
    pattern = re.escape(t("cooling_down", minutes="§", until="§")).replace("§", ".+")
    return re.fullmatch(pattern, said) is not None


async def test_a_customer_opens_a_shop_order_by_email_and_query_password(start_bot, tmp_path, customer):
    await shop_bot(start_bot, tmp_path)
    c = await customer(BUYER)
    assert texts(await c.say(ORDER.lower())) == ZH("proof.ask_contact")
    assert texts(await c.say("Buyer@Example.COM")) == ZH("proof.ask_password")
    shown = await c.say(PASSWORD)
    assert ORDER in texts(shown) and ZH("reason.card_invalid") in buttons(shown)


async def test_a_customer_opens_a_shop_order_by_the_signed_link_with_no_questions(start_bot, tmp_path, customer):
    await shop_bot(start_bot, tmp_path)
    c = await customer(BUYER, "en")
    shown = await c.say(link(ORDER))
    assert ORDER in texts(shown) and EN("reason.card_invalid") in buttons(shown)
    assert EN("proof.ask_contact") not in c.transcript and EN("ask_phone") not in c.transcript


async def test_wrong_passwords_are_counted_and_pause_the_chat_after_the_limit(start_bot, tmp_path, customer):
    bot = await shop_bot(start_bot, tmp_path)
    c = await customer(STRANGER)
    said = []
    for _ in range(5):
        await c.say(ORDER)
        await c.say(EMAIL)
        said.append(texts(await c.say("guess")))
    assert said[:2] == [ZH("proof.not_found", example=EXAMPLE, left=4), ZH("proof.not_found", example=EXAMPLE, left=3)]
    assert paused(ZH, said[-1])
    assert await tally(bot, ORDER) == 5 and await chat_failures(bot, STRANGER) == 5
    assert paused(ZH, texts(await c.say(OTHER)))  # the chat is paused, whatever the number
    assert paused(ZH, texts(await (await customer(BUYER)).say(ORDER)))  # and the number, whatever the chat


async def test_an_expired_and_a_forged_link_are_refused_and_counted(start_bot, tmp_path, customer):
    bot = await shop_bot(start_bot, tmp_path)
    c = await customer(STRANGER, "en")
    assert texts(await c.say(link(ORDER, expires_in=-60))) == EN("proof.link_expired")
    assert texts(await c.say(link(OTHER, secret="a guessed secret"))) == EN("proof.link_expired")
    assert await tally(bot, ORDER) == 1 and await tally(bot, OTHER) == 1
    assert await chat_failures(bot, STRANGER) == 2
    shown = await c.say(link(ORDER))  # the shop's fresh link still opens it
    assert ORDER in texts(shown)


async def test_a_stranger_with_a_wrong_email_reads_the_same_as_for_a_missing_order(start_bot, tmp_path, customer):
    await shop_bot(start_bot, tmp_path)
    said = []
    for user, number in ((STRANGER, ORDER), (STRANGER + 1, MISSING)):
        c = await customer(user, "en")
        asked = [texts(await c.say(number)), texts(await c.say("someone@example.com"))]
        assert asked == [EN("proof.ask_contact"), EN("proof.ask_password")]
        said.append(texts(await c.say(PASSWORD)))
    assert said[0] == said[1] == EN("proof.not_found", example=EXAMPLE, left=4)
