"""The worker supervisor of `refundbot run --workers N`: real processes, no fakes."""

from __future__ import annotations

import asyncio

from bot.supervisor import GIVE_UP_AFTER, Supervisor


async def test_a_worker_that_dies_on_every_start_stops_the_supervisor_instead_of_looping():
    supervisor = Supervisor(["run", "--no-such-option"], 1, restart_delay=0.05)
    code = await asyncio.wait_for(supervisor.run(asyncio.Event()), 120)
    assert code == 1
    assert supervisor.restarts == GIVE_UP_AFTER - 1
