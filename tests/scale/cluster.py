"""Several refundbot worker processes on PostgreSQL against the emulator, as an operator runs them:
`refundbot run --workers N` (one port, SO_REUSEPORT) or N separate `refundbot run` processes on ports of
their own. Used by the fault suite (tests/scale) and the load benchmark (scripts/bench_scale.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

TOKEN = "7000000001:scale-token"
SECRET = "scale-webhook-secret"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def process_with_local_port(pids: list[int], port: int) -> int | None:
    """Which of `pids` owns the TCP socket whose local port is `port` (e.g. the worker behind a
    PostgreSQL backend's client_port)."""
    wanted = f":{port:04X} "
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if wanted in f"{fields[1]} ":
                inodes.add(fields[9])
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return pid
        except (FileNotFoundError, PermissionError):
            continue
    return None


@dataclass
class Cluster:
    emulator_url: str
    database_url: str
    workers: int
    directory: Path
    separate_ports: bool = False  # N processes with a port each, instead of --workers N on one port
    redis_url: str = ""
    extra_config: str = ""
    ports: list[int] = field(default_factory=list)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    log_files: list[Path] = field(default_factory=list)

    def config(self, port: int) -> Path:
        path = self.directory / f"refundbot-{port}.toml"
        redis = f'\n[redis]\nurl = "{self.redis_url}"\nexpected_workers = {self.workers}\n' if self.redis_url else ""
        path.write_text(f"""
[telegram]
token = "{TOKEN}"
api_base = "{self.emulator_url}"
mode = "webhook"
webhook_url = "http://127.0.0.1:{port}/telegram/webhook"
webhook_secret = "{SECRET}"
listen_port = {port}

[database]
url = "{self.database_url}"

[storage]
evidence_dir = "{self.directory}/evidence"

[log]
format = "json"
{redis}{self.extra_config}
""", encoding="utf-8")
        return path

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        log_file = self.directory / f"worker-{len(self.log_files)}.log"
        self.log_files.append(log_file)
        out = log_file.open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", *args, stdout=out, stderr=asyncio.subprocess.STDOUT,
            cwd=self.directory, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out.close()
        self.processes.append(process)
        return process

    async def start(self) -> Cluster:
        if self.separate_ports:
            self.ports = [free_port() for _ in range(self.workers)]
            for port in self.ports:
                await self.spawn("--config", str(self.config(port)))
        else:
            self.ports = [free_port()]
            await self.spawn("--workers", str(self.workers), "--config", str(self.config(self.ports[0])))
        await self.ready()
        return self

    async def ready(self, timeout: float = 60) -> None:
        """Every worker answers /readyz 200 (on a shared port: as many distinct workers as configured)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.separate_ports:
                alive = len([p for p in self.ports if await self._ready(p)])
            else:
                alive = len([pid for pid in self.worker_pids() if self._listening(pid)])
                alive = alive if await self._ready(self.ports[0]) else 0
            if alive >= self.workers:
                return
            for process in self.processes:
                assert process.returncode is None, self.logs()
            await asyncio.sleep(0.2)
        raise AssertionError(f"the workers were not ready within {timeout}s:\n{self.logs()}")

    def _listening(self, pid: int) -> bool:
        return process_with_local_port([pid], self.ports[0]) is not None

    @staticmethod
    async def _ready(port: int) -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz",
                                                                 timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def worker_pids(self) -> list[int]:
        if self.separate_ports or self.workers == 1:  # `--workers 1` runs the worker in the process itself
            return [p.pid for p in self.processes if p.returncode is None]
        return children(self.processes[0].pid)

    def webhook_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/telegram/webhook" for port in self.ports]

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in self.log_files
                         if path.exists())

    async def stop(self, timeout: float = 30) -> list[int | None]:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(await asyncio.wait_for(process.wait(), timeout))
            except TimeoutError:
                process.kill()
                codes.append(await process.wait())
        return codes
