"""Load benchmark: PostgreSQL-backed webhook workers (1, 2 and 4 by default) against the emulator,
thousands of simulated customers filing a whole refund case (7 updates each). Prints, per worker count,
updates/s and p50/p99 latency, the scaling ratio against one worker, and checks that nothing was lost
or done twice (cases, update claims, answers per chat).

    .venv/bin/python scripts/bench_scale.py --customers 2000 --concurrency 64 --workers 1,2,4

Each worker count gets a fresh database and a fresh emulator process. Without --cpu-quota nothing is
pinned: the workers, the emulator, this driver and PostgreSQL share the machine's cores (2 here), so the
ratio is what a second worker adds on the same machine, not on a machine of its own. With --cpu-quota Q
every worker runs in a cgroup of its own held to Q of a CPU (scripts/cpu_quota.py; root), the rest of the
machine left to the load, the emulator and PostgreSQL: the ratio then shows what a worker adds.

    sudo .venv/bin/python scripts/bench_scale.py --cpu-quota 0.25 --workers 1,2,4

Nothing lost or doubled is judged only once the relay has drained: every outbox row sent, or provably
pending (due later than now); rows due but unsent after --drain-seconds are reported as not drained,
which is a different finding from a lost or doubled message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench_dialog import QUIET_EMULATOR, STEPS, USER_BASE, drive, free_port, pct, seed, start, wait_emulator
from cpu_quota import CpuQuota, QuotaUnavailable

from sandbox.client import EmulatorClient
from tests.scale.cluster import Cluster

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN.replace("postgresql://", "postgres://"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def count(url: str, sql: str) -> int:
    connection = await asyncpg.connect(url.replace("postgresql://", "postgres://"))
    try:
        return int(await connection.fetchval(sql))
    finally:
        await connection.close()


DUE_UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL AND available_at <= now()"
LATER = "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL AND available_at > now()"


async def drain(url: str, seconds: float) -> tuple[int, float]:
    """Wait for the relay: until no outbox row is due and unsent, or `seconds` pass with no progress.
    Returns (rows still due and unsent, seconds waited)."""
    started = last_progress = time.monotonic()
    due = await count(url, DUE_UNSENT)
    while due and time.monotonic() - last_progress < seconds:
        await asyncio.sleep(0.5)
        now_due = await count(url, DUE_UNSENT)
        if now_due < due:
            last_progress = time.monotonic()
        due = now_due
    return due, time.monotonic() - started


async def verify(url: str, base: str, customers: range, drain_seconds: float) -> dict[str, object]:
    """Nothing lost, nothing twice, judged after the relay drained: one case per customer, each update
    claimed once, no outbox row given up, and every chat got the same messages (a doubled answer or
    notification would make one chat differ). Rows due later (reminders) are pending, not lost."""
    not_drained, waited = await drain(url, drain_seconds)
    users = f"BETWEEN {USER_BASE + customers.start} AND {USER_BASE + customers.stop - 1}"
    cases = await count(url, f"SELECT count(*) FROM cases WHERE chat_id {users}")
    claims = await count(url, f"SELECT count(*) FROM processed_updates WHERE chat_id {users}")
    pending = await count(url, LATER)
    dead = await count(url, "SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL")
    per_chat: Counter[int] = Counter()
    async with EmulatorClient(base) as client:
        for i in customers:
            per_chat[len(await client.bot_messages(USER_BASE + i))] += 1
    whole = cases == len(customers) and claims == len(customers) * STEPS and len(per_chat) == 1 and not dead
    verdict = ("NOT DRAINED" if not_drained else "OK") if whole else "LOST OR DOUBLED"
    return {"cases": cases, "claims": claims, "not_drained": not_drained, "pending": pending, "dead": dead,
            "drained_in": waited, "messages_per_chat": dict(per_chat), "verdict": verdict,
            "ok": verdict == "OK"}


async def one_count(workers: int, args: argparse.Namespace, tmp: Path, offset: int,
                    quota: CpuQuota | None) -> dict[str, object]:
    name = f"refundbot_bench_{secrets.token_hex(3)}"
    await admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
    # Over TCP by default, as to a database host of its own; --pg-socket: the local server's Unix socket.
    url = (f"postgresql://postgres@/{name}?host={args.pg_socket}" if args.pg_socket
           else f"postgresql://postgres@127.0.0.1:5432/{name}")
    customers = range(offset, offset + args.customers)
    warmup = range(offset + args.customers, offset + args.customers + 20)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    emulator = await start([sys.executable, "-c", QUIET_EMULATOR, "--port", str(port)])
    cluster = None
    try:
        await wait_emulator(base)
        await seed(url, range(customers.start, warmup.stop))
        directory = tmp / f"w{workers}"
        directory.mkdir()
        redis = {"redis_url": args.redis} if args.redis else {}
        cluster = Cluster(base, url, workers, directory, **redis)
        await cluster.start()
        if quota is not None:
            for pid in cluster.worker_pids():
                quota.add(pid)
        # A warm-up the clock does not see: first connections, caches, the JIT-less interpreter's imports.
        await drive(base, warmup, 20, echo=False)
        pids = cluster.worker_pids()
        cpu_before, busy_before = cpu_seconds(pids), machine_busy()
        throughput, latencies, _ = await drive(base, customers, args.concurrency, echo=False)
        worker_cpu = cpu_seconds(pids) - cpu_before
        busy_after = machine_busy()
        busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
        updates = len(customers) * STEPS
        checked = await verify(url, base, customers, args.drain_seconds)
        return {"workers": workers, "updates_s": throughput, "p50": pct(latencies, 50), "p99": pct(latencies, 99),
                "mean": statistics.fmean(latencies) * 1000, "cpu_ms": worker_cpu / updates * 1000,
                "busy": busy * 100, **checked}
    finally:
        if quota is not None:
            quota.close()
        if cluster is not None:
            codes = await cluster.stop()
            if any(codes):
                print(cluster.logs())
        emulator.terminate()
        await emulator.wait()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2000, help="customers per worker count (7 updates each)")
    parser.add_argument("--concurrency", type=int, default=64, help="customers in flight at once")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure, comma separated")
    parser.add_argument("--redis", default="", help="a Redis URL for the shared send-rate limits (default: none)")
    parser.add_argument("--pg-socket", default="", metavar="DIR",
                        help="reach PostgreSQL through its Unix socket in DIR (e.g. /var/run/postgresql), not TCP")
    parser.add_argument("--cpu-quota", type=float, default=None, metavar="Q",
                        help="run every worker in a cgroup of its own held to Q of a CPU (e.g. 0.25; needs root)")
    parser.add_argument("--drain-seconds", type=float, default=30,
                        help="after the load, wait this long without relay progress before judging (default 30)")
    args = parser.parse_args()
    if args.cpu_quota is not None:
        try:
            CpuQuota(args.cpu_quota).close()
        except (QuotaUnavailable, OSError) as exc:
            sys.exit(f"--cpu-quota: {exc}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, workers in enumerate(int(w) for w in args.workers.split(",")):
            started = time.perf_counter()
            quota = CpuQuota(args.cpu_quota) if args.cpu_quota is not None else None
            row = await one_count(workers, args, Path(tmp), offset=n * 100_000, quota=quota)
            rows.append(row)
            print(f"{workers} worker(s): {row['updates_s']:.0f} updates/s, p50 {row['p50']:.1f} ms, "
                  f"worker CPU {row['cpu_ms']:.2f} ms/update, machine {row['busy']:.0f}% busy, "
                  f"p99 {row['p99']:.1f} ms; cases {row['cases']}, claims {row['claims']}, given up {row['dead']}, "
                  f"due but unsent {row['not_drained']} after {row['drained_in']:.0f} s, due later {row['pending']}, "
                  f"messages per chat {row['messages_per_chat']} -> {row['verdict']} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    base = rows[0]["updates_s"]
    quota_text = f", each worker held to {args.cpu_quota:g} CPU" if args.cpu_quota is not None else ""
    print(f"\n{args.customers} customers x {STEPS} updates, {args.concurrency} in flight, PostgreSQL "
          f"({'Unix socket' if args.pg_socket else 'TCP'}), webhook, {os.cpu_count()} cores{quota_text}")
    print("| workers | updates/s | p50 ms | p99 ms | vs 1 worker | worker CPU ms/update | machine busy "
          "| nothing lost or doubled |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['workers']} | {row['updates_s']:.0f} | {row['p50']:.1f} | {row['p99']:.1f} | "
              f"{row['updates_s'] / base:.2f}x | {row['cpu_ms']:.2f} | {row['busy']:.0f}% | "
              f"{'yes' if row['ok'] else row['verdict']} |")
    print("Worker CPU per update staying flat as workers are added means they do not get in each other's way;"
          " a machine near 100% busy means the cores, not refundbot, set the ceiling.")
    if not all(row["ok"] for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
