"""The manifest's summary re-proved for `verify`: its counts, the runs behind the lines, the chain head at export.

The per-line checks prove each entry; these prove that the summary a reader trusts (counts,
models, template and config hashes) is what those entries and the store add up to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from generator.examples import canonical_hash
from generator.store.models import DecisionChain, Run

# The fields of a manifest's `runs` entries, each as the store's run row gives it.
RUN_FIELDS = ("provider", "model", "template", "template_hash", "config_sha256")


@dataclass
class Tally:
    """What the manifest's entries and the exported candidates add up to, gathered while the lines are checked."""

    entries: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # "accept", "edit", "seed", "pair" (a variant pair)
    run_ids: dict[str, str] = field(default_factory=dict)  # run id -> the first line exported from it ("file:line")
    template_hashes: dict[str, str] = field(default_factory=dict)  # likewise
    # Where each example was first exported, to name both lines of a duplicate. Packed ints
    # (file index << 32 | line): ~110 MB at a million lines, a third of what tuples would take.
    first_candidate_line: dict[int, int] = field(default_factory=dict)
    first_seed_line: dict[str, int] = field(default_factory=dict)
    first_pair_line: dict[tuple[int | None, int | None], int] = field(default_factory=dict)  # (chosen, rejected) candidate ids

    def counted(self, entries: Iterator[Any]) -> Iterator[Any]:
        """The manifest's entries, passed through and counted by kind as they are read."""
        for entry in entries:
            self.entries += 1
            if isinstance(entry, dict):
                kind = entry.get("kind")
                self.kinds[kind if kind in ("seed", "pair") else str(entry.get("action"))] += 1
            yield entry


def chain_anchor(session: Session, value: Any) -> tuple[tuple[int, str] | None, str | None]:
    """The chain head recorded at export, (seq, head hash), or why it cannot be used."""
    if not isinstance(value, dict) or not _is_count(value.get("seq")) or not isinstance(value.get("head_hash"), str):
        return None, "manifest field decision_chain is damaged (it needs a 'seq' count and a 'head_hash')"
    seq, head_hash = value["seq"], value["head_hash"]
    if seq == 0 and head_hash:
        return None, f"manifest field decision_chain.head_hash is {head_hash!r}, but an export made before any decision has none"
    head = session.get(DecisionChain, 1)
    if head is not None and seq > head.seq:
        return None, f"manifest field decision_chain.seq is {seq}, but the store has only {head.seq} decision(s)"
    return (seq, head_hash), None


def summary_problems(session: Session, header: dict[str, Any], tally: Tally) -> Iterator[str]:
    """Each summary field that disagrees with the entries or the store, named, with both values."""
    yield from _count_problems(header, tally)
    yield from _run_problems(session, header, tally)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count_problems(header: dict[str, Any], tally: Tally) -> Iterator[str]:
    counts = header.get("counts")
    if not isinstance(counts, dict):
        yield "manifest field counts is missing or damaged"
        return
    skipped = header.get("skipped")
    if not isinstance(skipped, list) or not all(isinstance(s, dict) and _is_count(s.get("count")) for s in skipped):
        yield "manifest field skipped is missing or damaged (each reason needs a 'count')"
        skipped = []
    actual = {
        "lines": (tally.entries, "its entries list"),
        "accepted": (tally.kinds["accept"], "its entries hold accepts for"),
        "edited": (tally.kinds["edit"], "its entries hold edits for"),
        "seeds": (tally.kinds["seed"], "its entries hold seeds for"),
        "skipped": (sum(s["count"] for s in skipped), "its skipped reasons add up to"),
    }
    if "rejected" in counts:  # manifests from before labelled formats have no such count
        actual["rejected"] = (tally.kinds["reject"], "its entries hold rejections for")
    if "pairs" in counts or tally.kinds["pair"]:  # written only when variant pairs were exported
        actual["pairs"] = (tally.kinds["pair"], "its entries hold variant pairs for")
    for name, (value, how) in actual.items():
        if counts.get(name) != value:
            yield f"manifest field counts.{name} is {counts.get(name)!r}, but {how} {value}"


def _run_problems(session: Session, header: dict[str, Any], tally: Tally) -> Iterator[str]:
    runs = header.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        yield "manifest field runs is missing or damaged"
        runs = []
    listed: set[str] = set()
    for index, described in enumerate(runs):
        run_id = described.get("id")
        run = session.get(Run, run_id) if isinstance(run_id, str) else None
        if run is None:
            yield f"manifest field runs[{index}].id is {run_id!r}, but the store has no such run"
            continue
        listed.add(run_id)
        stored = {
            "provider": run.provider,
            "model": run.model,
            "template": run.template,
            "template_hash": run.template_hash,
            "config_sha256": canonical_hash(run.config),
        }
        for name in RUN_FIELDS:
            if described.get(name) != stored[name]:
                yield f"manifest field runs[{index}].{name} is {described.get(name)!r}, but run {run_id} has {stored[name]!r}"
    for run_id, line in tally.run_ids.items():
        if run_id not in listed:
            yield f"{line} comes from run {run_id}, which the manifest's runs do not list"
    template_hashes = header.get("template_hashes")
    if not isinstance(template_hashes, list):
        yield "manifest field template_hashes is missing or damaged"
        template_hashes = []
    for template_hash, line in tally.template_hashes.items():
        if template_hash not in template_hashes:
            yield f"{line} was generated with template {template_hash}, which manifest field template_hashes does not list"
