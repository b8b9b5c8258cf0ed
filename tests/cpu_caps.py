"""CPU caps for serving processes: a cgroup v1 ``cpu`` group per process, so that each runs as on a
small CPU of its own (``bench/scale_out.py``, ``tests/runtime/test_serve_workers.py``). Needs root and the
cpu controller mounted at /sys/fs/cgroup/cpu; OSError otherwise."""

import json
import os
from contextlib import contextmanager
from pathlib import Path

from tests.waiting import wait_for

CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")
SHARES = 8192  # eight times a root-level process's weight: under contention the group still gets its quota


def subtree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a worker's chart process, ...)."""
    try:
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [pid, *(d for c in children for d in subtree(c))]


class CpuCap:
    """A cgroup v1 ``cpu`` group whose processes together use at most ``quota`` of one CPU, measured
    over ``period_us`` periods. OSError (PermissionError, FileNotFoundError) if it cannot be made."""

    def __init__(self, name: str, quota: float, period_us: int):
        self.path = CPU_CGROUPS / name
        self.path.mkdir()
        try:
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(round(quota * period_us)))
            (self.path / "cpu.shares").write_text(str(SHARES))
        except OSError:
            self.remove()
            raise

    def add(self, pid: int) -> list[int]:
        """Moves ``pid`` and its descendants in (children started later are born in it); their pids."""
        moved = []
        for p in subtree(pid):
            try:
                (self.path / "cgroup.procs").write_text(str(p))
                moved.append(p)
            except ProcessLookupError:  # exited meanwhile
                pass
        return moved

    def throttled(self) -> tuple[int, float]:
        """Periods in which the group ran out of quota, and the seconds it waited in them."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat["nr_throttled"]), int(stat["throttled_time"]) / 1e9

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the processes now in the group (user and system)."""
        total = 0
        for p in (self.path / "cgroup.procs").read_text().split():
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def remove(self) -> None:
        """Moves what is left in back to the root group and removes the group."""
        if not self.path.exists():
            return
        for p in (self.path / "cgroup.procs").read_text().split():
            try:
                (CPU_CGROUPS / "cgroup.procs").write_text(p)
            except ProcessLookupError:
                pass
        self.path.rmdir()


@contextmanager
def cpu_cap(name: str, quota: float, period_us: int):
    cap = CpuCap(name, quota, period_us)
    try:
        yield cap
    finally:
        cap.remove()


def worker_pids(log: Path, workers: int, timeout: float = 120) -> list[int]:
    """The pids of ``serve --workers N``'s workers, from its log, once each has started its app."""
    def listed() -> list[int] | None:
        records = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
        started = sum(r["message"] == "Application startup complete." for r in records)
        serving = [r["message"].rsplit(": ", 1)[1] for r in records if r["message"].startswith("serving on ")]
        return [int(p) for p in serving[-1].split(", ")] if started >= workers and serving else None

    try:
        return wait_for(listed, what=f"{workers} workers started", timeout=timeout, interval=0.2)
    except AssertionError as exc:
        raise RuntimeError(f"{exc}:\n{log.read_text(errors='replace')[-3000:]}") from None
