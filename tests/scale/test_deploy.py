"""The systemd units in docs/deploy, exercised: their ExecStart started as systemd would (two instances
of the template, or the one --workers unit) against the emulator and PostgreSQL, a customer served,
then stopped with their KillSignal within their TimeoutStopSec, exiting 0."""

from __future__ import annotations

import asyncio
import shlex
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import Customer
from tests.scale.cluster import ROOT, Cluster, free_port

UNITS = ROOT / "docs/deploy"


def unit(name: str) -> dict[str, str]:
    """The [Service] settings of a unit file (last one wins, as systemd's for these keys)."""
    settings: dict[str, str] = {}
    section = ""
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def command(service: dict[str, str], config: Path, workers: int | None = None) -> list[str]:
    """ExecStart's arguments after `refundbot`, with this test's config (and worker count)."""
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "refundbot" and argv[1] == "run", argv
    args = argv[1:]
    args[args.index("--config") + 1] = str(config)
    if workers is not None and "--workers" in args:
        args[args.index("--workers") + 1] = str(workers)
    return args[1:]  # Cluster.spawn adds `run`


async def stop_as_systemd(cluster: Cluster, service: dict[str, str]) -> None:
    kill = getattr(signal, service["KillSignal"])
    for process in cluster.processes:
        process.send_signal(kill)
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in cluster.processes)),
                                   float(service["TimeoutStopSec"]))
    assert codes == [0] * len(cluster.processes), cluster.logs()


async def served(customer) -> None:  # type: ignore[no-untyped-def]
    c: Customer = await customer(10001)
    said = await c.say("/start order_KM20261101000001")
    assert any("王者荣耀点券卡" in (m.get("text") or "") for m in said)


@pytest.mark.parametrize("instances", [2])
async def test_two_instances_of_the_template_unit_share_the_port_and_stop_cleanly(  # cluster: seeds the database
        emulator, pg_url, tmp_path, cluster, customer, instances):
    service = unit("refundbot@.service")
    port = free_port()
    group = Cluster(emulator.base_url, pg_url, instances, tmp_path, ports=[port])
    config = group.config(port)
    for _ in range(instances):
        await group.spawn(*command(service, config))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len([p for p in group.processes if group._listening(p.pid)]) < instances:
            assert asyncio.get_running_loop().time() < deadline, group.logs()
            await asyncio.sleep(0.2)
        await served(customer)
    finally:
        await stop_as_systemd(group, service)


async def test_the_workers_unit_runs_its_workers_and_stops_cleanly(emulator, pg_url, tmp_path, cluster, customer):
    service = unit("refundbot.service")
    port = free_port()
    group = Cluster(emulator.base_url, pg_url, 2, tmp_path, ports=[port])
    await group.spawn(*command(service, group.config(port), workers=2))
    try:
        await group.ready()
        assert len(group.worker_pids()) == 2
        await served(customer)
    finally:
        await stop_as_systemd(group, service)
