"""Export at scale: 1,000,000 accepted candidates through `synthgate export`; prints time and peak memory.

Targets: under 30 s and under 500 MB (the export streams; it never loads all rows). The store is
built with bulk inserts; its decisions carry correct chain hashes computed with
`audit.decision_hash` and proofs made with the store's signing key (kept in WORK/home unless
SYNTHGATE_HOME is set, so `--verify` finds it) -- benchmark-only set-up, not a product code path (the product has no API
that writes an accepting decision without a reviewer in the review UI).

The baseline, measured in the same run, is the floor the database sets: streaming the same
candidate rows (JSON decoded) and writing their messages out, with no gate and no manifest.

    .venv/bin/python benchmarks/export_scale.py            # 1,000,000 rows
    .venv/bin/python benchmarks/export_scale.py --rows 100000 --verify
    .venv/bin/python benchmarks/export_scale.py --dir WORK --verify-only   # verify WORK's export again
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlmodel import col

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from process_tree import tree_rss_kib  # noqa: E402  (beside this script)

from generator.examples import messages_hash  # noqa: E402
from generator.init_project import init_project  # noqa: E402
from generator.store.audit import GENESIS, decision_hash  # noqa: E402
from generator.store.db import open_store, read_session, write_session  # noqa: E402
from generator.store.models import Candidate, Decision, DecisionChain, Run, utcnow  # noqa: E402
from generator.store.signing import key_for_signing  # noqa: E402

SYSTEM = "You are Ledgerly's support assistant. Answer accurately and concisely, using only documented features."
TAGS = ["billing", "invoices", "bank-sync", "reports", "account"]
REVIEWERS = ["ann", "bob", "chen"]
CHUNK = 20_000


def conversation(i: int, *, edited: bool = False) -> list[dict[str, str]]:
    answer = (
        f"For case {i}: open Settings, then Billing, and choose the plan that fits. Upgrades apply at once and you "
        f"pay only the prorated difference for the rest of the cycle; downgrades apply at the next renewal."
    )
    if edited:
        answer += " (Corrected by the reviewer: annual plans are refunded pro rata within 30 days.)"
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Question {i}: how do I change my plan, and what does it cost me mid-cycle?"},
        {"role": "assistant", "content": answer},
    ]


def build_store(url: str, rows: int, edit_every: int) -> None:
    """Bulk-insert `rows` candidates, each with an accepting decision chained as record_decision would chain it."""
    engine = open_store(url)
    start = utcnow()
    with write_session(engine) as session:
        session.execute(
            insert(Run),
            [
                {
                    "id": "bench-run",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "template": "prompts/generate.jinja",
                    "template_hash": "t" * 64,
                    "config": {"count": rows},
                    "created_at": start,
                    "updated_at": start,
                }
            ],
        )
        # The key record_decision would sign with (created here, on the store's first decision).
        key = key_for_signing(session)
    prev_hash = GENESIS
    for first in range(1, rows + 1, CHUNK):
        ids = range(first, min(first + CHUNK, rows + 1))
        candidates, decisions = [], []
        for i in ids:
            messages = conversation(i)
            edited = conversation(i, edited=True) if i % edit_every == 0 else None
            candidates.append(
                {
                    "id": i,
                    "source_key": f"bench:{i}",
                    "content_hash": messages_hash(messages),
                    "messages": messages,
                    "tags": [TAGS[i % len(TAGS)]],
                    "run_id": "bench-run",
                    "seed_ids": [],
                    "template_hash": "t" * 64,
                    "model": "gpt-4o-mini",
                    "status": "accepted",
                    "flags": [],
                    "review_order": 0,
                    "created_at": start,
                }
            )
            fields: dict[str, Any] = {
                "id": i,
                "candidate_id": i,
                "reviewer": REVIEWERS[i % len(REVIEWERS)],
                "action": "edit" if edited else "accept",
                "reasons": [],
                "note": None,
                "edited_messages": edited,
                "content_hash": messages_hash(edited or messages),
                "undoes_id": None,
                "seconds": 4.0 + i % 7,
                "created_at": start + timedelta(microseconds=i),
                "prev_hash": prev_hash,
            }
            fields["hash"] = prev_hash = decision_hash(**fields)
            fields["proof"] = key.proof(prev_hash)
            decisions.append(fields)
        with write_session(engine) as session:
            session.execute(insert(Candidate), candidates)
            session.execute(insert(Decision), decisions)
            session.execute(update(DecisionChain).where(col(DecisionChain.id) == 1).values(seq=ids[-1], head_hash=prev_hash))
    engine.dispose()


def baseline_seconds(url: str, out: Path) -> tuple[float, float]:
    """Stream every candidate's messages out as JSON lines, no gate, no hashes, no manifest: wall and CPU seconds."""
    engine = open_store(url)
    began, cpu_began = time.perf_counter(), time.process_time()
    with read_session(engine) as session, out.open("w", encoding="utf-8") as handle:
        rows = session.connection().execution_options(yield_per=2000).execute(select(col(Candidate.messages)).order_by(col(Candidate.id)))
        for (messages,) in rows:
            handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    engine.dispose()
    return elapsed, cpu


