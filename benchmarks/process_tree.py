"""Resident memory of a process tree, for the benchmarks that start synthgate (its writer and export workers are processes of their own)."""

from __future__ import annotations

from pathlib import Path


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB, from /proc (Linux)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue  # the process ended between looks
    return total
