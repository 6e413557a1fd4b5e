"""Money back on WeChat Pay, end to end: the real bot (both frameworks) on the emulator, a customer
files a case for a WeChat-paid order, an agent approves it on the desk, the refund worker sends the
refund to the local WeChat Pay fake (which answers PROCESSING), the fake posts its signed, encrypted
REFUND.SUCCESS notification to the bot's web app, and the customer's status card says refunded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.config import PlatformConfig, WechatConfig
from bot.demo import demo_orders
from bot.rails.wechat_notify import PATH
from dialogs.domain import CaseStatus, PaymentChannel, RefundStatus
from tests.bot.rails.fake_wechat import FakeWechat, Keys
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

ORDER = "KM20261101000021"
TRANSACTION = "4200000000000000021" + "20261101"


async def test_a_wechat_refund_is_paid_on_wechat_pay_and_the_card_says_refunded(start_bot, control: Control,
                                                                               customer, tmp_path: Path):
    keys = Keys.generate()
    async with FakeWechat(keys, answer_status="PROCESSING") as fake:
        fake.trade(ORDER, "30.00", TRANSACTION)
        for user_id, name in ((AGENT, "Wang"), (SUPER, "Zhao")):
            await control.post("users", user_id=user_id, first_name=name, language_code="zh-hans")
        await control.post("groups", title="退款客服台", chat_id=DESK, is_forum=True, creator_id=SUPER,
                           members=[{"user_id": AGENT, "status": "member"}])
        wechat = WechatConfig(**keys.write(tmp_path / "keys"), notify_url="https://bot.example.com" + PATH,
                              api_base=fake.url)
        config = desk_config(tmp_path, agents=(AGENT,), supervisors=(SUPER,), aliases={AGENT: "小王"})
        config = config.model_copy(update={"platform": PlatformConfig(rails={PaymentChannel.WECHAT: "wechat"},
                                                                       wechat=wechat)})
        bot = await start_bot(config)
        first = demo_orders(datetime.now(UTC))[0]  # a card in its claim window, bound to Xiaoming
        async with bot.running.database.uow() as uow:
            await uow.orders.upsert(replace(first, order_no=ORDER, amount=Decimal("30.00"),
                                            payment_channel=PaymentChannel.WECHAT, trade_no=TRANSACTION))
            await uow.commit()

        c = await customer(XIAOMING)
        case_no = await on_the_desk(c, ORDER)
        agent = Person(control, AGENT)
        thread = await _topic(bot, case_no)
        await agent.send("/take", thread)
        await agent.send("/approve", thread)
        assert (await stored(bot, case_no)).status is CaseStatus.REFUNDING

        key = f"{case_no}-1"

        async def requested() -> bool:
            async with bot.running.database.uow() as uow:
                attempt = await uow.refunds.get(key)
            return attempt is not None and attempt.status is RefundStatus.REQUESTED

        await until(requested, 15)  # the worker sent it; WeChat Pay is processing
        assert fake.payouts(ORDER) == [3000] and fake.refunds[key].notify_url.endswith(PATH)
        before = card_of(await c.control.messages(XIAOMING), case_no)
        assert before is not None and ZH("status.refunded") not in before["text"]  # not until WeChat Pay says so
        status, _ = await fake.notify(bot.running.web_url + PATH, key)
        assert status == 204

        messages = await eventually(c, lambda m: ZH("status.refunded") in (card_of(m, case_no) or {}).get("text", ""))
        card = card_of(messages, case_no)
        assert card is not None and ZH("status.refunded") in card["text"]
        async with bot.running.database.uow() as uow:
            attempt = await uow.refunds.get(key)
        assert attempt is not None and attempt.status is RefundStatus.SUCCEEDED
        assert attempt.external_ref == fake.refunds[key].refund_id
        assert fake.payouts(ORDER) == [3000]


async def _topic(bot, case_no: str) -> int:  # type: ignore[no-untyped-def]
    async def made() -> bool:
        async with bot.running.database.uow() as uow:
            item = await uow.desk.get(case_no)
        return item is not None and item.thread_id is not None and item.card_message_id is not None

    await until(made)
    async with bot.running.database.uow() as uow:
        item = await uow.desk.get(case_no)
    assert item is not None and item.thread_id is not None
    return item.thread_id
