"""Issue 16's story end to end: the running bot reads a dujiaoka shop's own MariaDB (`[orders] source =
"dujiaoka"`, `proof = "contact_password"`) and customers prove its orders the shop's way, through the
emulator on both frameworks: one by the checkout e-mail + 查询密码, one by the signed link behind the shop's
申请退款 button (nothing typed at all), and a third guesses the password wrong until the chat and the
order are paused. Nothing is imported into refundbot first: every order comes from the shop's tables."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from dialogs.proof import link_parameter
from dialogs.texts import Texts
from tests.e2e.conftest import buttons, make_config, texts
from tests.shops.support import run_sql

ZH, EN = Texts("zh_CN"), Texts("en")
ORDER = "7DWUQ9G1Z5XK2M4A"  # tests/shops/dujiaoka_rows.sql: completed, two 卡密, Buyer@Example.com / qwe123
EMAIL, PASSWORD = "buyer@example.com", "qwe123"
SECRET = "e2e-dujiaoka-link-secret"
EXAMPLE = "6HX1Z2YQ4T8KBN3P"  # the dujiaoka number example bot.config gives when number_pattern is left out


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "dujiaoka_schema.sql", "dujiaoka_rows.sql")
    return mysql_url


async def dujiaoka_bot(start_bot: Any, tmp_path: Any, url: str) -> Any:
    config = make_config(tmp_path)
    orders = config.orders.model_validate({"source": "dujiaoka", "proof": "contact_password",
                                           "link_secret": SECRET, "dujiaoka": {"url": url}})
    return await start_bot(config.model_copy(update={"orders": orders}), demo=False)


async def test_a_customer_opens_a_dujiaoka_order_by_email_and_query_password(start_bot, customer, shop_url,
                                                                             tmp_path):
    await dujiaoka_bot(start_bot, tmp_path, shop_url)
    c = await customer(40001)
    assert texts(await c.say(ORDER.lower())) == ZH("proof.ask_contact")
    assert texts(await c.say("Buyer@Example.COM")) == ZH("proof.ask_password")
    shown = await c.say(PASSWORD)
    assert ORDER in texts(shown) and ZH("reason.card_invalid") in buttons(shown)
    assert "STEAM-AAAA-BBBB-CCCC" not in "\n".join(c.transcript)  # the delivered 卡密 never in clear


async def test_a_customer_opens_a_dujiaoka_order_by_the_shops_signed_link(start_bot, customer, shop_url, tmp_path):
    bot = await dujiaoka_bot(start_bot, tmp_path, shop_url)
    c = await customer(40002, "en")
    shown = await c.say("/start " + link_parameter(SECRET, ORDER, int(time.time() + 3600)))
    assert ORDER in texts(shown) and EN("reason.card_invalid") in buttons(shown)
    assert EN("proof.ask_contact") not in c.transcript
    async with bot.running.database.uow() as uow:  # read from the shop on the link alone
        local = await uow.orders.get(ORDER)
    assert local is not None and local.buyer_contact == "Buyer@Example.com"


async def test_wrong_passwords_pause_the_chat_and_the_order_after_the_limit(start_bot, customer, shop_url,
                                                                            tmp_path):
    await dujiaoka_bot(start_bot, tmp_path, shop_url)
    c = await customer(40009)
    said = []
    for _ in range(5):
        await c.say(ORDER)
        await c.say(EMAIL)
        said.append(texts(await c.say("qwe124")))
    assert said[0] == ZH("proof.not_found", example=EXAMPLE, left=4)
    pause = re.escape(ZH("cooling_down", minutes="§", until="§")).replace("§", ".+")
    assert re.fullmatch(pause, said[-1])
    owner = await customer(40001)  # the number is paused too, whatever the chat: the guesser cannot go on elsewhere
    assert re.fullmatch(pause, texts(await owner.say(ORDER)))
