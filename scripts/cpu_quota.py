"""CPU quotas for benchmark processes: each process in a cgroup of its own, held to Q of one CPU.

The load generator, the emulator and PostgreSQL share the machine with the workers; giving every worker
the same quota (and leaving them the rest) makes "what does a second worker add" a question about
refundbot, not about who won the cores. cgroup v1's cpu controller (`cpu.cfs_quota_us` over
`cpu.cfs_period_us`) or v2's `cpu.max`, whichever the machine has writable; root is needed for either.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PERIOD_US = 100_000
V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")


class QuotaUnavailable(Exception):
    """Neither cgroup v1's cpu controller nor v2's cpu.max can be written here (the message says why)."""


def _v2_usable() -> bool:
    controllers = V2 / "cgroup.controllers"
    return controllers.exists() and "cpu" in controllers.read_text().split()


class CpuQuota:
    """One cgroup per process added, each with `cpus` of a CPU (0.25 = 25 ms every 100 ms)."""

    def __init__(self, cpus: float, label: str = "refundbot-bench") -> None:
        if not 0 < cpus <= os.cpu_count():  # type: ignore[operator]
            raise QuotaUnavailable(f"a quota of {cpus} CPU is not between 0 and {os.cpu_count()}")
        self.cpus = cpus
        self.prefix = f"{label}-{secrets.token_hex(3)}"
        self.groups: list[Path] = []
        if V1.is_dir() and os.access(V1, os.W_OK):
            self.version = 1
        elif _v2_usable() and os.access(V2, os.W_OK):
            self.version = 2
        else:
            raise QuotaUnavailable(
                "no writable cgroup cpu controller: need /sys/fs/cgroup/cpu (v1) or cpu in "
                "/sys/fs/cgroup/cgroup.controllers (v2), and root to write them")

    def add(self, pid: int) -> Path:
        """Put `pid` (all its threads) in a new cgroup of its own with the quota; returns the group."""
        root = V1 if self.version == 1 else V2
        group = root / f"{self.prefix}-{len(self.groups)}"
        group.mkdir()
        self.groups.append(group)
        quota = int(self.cpus * PERIOD_US)
        if self.version == 1:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        (group / "cgroup.procs").write_text(str(pid))
        return group

    def throttled(self) -> dict[str, float]:
        """Per group: how often the quota held the process back (v1 `nr_throttled` / `nr_periods`)."""
        out = {}
        for group in self.groups:
            stat = group / "cpu.stat"
            if stat.exists():
                fields = dict(line.split() for line in stat.read_text().splitlines() if line.strip())
                periods = int(fields.get("nr_periods", 0))
                out[group.name] = int(fields.get("nr_throttled", 0)) / periods if periods else 0.0
        return out

    def close(self) -> None:
        """Move whatever is left back to the root group and remove the groups."""
        root = V1 if self.version == 1 else V2
        for group in self.groups:
            procs = group / "cgroup.procs"
            try:
                for pid in procs.read_text().split():
                    try:
                        (root / "cgroup.procs").write_text(pid)
                    except OSError:
                        pass  # exited meanwhile
                group.rmdir()
            except OSError:
                pass
        self.groups.clear()
