"""Benchmark: `synthgate check` over 100,000 pending candidates against 1,000 seeds and a 1,000-example holdout.

Prints the end-to-end time and peak memory of the real command (a subprocess: imports, seed sync,
holdout loading, reading the queue, checking, writing results), how many planted duplicates it
caught, and the ratio against naive pairwise Jaccard measured here on a 2,000-candidate subset
and extrapolated. Targets: under 60 s and under 2 GB on a 2-core machine.

    .venv/bin/python benchmarks/checks_scale.py [--candidates 100000] [--seeds 1000] [--holdout 1000]
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
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator.examples import Message  # noqa: E402
from generator.init_project import init_project  # noqa: E402
from generator.similarity import jaccard, shingles, similarity_text  # noqa: E402
from generator.store.db import open_store, read_session, write_session  # noqa: E402
from generator.store.intake import NewCandidate, add_candidates  # noqa: E402
from generator.store.models import Candidate  # noqa: E402

SYSTEM = json.loads((REPO / "seeds" / "support.jsonl").read_text().splitlines()[0])["messages"][0]["content"]
TAGS = ["billing", "invoices", "payments", "bank-sync", "expenses", "taxes", "account", "integrations"]


class Corpus:
    """Support-like conversations: sentences of Zipf-distributed words from the repository's own texts."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        text = (REPO / "seeds" / "PRODUCT.md").read_text() + (REPO / "seeds" / "support.jsonl").read_text()
        vocabulary = sorted(set(re.findall(r"[A-Za-z][a-z']+", text)))
        weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
        self.rng.shuffle(weights)
        self.sentences = [
            " ".join(self.rng.choices(vocabulary, weights, k=self.rng.randint(6, 18))).capitalize() + "." for _ in range(40_000)
        ]

    def conversation(self) -> list[dict[str, str]]:
        question = self.rng.choice(self.sentences)[:-1] + "?"
        answer = " ".join(self.rng.sample(self.sentences, self.rng.randint(2, 5)))
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    def one_word_changed(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        words = messages[-1]["content"].split(" ")
        words[self.rng.randrange(1, len(words) - 1)] = "meanwhile"
        return [*messages[:-1], {"role": "assistant", "content": " ".join(words)}]


def shout(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"].upper() + "  "} for m in messages]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def build_project(
    root: Path, *, candidates: int, seeds: int, holdout: int
) -> tuple[dict[str, str], list[list[dict[str, str]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A project whose store holds `candidates` pending candidates, some of them planted duplicates."""
    corpus = Corpus()
    init_project(root)
    seed_records: list[dict[str, Any]] = [
        {"id": f"seed-{i:04d}", "tags": [TAGS[i % len(TAGS)]], "messages": corpus.conversation()} for i in range(seeds)
    ]
    holdout_records: list[dict[str, Any]] = [{"id": f"holdout-{i:04d}", "messages": corpus.conversation()} for i in range(holdout)]
    write_jsonl(root / "seeds" / "seeds.jsonl", seed_records)
    (root / "eval").mkdir()
    write_jsonl(root / "eval" / "holdout.jsonl", holdout_records)
    config = root / "synthgate.toml"
    config.write_text(config.read_text().replace("# holdout = []", 'holdout = ["eval/holdout.jsonl"]', 1))

    conversations: list[list[dict[str, str]]] = []
    clean: list[list[dict[str, str]]] = []  # originals for planted duplicates
    planted: dict[str, str] = {}  # source key -> the reason a correct check gives it
    for index in range(candidates):
        roll = corpus.rng.random()
        if roll < 0.02 and clean:
            messages, reason = shout(corpus.rng.choice(clean)), "exact duplicate"
        elif roll < 0.04 and clean:
            messages, reason = corpus.one_word_changed(corpus.rng.choice(clean)), "near-duplicate of candidate"
        elif roll < 0.045:
            messages, reason = corpus.one_word_changed(corpus.rng.choice(seed_records)["messages"]), "near-duplicate of seed"
        elif roll < 0.05:
            messages, reason = corpus.rng.choice(holdout_records)["messages"], "holdout leak"
        else:
            messages, reason = corpus.conversation(), ""
            clean.append(messages)
        conversations.append(messages)
        if reason:
            planted[f"c{index}"] = reason
    engine = open_store(f"sqlite:///{root / '.synthgate' / 'queue.db'}")
    with write_session(engine) as session:
        add_candidates(session, [NewCandidate(source_key=f"c{i}", messages=m) for i, m in enumerate(conversations)])
    engine.dispose()
    return planted, conversations, seed_records, holdout_records


def run_check(root: Path) -> tuple[float, float, str]:
    """Wall seconds and peak resident memory (MB) of `synthgate check`, and its output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "generator", "check"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"synthgate check failed:\n{output}")
    return elapsed, usage.ru_maxrss / 1024, output


def naive_pairwise(conversations: list[list[dict[str, str]]], references: list[list[dict[str, str]]]) -> tuple[float, int]:
    """Seconds and pairs for exact Jaccard of every candidate against every reference and every earlier candidate."""
    started = time.perf_counter()
    as_sets = lambda items: [shingles(similarity_text([Message(**m) for m in messages])) for messages in items]  # noqa: E731
    candidate_sets, reference_sets = as_sets(conversations), as_sets(references)
    pairs = 0
    for position, candidate in enumerate(candidate_sets):
        for other in reference_sets:
            jaccard(candidate, other)
        for other in candidate_sets[:position]:
            jaccard(candidate, other)
        pairs += len(reference_sets) + position
    return time.perf_counter() - started, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=1_000)
    parser.add_argument("--holdout", type=int, default=1_000)
    parser.add_argument("--subset", type=int, default=2_000, help="candidates in the naive pairwise baseline")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        started = time.perf_counter()
        planted, conversations, seeds, holdout = build_project(root, candidates=args.candidates, seeds=args.seeds, holdout=args.holdout)
        print(
            f"set-up (not timed): {args.candidates:,} pending candidates, {args.seeds:,} seeds, {args.holdout:,} holdout "
            f"examples, {len(planted):,} planted duplicates, in {time.perf_counter() - started:.1f} s"
        )

        elapsed, peak_mb, output = run_check(root)
        print(output.rstrip())
        engine = open_store(f"sqlite:///{root / '.synthgate' / 'queue.db'}")
        with read_session(engine) as session:
            found = dict(
                session.execute(
                    select(col(Candidate.source_key), col(Candidate.filter_reason)).where(col(Candidate.status) == "filtered")
                ).all()
            )
            pending = session.execute(
                select(func.count()).where(col(Candidate.status) == "pending", col(Candidate.nearest_seed_id).is_not(None))
            ).scalar()
        engine.dispose()
        caught = Counter(reason for key, reason in planted.items() if found.get(key) == reason)
        for reason, total in sorted(Counter(planted.values()).items()):
            print(f"  planted {reason}: {caught[reason]:,} of {total:,} caught with that reason")
        clean_filtered = sum(1 for key in found if key not in planted)
        print(f"  clean candidates filtered: {clean_filtered:,}; pending candidates with a nearest seed: {pending:,}")

        subset = conversations[: args.subset]
        baseline, pairs = naive_pairwise(subset, [r["messages"] for r in seeds + holdout])
        n, refs = args.candidates, args.seeds + args.holdout
        full_pairs = n * refs + n * (n - 1) // 2
        extrapolated = baseline / pairs * full_pairs
        print()
        print(
            f"synthgate check, {args.candidates:,} candidates: {elapsed:.1f} s, peak memory {peak_mb:,.0f} MB (targets: < 60 s, < 2,048 MB)"
        )
        print(
            f"naive pairwise Jaccard: {baseline:.1f} s for {args.subset:,} candidates ({pairs:,} pairs); "
            f"extrapolated to {args.candidates:,} ({full_pairs:,} pairs): {extrapolated:,.0f} s ({extrapolated / 3600:.1f} h)"
        )
        print(f"speed-up over naive pairwise: {extrapolated / elapsed:,.0f}x")


if __name__ == "__main__":
    main()