def run_measured(args: list[str], cwd: Path) -> tuple[float, float, float, int, str]:
    """Run `synthgate ARGS`: wall seconds, CPU seconds, peak RSS of its whole process tree (MB), exit code, output.

    A large export renders in spawned worker processes, so memory is sampled over the whole tree every 20 ms.
    """
    with tempfile.TemporaryFile("w+") as output:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "generator", *args], cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        peak_kib = 0
        while process.poll() is None:
            peak_kib = max(peak_kib, tree_rss_kib(process.pid))
            time.sleep(0.02)
        elapsed = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        output.seek(0)
        return elapsed, cpu, peak_kib / 1024, process.returncode, output.read()


def time_verify(project: Path, url: str, out: Path, work: Path) -> None:
    """Time `synthgate verify` (target: 1,000,000 lines under 20 s): wall, CPU of its process tree, and the machine's load."""
    load_before = os.getloadavg()[0]
    seconds, cpu, peak_mb, code, output = run_measured(["--project", str(project), "--db", url, "verify", str(out)], cwd=work)
    lines = sum(1 for _ in out.open("rb"))
    print(
        f"verify: exit {code}, {lines:,} lines in {seconds:.1f} s (target < 20 s at 1,000,000), {cpu:.1f} CPU s "
        f"({cpu / max(lines, 1) * 1e6:.1f} us a line, user+sys over the process tree), peak memory {peak_mb:.0f} MB; "
        f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    if code != 0:
        print(output[-2000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="accepted candidates in the store")
    parser.add_argument("--edit-every", type=int, default=10, help="every Nth decision is an edit")
    parser.add_argument("--format", default="openai", help="export format to measure")
    parser.add_argument("--verify", action="store_true", help="also time `synthgate verify` on the export")
    parser.add_argument("--verify-only", action="store_true", help="only time `synthgate verify` on the export already in --dir")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one; an existing store in it is reused)")
    options = parser.parse_args()

    work = options.dir or Path(tempfile.mkdtemp(prefix="synthgate-export-bench-"))
    # The store's signing key goes beside the store, not into the user's config folder; the
    # export and verify subprocesses inherit it.
    os.environ.setdefault("SYNTHGATE_HOME", str(work / "home"))
    project = work / "project"
    if not project.exists():
        init_project(project)
    url = f"sqlite:///{work / 'queue.db'}"
    if not (work / "queue.db").exists():
        began = time.perf_counter()
        build_store(url, options.rows, options.edit_every)
        print(f"built store: {options.rows:,} accepted candidates in {time.perf_counter() - began:.1f} s ({work / 'queue.db'})")

    if options.verify_only:
        if options.dir is None or not (work / "export.jsonl").exists():
            sys.exit("--verify-only needs --dir with an export made by an earlier run")
        time_verify(project, url, work / "export.jsonl", work)
        return
    base, base_cpu = baseline_seconds(url, work / "baseline.jsonl")
    load_before = os.getloadavg()[0]
    out = work / "export.jsonl"
    seconds, cpu, peak_mb, code, output = run_measured(
        ["--project", str(project), "--db", url, "export", "-o", str(out), "--format", options.format], cwd=work
    )
    if code != 0:
        sys.exit(f"export failed (exit {code}):\n{output}")
    lines = sum(1 for _ in out.open("rb"))
    print(
        f"export: {lines:,} lines ({options.format}) in {seconds:.1f} s (target < 30 s), peak memory {peak_mb:.0f} MB (whole process tree; target < 500 MB)"
    )
    print(f"  {cpu:.1f} CPU seconds over {os.cpu_count()} cores; machine load average before: {load_before:.2f}")
    print(
        f"  {lines / seconds:,.0f} lines/s; {out.stat().st_size / 1e6:.0f} MB file + {Path(str(out) + '.manifest.json').stat().st_size / 1e6:.0f} MB manifest"
    )
    print(
        f"baseline (one process streams the rows and writes their messages; no gate, no manifest): {base:.1f} s, "
        f"{base_cpu:.1f} CPU s -> the export costs {cpu / base_cpu:.2f}x its CPU and {seconds / base:.2f}x its time"
    )
    if options.verify:
        time_verify(project, url, out, work)
    if options.dir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
