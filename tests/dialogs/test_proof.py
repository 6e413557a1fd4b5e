"""Proving an order the card shop's way (dialogs/proof.py, dialogs/claims.py): the checkout contact and
查询密码, and the shop's signed deep link; failures counted like wrong phone digits."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from dialogs.domain import CaseStatus, Order
from dialogs.proof import (
    LinkCheck,
    LinkProblem,
    check_link,
    link_parameter,
    plausible_contact,
    secret_digest,
)
from dialogs.service import RefundService
from dialogs.settings import CoreSettings, OrderSettings
from dialogs.steps import Step
from dialogs.texts import when
from tests.dialogs.customer import (
    NOW,
    NUMBER,
    STRANGER,
    ZH,
    Customer,
    conversation,
    service,
    with_case,
    with_order,
)
from tests.fakes import FakeDatabase
from tests.storage.factories import make_order

SECRET = "shop-and-bot-share-this"
EMAIL = "Buyer@Example.com"
PASSWORD = "x7k2p9"
SHOP = CoreSettings(orders=OrderSettings(proof="contact_password", link_secret=SECRET))
LATER = int((NOW + timedelta(hours=72)).timestamp())
EXAMPLE = SHOP.orders.number_example


async def shop_order(database: FakeDatabase, number: str = NUMBER, **changes: object) -> None:
    fields: dict[str, object] = {"buyer_telegram_id": None, "buyer_contact": EMAIL,
                                 "query_secret": secret_digest(number, PASSWORD)}
    await with_order(database, number, **{**fields, **changes})


def shopper(database: FakeDatabase, chat_id: int = STRANGER, settings: CoreSettings = SHOP) -> Customer:
    return Customer(service(database, settings), chat_id=chat_id)


async def tally(database: FakeDatabase, number: str = NUMBER) -> int:
    async with database.uow() as uow:
        found = await uow.lookups.get(number)
    return found.failures if found is not None else 0


async def chat_failures(database: FakeDatabase, chat_id: int = STRANGER) -> int:
    conv = await conversation(database, chat_id)
    return len(conv.data.get("failures", [])) if conv is not None else 0


def paused_text() -> str:
    orders = SHOP.orders
    return ZH("cooling_down", minutes=orders.cooldown_minutes,
              until=when(NOW + timedelta(minutes=orders.cooldown_minutes), SHOP.i18n.timezone))


# -- the algorithm -------------------------------------------------------------------------------
def test_the_documented_python_equivalent_signs_like_the_bot() -> None:
    # README.h-proof.md: SIG = hex(HMAC-SHA256(secret, "<ORDER>_<EXPIRES>"))[:24]
    sig = hmac.new(SECRET.encode(), f"{NUMBER}_{LATER}".encode(), hashlib.sha256).hexdigest()[:24]
    assert link_parameter(SECRET, NUMBER, LATER) == f"rf_{NUMBER}_{LATER}_{sig}"


def test_a_valid_link_names_its_order() -> None:
    assert check_link(SECRET, link_parameter(SECRET, NUMBER, LATER), NOW) == LinkCheck(NUMBER, None)


def test_an_expired_link_is_refused_as_expired() -> None:
    then = int((NOW - timedelta(seconds=1)).timestamp())
    assert check_link(SECRET, link_parameter(SECRET, NUMBER, then), NOW).problem is LinkProblem.EXPIRED


@pytest.mark.parametrize("forge", [
    lambda p: p[:-1] + ("0" if p[-1] != "0" else "1"),  # one hex digit off
    lambda p: p.replace(str(LATER), str(LATER + 86400)),  # a later expiry, same signature
    lambda p: p.replace(NUMBER, NUMBER[:-1] + "9"),  # another order, same signature
])
def test_a_forged_link_is_refused_as_forged(forge) -> None:  # type: ignore[no-untyped-def]
    check = check_link(SECRET, forge(link_parameter(SECRET, NUMBER, LATER)), NOW)
    assert check.problem is LinkProblem.FORGED and check.order_no


def test_a_link_signed_with_another_secret_or_checked_without_one_is_forged() -> None:
    parameter = link_parameter("another secret", NUMBER, LATER)
    assert check_link(SECRET, parameter, NOW).problem is LinkProblem.FORGED
    assert check_link("", link_parameter(SECRET, NUMBER, LATER), NOW).problem is LinkProblem.FORGED


@pytest.mark.parametrize("parameter", ["rf_", "rf_KM1_2000000000", "rf_KM1_x_" + "a" * 24,
                                       "rf_KM1_2000000000_" + "g" * 24, "rf_" + "A" * 40 + "_2000000000_" + "a" * 24])
def test_a_link_not_of_our_shape_is_malformed(parameter: str) -> None:
    assert check_link(SECRET, parameter, NOW) == LinkCheck("", LinkProblem.MALFORMED)


def test_a_parameter_over_telegrams_64_characters_is_not_made() -> None:
    assert len(link_parameter(SECRET, "A" * 25, 2_000_000_000)) == 64
    with pytest.raises(ValueError, match="start parameter"):
        link_parameter(SECRET, "A" * 26, 2_000_000_000)
    with pytest.raises(ValueError, match="link secret"):
        link_parameter("", NUMBER, LATER)


@pytest.mark.parametrize("text", ["buyer@example.com", "123456789", "wx_buyer-01", "+8613800138000"])
def test_emails_and_contact_ids_look_like_contacts(text: str) -> None:
    assert plausible_contact(text)


@pytest.mark.parametrize("text", ["", "ab", "buyer@", "two words", "a@b", "x" * 200])
def test_other_text_does_not_look_like_a_contact(text: str) -> None:
    assert not plausible_contact(text)


# -- contact + 查询密码 ------------------------------------------------------------------------------
async def test_the_checkout_email_and_query_password_open_an_unbound_order(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    assert (await c.says(NUMBER)).step == Step.AWAITING_CONTACT and c.texts() == [ZH("proof.ask_contact")]
    assert (await c.says(" buyer@EXAMPLE.com ")).step == Step.AWAITING_PASSWORD
    assert c.texts() == [ZH("proof.ask_password")]
    assert (await c.says(PASSWORD)).step == Step.CHOOSING_REASON
    assert c.button("r.card_invalid")
    conv = await conversation(database, STRANGER)
    assert conv is not None and "pending_contact" not in conv.data and PASSWORD not in str(conv.data)


async def test_an_order_without_a_query_password_is_proven_by_its_contact_but_both_are_asked(
        database: FakeDatabase) -> None:
    await shop_order(database, query_secret=None)
    c = shopper(database)
    await c.says(NUMBER)
    await c.says(EMAIL)
    assert c.texts() == [ZH("proof.ask_password")]  # asked all the same: the questions never depend on the order
    assert (await c.says("无")).step == Step.CHOOSING_REASON


async def test_a_wrong_password_and_a_wrong_contact_read_the_same_and_count_per_chat_and_number(
        database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    said = []
    for contact, password in ((EMAIL, "wrong"), ("other@example.com", PASSWORD)):
        await c.says(NUMBER)
        await c.says(contact)
        assert (await c.says(password)).step == Step.AWAITING_ORDER
        said.append(c.texts())
    assert said[0] == [ZH("proof.not_found", example=EXAMPLE, left=4)]
    assert said[1] == [ZH("proof.not_found", example=EXAMPLE, left=3)]
    assert await tally(database) == 2 and await chat_failures(database) == 2


async def test_a_stranger_with_a_wrong_email_reads_the_same_as_for_a_missing_order(database: FakeDatabase) -> None:
    await shop_order(database)
    missing = "KM20991231000009"
    said = []
    for chat, number in ((STRANGER, NUMBER), (STRANGER + 1, missing)):
        c = shopper(database, chat)
        await c.says(number)
        await c.says("stranger@example.com")
        await c.says(PASSWORD)
        said.append(c.texts())
    assert said[0] == said[1] == [ZH("proof.not_found", example=EXAMPLE, left=4)]
    assert await tally(database, missing) == 1


async def test_a_contact_of_the_wrong_shape_gets_the_format_hint_and_counts_nothing(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    await c.says(NUMBER)
    assert (await c.says("my email is buyer")).step == Step.AWAITING_CONTACT
    assert c.texts() == [ZH("proof.contact_format")]
    assert await tally(database) == 0 and await chat_failures(database) == 0


async def test_a_password_too_long_gets_the_format_hint_and_counts_nothing(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    await c.says(NUMBER)
    await c.says(EMAIL)
    assert (await c.says("p" * 65)).step == Step.AWAITING_PASSWORD
    assert c.texts() == [ZH("proof.password_format", max=64)]
    assert await tally(database) == 0


async def test_wrong_passwords_pause_the_chat_after_the_limit(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    for _ in range(SHOP.orders.max_failed_lookups):
        await c.says(NUMBER)
        await c.says(EMAIL)
        await c.says("wrong")
    assert c.texts() == [paused_text()]
    assert (await c.says(NUMBER)).step == Step.AWAITING_ORDER and c.texts() == [paused_text()]


async def test_the_right_password_is_refused_once_the_number_is_paused_by_other_chats(
        database: FakeDatabase) -> None:
    await shop_order(database)
    for chat in range(SHOP.orders.max_failed_lookups):
        c = shopper(database, 9000 + chat)
        await c.says(NUMBER)
        await c.says(EMAIL)
        await c.says("wrong")
    owner = shopper(database)
    await owner.says(NUMBER)
    assert owner.texts() == [paused_text()]


async def test_contact_and_password_never_open_an_order_bound_to_another_account(database: FakeDatabase) -> None:
    await shop_order(database, buyer_telegram_id=424242)
    c = shopper(database)
    await c.says(NUMBER)
    await c.says(EMAIL)
    await c.says(PASSWORD)
    assert c.texts() == [ZH("proof.not_found", example=EXAMPLE, left=4)]


async def test_the_phone_mode_still_asks_for_digits(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database, settings=CoreSettings())
    await c.says(NUMBER)
    assert c.texts() == [ZH("ask_phone")]


# -- the signed deep link --------------------------------------------------------------------------
async def test_a_valid_link_opens_the_order_with_no_other_proof(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    shown = await c.command("start", link_parameter(SECRET, NUMBER, LATER))
    assert shown.step == Step.CHOOSING_REASON and c.button("r.card_invalid")
    assert NUMBER in c.texts()[-1]


async def test_a_valid_link_works_in_phone_mode_too(database: FakeDatabase) -> None:
    await with_order(database, buyer_telegram_id=None)
    c = shopper(database, settings=CoreSettings(orders=OrderSettings(link_secret=SECRET)))
    assert (await c.command("start", link_parameter(SECRET, NUMBER, LATER))).step == Step.CHOOSING_REASON


async def test_a_valid_link_to_an_order_with_an_open_case_says_so(database: FakeDatabase) -> None:
    case = await with_case(database, CaseStatus.IN_REVIEW)
    c = Customer(service(database, SHOP))  # the case's own customer
    shown = await c.command("start", link_parameter(SECRET, NUMBER, LATER))
    assert shown.step == Step.IDLE and case.case_no in c.texts()[0]


async def test_a_valid_link_passes_a_pause_made_by_guessers(database: FakeDatabase) -> None:
    await shop_order(database)
    for chat in range(SHOP.orders.max_failed_lookups):
        g = shopper(database, 9000 + chat)
        await g.says(NUMBER)
        await g.says(EMAIL)
        await g.says("wrong")
    c = shopper(database)
    assert (await c.command("start", link_parameter(SECRET, NUMBER, LATER))).step == Step.CHOOSING_REASON


@pytest.mark.parametrize("make", [
    lambda: link_parameter(SECRET, NUMBER, int((NOW - timedelta(minutes=1)).timestamp())),  # expired
    lambda: link_parameter("not the shop's secret", NUMBER, LATER),  # forged
])
async def test_an_expired_or_forged_link_is_refused_and_counted_per_chat_and_number(
        database: FakeDatabase, make) -> None:  # type: ignore[no-untyped-def]
    await shop_order(database)
    c = shopper(database)
    shown = await c.command("start", make())
    assert shown.step == Step.AWAITING_ORDER and c.texts() == [ZH("proof.link_expired")]
    assert await tally(database) == 1 and await chat_failures(database) == 1


async def test_a_malformed_link_counts_against_the_chat_only(database: FakeDatabase) -> None:
    c = shopper(database)
    await c.command("start", "rf_garbage")
    assert c.texts() == [ZH("proof.link_expired")] and await chat_failures(database) == 1
    assert database.tables.lookups == {}


async def test_bad_links_pause_the_chat_after_the_limit(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database)
    for _ in range(SHOP.orders.max_failed_lookups):
        await c.command("start", link_parameter("forged", NUMBER, LATER))
    assert c.texts() == [paused_text()]
    await c.command("start", link_parameter("forged", NUMBER, LATER))
    assert c.texts() == [paused_text()] and await chat_failures(database) == SHOP.orders.max_failed_lookups


async def test_without_a_configured_secret_every_link_is_refused(database: FakeDatabase) -> None:
    await shop_order(database)
    c = shopper(database, settings=CoreSettings(orders=OrderSettings(proof="contact_password")))
    await c.command("start", link_parameter(SECRET, NUMBER, LATER))
    assert c.texts() == [ZH("proof.link_expired")]


async def test_a_valid_link_never_opens_an_order_bound_to_another_account(database: FakeDatabase) -> None:
    await shop_order(database, buyer_telegram_id=424242)
    c = shopper(database)
    await c.command("start", link_parameter(SECRET, NUMBER, LATER))
    assert c.texts() == [ZH("proof.link_expired")]


async def test_a_valid_link_to_an_order_not_here_yet_says_so_and_counts_nothing(database: FakeDatabase) -> None:
    c = shopper(database)
    await c.command("start", link_parameter(SECRET, NUMBER, LATER))
    assert c.texts() == [ZH("proof.link_order_missing")] and await chat_failures(database) == 0


async def test_a_valid_link_fetches_its_order_from_the_external_source_and_a_forged_one_does_not(
        database: FakeDatabase) -> None:
    asked: list[str] = []

    class Shop:
        async def get(self, order_no: str) -> Order | None:
            asked.append(order_no)
            return make_order(order_no, buyer_telegram_id=None)

    c = Customer(RefundService(database.uow, SHOP, clock=lambda: NOW, orders=Shop()), chat_id=STRANGER)
    await c.command("start", link_parameter("forged", NUMBER, LATER))
    assert asked == []
    assert (await c.command("start", link_parameter(SECRET, NUMBER, LATER))).step == Step.CHOOSING_REASON
    assert asked == [NUMBER] and NUMBER in database.tables.orders


async def test_a_photo_while_asked_for_the_contact_or_password_changes_nothing(database: FakeDatabase) -> None:
    # The answer is the step's hint, or the step's prompt again while that was never confirmed as sent
    # (dialogs.service._with_unconfirmed: this harness confirms nothing).
    await shop_order(database)
    c = shopper(database)
    await c.says(NUMBER)
    assert (await c.photo("AQAD1")).step == Step.AWAITING_CONTACT
    assert c.texts() in ([ZH("hint.awaiting_contact")], [ZH("proof.ask_contact")])
    await c.says(EMAIL)
    assert (await c.photo("AQAD2")).step == Step.AWAITING_PASSWORD
    assert c.texts() in ([ZH("hint.awaiting_password")], [ZH("proof.ask_password")])
    assert await tally(database) == 0 and await chat_failures(database) == 0
