"""Several workers on one webhook port: any worker takes any update, a whole refund is filed through
them, and they stop gracefully."""

from __future__ import annotations

from dialogs.texts import Texts
from tests.e2e.conftest import CASE_NO, png_bytes, texts

ZH = Texts("zh_CN")


async def test_two_workers_on_one_port_serve_a_whole_refund(cluster, customer):
    workers = await cluster(2)
    assert len(workers.worker_pids()) == 2
    c = await customer(10001)
    await c.say("/start order_KM20261101000001")
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")
    await c.photo(png_bytes())
    await c.press(ZH("btn_done"))
    assert CASE_NO.search(texts(await c.press(ZH("btn_submit"))))
