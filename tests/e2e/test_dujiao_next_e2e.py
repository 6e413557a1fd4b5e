"""Money back into a Dujiao-Next wallet, end to end: the real bot (both frameworks) on the emulator, a
customer files a case for an order paid from the shop's wallet, an agent approves it on the desk, the
refund worker refunds it to the wallet through the local Dujiao-Next shop (which checks every call's
Open API signature), the wallet is credited exactly once and the customer's status card says refunded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.config import DujiaoNextConfig, PlatformConfig
from bot.demo import demo_orders
from dialogs.domain import CaseStatus, PaymentChannel, RefundStatus
from tests.e2e.conftest import Control
from tests.e2e.test_case_aftercare import card_of, eventually, stored
from tests.e2e.test_desk_actions import (
    AGENT,
    DESK,
    SUPER,
    XIAOMING,
    ZH,
    Person,
    desk_config,
    on_the_desk,
    until,
)
from tests.e2e.test_wechat_refund_e2e import _topic
from tests.shops.fake_dujiao_next import ADMIN_TOKEN, API_KEY, API_SECRET, FakeDujiaoNext

ORDER = "KM20261101000031"  # the demo number pattern; a shop's own is set in [orders] number_pattern
SHOP_ORDER_ID, BUYER = 9031, 3101


async def test_an_approved_case_on_a_dujiao_next_order_credits_the_buyer_s_wallet_once(
        start_bot, control: Control, customer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async with FakeDujiaoNext() as shop:
        shop.add_order(ORDER, "30.00", user_id=BUYER, wallet_paid="30.00", order_id=SHOP_ORDER_ID)
        for user_id, name in ((AGENT, "Wang"), (SUPER, "Zhao")):
            await control.post("users", user_id=user_id, first_name=name, language_code="zh-hans")
        await control.post("groups", title="退款客服台", chat_id=DESK, is_forum=True, creator_id=SUPER,
                           members=[{"user_id": AGENT, "status": "member"}])
        config = desk_config(tmp_path, agents=(AGENT,), supervisors=(SUPER,), aliases={AGENT: "小王"})
        dujiao = DujiaoNextConfig(base_url=shop.url, api_key=API_KEY, api_secret=API_SECRET, admin_token=ADMIN_TOKEN)
        platform = PlatformConfig(rails={PaymentChannel.BALANCE: "dujiao_next"}).with_dujiao_next(dujiao)
        config = config.model_copy(update={"platform": platform})
        bot = await start_bot(config)
        first = demo_orders(datetime.now(UTC))[0]  # a card in its claim window, bound to Xiaoming
        async with bot.running.database.uow() as uow:
            await uow.orders.upsert(replace(first, order_no=ORDER, amount=Decimal("30.00"),
                                            payment_channel=PaymentChannel.BALANCE, trade_no=str(SHOP_ORDER_ID)))
            await uow.commit()

        c = await customer(XIAOMING)
        case_no = await on_the_desk(c, ORDER)
        agent = Person(control, AGENT)
        thread = await _topic(bot, case_no)
        await agent.send("/take", thread)
        await agent.send("/approve", thread)
        assert (await stored(bot, case_no)).status in (CaseStatus.REFUNDING, CaseStatus.REFUNDED)

        messages = await eventually(c, lambda m: ZH("status.refunded") in (card_of(m, case_no) or {}).get("text", ""))
        card = card_of(messages, case_no)
        assert card is not None and ZH("status.refunded") in card["text"]

        key = f"{case_no}-1"
        async with bot.running.database.uow() as uow:
            attempt = await uow.refunds.get(key)
        assert attempt is not None and attempt.status is RefundStatus.SUCCEEDED and attempt.gateway == "dujiao_next"
        assert shop.wallets[BUYER] == Decimal("30.00")
        [record] = shop.records
        assert record["order_id"] == SHOP_ORDER_ID and key in record["remark"] and attempt.external_ref == str(record["id"])
        assert shop.refusals == []  # every call was signed the way the shop checks
        assert shop.by_no(ORDER).status == "refunded"  # type: ignore[union-attr]
        await until(lambda: _settled(bot, case_no), 5)
        assert len(shop.records) == 1  # credited once, nothing sent again


async def _settled(bot, case_no: str) -> bool:  # type: ignore[no-untyped-def]
    return (await stored(bot, case_no)).status is CaseStatus.REFUNDED
