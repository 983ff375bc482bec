"""CPU time of the processes a benchmark run involves, read from ``/proc`` (Linux only).

The pipeline bench runs the engine, PostgreSQL, RabbitMQ and itself on the same cores; CPU
seconds per document, process by process, say where the machine's time went, which throughput
figures alone cannot.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")
#: Local servers counted by their process name (``/proc/PID/comm``): every process of the machine's
#: PostgreSQL and RabbitMQ, not only this run's connections and queues.
SERVER_PROCESSES = {"postgres": ("postgres",), "rabbitmq": ("beam.smp", "erl_child_setup", "epmd")}


def available() -> bool:
    return (PROC / "self" / "stat").is_file()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far; None when it is gone (or not Linux)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids_named(names: Iterable[str]) -> list[int]:
    wanted = set(names)
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in wanted:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _children_of(parents: Iterable[int]) -> list[int]:
    """Processes whose parent is one of ``parents`` (the engine's validation subprocesses)."""
    wanted = set(parents)
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) in wanted:
                pids.append(int(entry.name))
    return pids


class CpuProbe:
    """Calling it returns CPU seconds so far by group: the given processes by name (``{"api":
    [pid], "workers": [pid, pid]}``), their subprocesses as ``validation`` (where documents are
    validated), this process as ``bench``, and the local PostgreSQL and RabbitMQ servers, found
    afresh each time (their backends and the subprocesses come and go)."""

    def __init__(self, groups: Mapping[str, Iterable[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}

    def __call__(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        found = {name: _pids_named(names) for name, names in SERVER_PROCESSES.items()}
        children = _children_of(pid for pids in self.groups.values() for pid in pids)
        for name, pids in [*self.groups.items(), ("validation", children), ("bench", [os.getpid()]), *found.items()]:
            totals[name] = sum(c for c in (cpu_seconds(pid) for pid in pids) if c is not None)
        return totals


def per_document(before: Mapping[str, float], after: Mapping[str, float], documents: int) -> dict[str, float]:
    """CPU seconds per document by group between two probes (a group's processes that ended
    between them are not counted)."""
    if documents <= 0:
        return {}
    return {name: max(0.0, after[name] - before.get(name, 0.0)) / documents for name in after}
