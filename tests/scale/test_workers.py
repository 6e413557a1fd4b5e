"""Several workers on one webhook port: any worker takes any update, a whole refund is filed through
them, and they stop gracefully."""

from __future__ import annotations

from dialogs.texts import Texts
from tests.e2e.conftest import CASE_NO
from tests.e2e.test_case_aftercare import file_case

ZH = Texts("zh_CN")


async def test_two_workers_on_one_port_serve_a_whole_refund(cluster, customer):
    workers = await cluster(2)
    assert len(workers.worker_pids()) == 2
    assert CASE_NO.fullmatch(await file_case(await customer(10001), ZH))
