"""`refundbot run --workers N`: N identical webhook worker processes on one port.

Each worker is a whole refundbot (`refundbot run`, with `[telegram] reuse_port` on): it binds
listen_host:listen_port with SO_REUSEPORT, so the kernel spreads Telegram's connections over the
workers, and any worker can take any update. They share nothing but PostgreSQL (and Redis, if
configured): an update_id is claimed once in the database, a chat's conversation row is locked for
the length of its transaction, the relay's and the timers' rows are claimed with SKIP LOCKED. This
process only starts them, passes SIGTERM / SIGINT on (each drains: /readyz turns 503, requests in flight
finish, nothing new is claimed) and starts again a worker that died; it coordinates no work. Operators
who prefer their own process manager run the same `refundbot run` N times with `reuse_port = true`
(a systemd template unit is in the README).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
QUICK_DEATH = 10.0  # a worker that dies this soon after starting did not get going at all
GIVE_UP_AFTER = 5


class Supervisor:
    def __init__(self, argv: Sequence[str], count: int, restart_delay: float = RESTART_DELAY) -> None:
        self.argv = list(argv)  # the worker's command line, without --workers
        self.count = count
        self.restart_delay = restart_delay
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = {**os.environ, "REFUNDBOT_WORKER": str(index)}
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *self.argv, env=env)
        log.info("worker %d started (pid %d)", index, process.pid)
        self.processes[index] = process
        return process

    async def _keep(self, index: int, stop: asyncio.Event) -> int:
        """Run worker `index` until stop; start it again when it dies meanwhile. A worker that keeps dying
        as soon as it starts (a bad config, the database refusing) stops them all instead."""
        quick_deaths = 0
        while True:
            started = time.monotonic()
            process = await self._spawn(index)
            code = await process.wait()
            if stop.is_set():
                return code
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH else 0
            if quick_deaths >= GIVE_UP_AFTER:
                log.error("worker %d died %d times within %.0f s of starting; stopping", index, quick_deaths,
                          QUICK_DEATH)
                stop.set()
                return code or 1
            log.error("worker %d (pid %d) exited with %s; starting it again in %.0f s",
                      index, process.pid, code, self.restart_delay)
            self.restarts += 1
            await asyncio.sleep(self.restart_delay)
            if stop.is_set():
                return code

    async def run(self, stop: asyncio.Event) -> int:
        keepers = [asyncio.create_task(self._keep(i, stop)) for i in range(self.count)]
        await stop.wait()
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*keepers)
        # A worker stopped by our SIGTERM exits 0 after draining.
        return 0 if all(code == 0 for code in codes) else 1
