"""Benchmark: `synthgate seeds check` on 10,000, 50,000 and 100,000 seed lines, against a linear extrapolation.

The lines are the repository's own seeds (seeds/support.jsonl) repeated with about a third of their
words swapped for others from the same texts, so most are distinct; 1% are planted exact duplicates
(exit 2, as a real set with them would) and 5% near-duplicates, some in families of one seed's
variants. Each size runs the real command in a subprocess (interpreter start, imports, loading,
every lint, printing the report); the linear extrapolation is start-up plus the smallest size's
remaining time scaled by the line count. Target: 100,000 lines in under 10 s on 2 cores. From 15,000
seeds on, near-duplicate signing also runs in a second process: wall time then grows slower than
linear (ratio below 1) while CPU time stays linear; compare the CPU column for scaling.

    .venv/bin/python benchmarks/seeds_scale.py [--sizes 10000 50000 100000] [--project]

--project checks the seeds as a project's seed files, which also records them in its review store.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator.init_project import init_project  # noqa: E402

WORD = re.compile(r"[A-Za-z][a-z']+")


def seed_lines(count: int, seed: int = 0) -> list[str]:
    """`count` seed lines: perturbed copies of the shipped seeds, with planted exact and near-duplicates."""
    rng = random.Random(seed)
    shipped = [json.loads(line) for line in (REPO / "seeds" / "support.jsonl").read_text().splitlines() if line.strip()]
    text = (REPO / "seeds" / "PRODUCT.md").read_text() + json.dumps(shipped)
    vocabulary = sorted(set(WORD.findall(text)))

    def reworded(content: str, share: float) -> str:
        return WORD.sub(lambda word: rng.choice(vocabulary) if rng.random() < share else word.group(0), content)

    def variant(record: dict[str, Any], share: float) -> dict[str, Any]:
        turns = [m if m["role"] == "system" else {**m, "content": reworded(m["content"], share)} for m in record["messages"]]
        return {"tags": record.get("tags", []), "messages": turns}

    records: list[dict[str, Any]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.01 and records:
            records.append(rng.choice(records))  # exact duplicate
        elif roll < 0.06 and records:
            records.append(variant(rng.choice(records[-50:]), 0.02))  # near-duplicate, often of a recent near-duplicate: families
        else:
            records.append(variant(rng.choice(shipped), 0.3))
    return [json.dumps(record, ensure_ascii=False) for record in records]


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of a command, and its last output line."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 2):  # 2: the planted exact duplicates are errors
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, output.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--project", action="store_true", help="check them as a project's seeds (also records them in the store)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        init_project(root)
        start_wall, start_cpu, _ = timed([sys.executable, "-m", "generator", "--version"], root)
        print(f"interpreter start-up: {start_wall:.2f} s wall, {start_cpu:.2f} s CPU; load average {os.getloadavg()[0]:.1f}")
        print(f"{'lines':>8}  {'wall s':>7}  {'CPU s':>6}  {'linear wall':>11}  {'ratio':>5}  result")
        first: tuple[int, float] | None = None
        for size in sorted(args.sizes):
            path = root / "seeds" / "seeds.jsonl"
            path.write_text("\n".join(seed_lines(size)) + "\n", encoding="utf-8")
            command = [sys.executable, "-m", "generator", "seeds", "check"] + ([] if args.project else [str(path)])
            wall, cpu, last = timed(command, root)
            first = first or (size, wall)
            linear = start_wall + (first[1] - start_wall) * size / first[0]
            print(f"{size:>8,}  {wall:>7.2f}  {cpu:>6.2f}  {linear:>11.2f}  {wall / linear:>5.2f}  {last}", flush=True)
        print("ratio: wall time over the linear extrapolation from the smallest size (1.00 = linear); target: 100,000 lines < 10 s")


if __name__ == "__main__":
    main()
