"""An update that fails on bad stored data (an order written straight into the database with paid_at in
year 9999, which the lookup cannot compute with) is not retried and skipped in silence: after a few tries the
customer gets a polite answer in their language and the supervisors an alert through the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from storage.models import OrderRow
from tests.e2e.conftest import make_config, texts

ORDER = "KM20261101000001"
SUPERVISORS = 90001  # a supervisor's private chat stands in for the supervisors' chat


@pytest.mark.parametrize(("language", "polite"), [("zh-hans", "暂时无法处理您的请求，已通知客服"),
                                                  ("en", "cannot process your request right now")])
async def test_a_lookup_that_crashes_on_stored_data_answers_the_customer_and_alerts_supervisors(
        start_bot, customer, control, tmp_path, language, polite):  # type: ignore[no-untyped-def]
    config = make_config(tmp_path)
    config = config.model_copy(update={"sla": config.sla.model_copy(update={"supervisors_chat_id": SUPERVISORS})})
    bot = await start_bot(config)
    async with bot.running.database.uow() as uow:
        await uow.session.execute(update(OrderRow).where(OrderRow.order_no == ORDER)  # type: ignore[attr-defined]
                                  .values(paid_at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC)))
        await uow.commit()
    await customer(SUPERVISORS)
    c = await customer(language_code=language)
    await c.say("/refund")
    shown = texts(await c.say(ORDER))
    assert polite in shown, shown
    for _ in range(100):  # the relay sends the alert
        alerts = [m["text"] for m in await control.messages(SUPERVISORS)]
        if alerts:
            break
        await asyncio.sleep(0.1)
    assert len(alerts) == 1 and str(c.user_id) in alerts[0], alerts
    assert texts(await c.say("/start"))  # the chat still answers
