"""Rendering an export's lines: accepted candidates (and seeds) through a format and its rules into spool files.

Everything read for one part (its rows and its forged-status count) comes from one read
transaction; `export.workers` renders a large store's candidates in several processes, each over
a range of ids, and keeps the parts consistent with the parent's snapshot.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlmodel import Session, select

from generator.errors import UserError
from generator.examples import category_of
from generator.export.formats import FORMATS, ExportFormat, Unrepresentable, kto_record
from generator.export.selection import (
    REJECTING_ACTIONS,
    AcceptedCandidate,
    GateTally,
    Refusal,
    count_accepted_statuses,
    iter_accepted,
    iter_variant_pairs,
)
from generator.export.writer import PartSpool, split_rank
from generator.store.models import SeedRecord

FORGED = "left out by the gate: marked accepted without a live accepting decision"
# How many ids per skip reason the manifest lists (the counts are always complete).
LISTED_PER_REASON = 100


@dataclass
class SkipLog:
    """Examples left out, counted by reason, with the first few ids of each kind listed."""

    counts: Counter[str] = field(default_factory=Counter)
    listed: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, ident: str) -> None:
        self.counts[reason] += 1
        shown = self.listed.setdefault(reason, [])
        if len(shown) < LISTED_PER_REASON:
            shown.append(ident)

    def refused(self, refusal: Refusal) -> None:
        self.add(f"left out by the gate: {refusal.reason}", f"candidate:{refusal.candidate_id}")

    def merge(self, other: SkipLog) -> None:
        self.counts.update(other.counts)
        for reason, idents in other.listed.items():
            shown = self.listed.setdefault(reason, [])
            shown.extend(idents[: LISTED_PER_REASON - len(shown)])

    def as_manifest(self) -> list[dict[str, Any]]:
        return [
            {"reason": reason, "count": count, "examples": self.listed.get(reason, [])} for reason, count in sorted(self.counts.items())
        ]


@dataclass(frozen=True)
class PartJob:
    """One part of the export to render: what to render and where to spool it."""

    format: str
    tags: tuple[str, ...]
    split_seed: int
    splitting: bool
    seed_hashes: frozenset[str]
    spool_folder: Path
    name: str
    id_range: tuple[int, int] | None = None  # (first, last) candidate id; None: all


@dataclass
class Part:
    """A rendered part: its spooled lines and what rendering it found."""

    spool: PartSpool
    kinds: Counter[str] = field(default_factory=Counter)
    tag_counts: Counter[str] = field(default_factory=Counter)  # lines per tag (the dataset card's table)
    reviewers: Counter[str] = field(default_factory=Counter)  # lines per reviewer (seeds: per verifier)
    skipped: SkipLog = field(default_factory=SkipLog)
    run_ids: set[str] = field(default_factory=set)
    template_hashes: set[str] = field(default_factory=set)


class _Renderer:
    """Renders items through a format and its rules into a part's spool."""

    def __init__(self, job: PartJob, part: Part) -> None:
        self.fmt: ExportFormat = FORMATS[job.format]
        self.split_seed = job.split_seed
        self.splitting = job.splitting
        self.part = part

    def emit(
        self,
        *,
        ident: str,
        kind: str,
        final: list[dict[str, Any]],
        original: list[dict[str, Any]] | None,
        tags: list[str],
        entry: dict[str, Any],
        label: bool | None = None,  # labelled formats: whether a human accepted this answer
    ) -> None:
        try:
            record = self.fmt.render(final, original) if label is None else kto_record(final, label)
        except Unrepresentable as skip:
            self.part.skipped.add(f"{self.fmt.name} cannot hold it: {skip.reason}", ident)
            return
        problems = self.fmt.problems(record)
        if problems:
            self.part.skipped.add(f"breaks the {self.fmt.name} format rules: {problems[0]}", ident)
            return
        try:
            # orjson: compact UTF-8 JSON, the same bytes for the same record, several times faster than json.
            line = orjson.dumps(record)
        except orjson.JSONEncodeError:
            self.part.skipped.add("holds text that is not valid Unicode (a lone surrogate)", ident)
            return
        entry["sha256"] = hashlib.sha256(line).hexdigest()
        if self.splitting:
            self.part.spool.add(
                line, orjson.dumps(entry), stratum=category_of(tags) or "(untagged)", rank=split_rank(self.split_seed, ident)
            )
        else:
            self.part.spool.add(line, orjson.dumps(entry))
        self.part.kinds[kind] += 1
        self.part.tag_counts.update(tags)
        self.part.reviewers[str(entry.get("reviewer") or entry.get("verified_by") or "")] += 1


def render_candidates(session: Session, job: PartJob) -> Part:
    """Every candidate (of the job's id range) that passes the gate, in id order; seeds already in the export left out."""
    part = Part(PartSpool(job.spool_folder, job.name))
    renderer = _Renderer(job, part)
    tally = GateTally()
    with part.spool:
        for item in _decided(session, job, renderer.fmt, part, tally):
            ident = f"candidate:{item.candidate_id}"
            if item.content_hash in job.seed_hashes:
                part.skipped.add("already in the export as a verified seed (promoted)", ident)
                continue
            if item.run_id:
                part.run_ids.add(item.run_id)
            if item.template_hash:
                part.template_hashes.add(item.template_hash)
            if renderer.fmt.needs_original and item.variant_group and not item.edited:
                continue  # an answer accepted as written makes pairs only with its group's rejected answers: render_variant_pairs
            if not renderer.fmt.labelled:
                kind = "edited" if item.edited else "accepted"
                renderer.emit(
                    ident=ident,
                    kind=kind,
                    final=item.messages,
                    original=item.original_messages,
                    tags=item.tags,
                    entry=_candidate_entry(item),
                )
            elif item.action in REJECTING_ACTIONS:
                renderer.emit(
                    ident=ident,
                    kind="rejected",
                    final=item.messages,
                    original=None,
                    tags=item.tags,
                    entry=_candidate_entry(item, label=False),
                    label=False,
                )
            else:
                # Every human decision is a label: an accepted answer true; a corrected one true, and the
                # model's original it replaced false (the reviewer's "not like this").
                kind = "edited" if item.edited else "accepted"
                renderer.emit(
                    ident=ident,
                    kind=kind,
                    final=item.messages,
                    original=None,
                    tags=item.tags,
                    entry=_candidate_entry(item, label=True),
                    label=True,
                )
                if item.edited:
                    entry = _candidate_entry(item, label=False)
                    renderer.emit(
                        ident=ident, kind=kind, final=item.original_messages, original=None, tags=item.tags, entry=entry, label=False
                    )
    # Counted in the same read transaction as the rows above, so both see one state of the store.
    forged = count_accepted_statuses(session, id_range=job.id_range) - tally.backed_statuses
    if forged:
        part.skipped.counts[FORGED] += forged
    return part


def render_variant_pairs(session: Session, job: PartJob) -> Part:
    """Preference formats: a pair line for every accepted and rejected answer of one variant group (generate --variants).

    Rendered in the export's own snapshot after the candidate parts (a group's members span any id
    range a worker renders). The line is the format's pair of (chosen, rejected): the same rules as a
    correction over the original, so both must answer the same prompt. Its manifest entry ties it to
    both decisions: the accepting one as for any line, the rejecting one under `rejected`.
    """
    part = Part(PartSpool(job.spool_folder, job.name))
    renderer = _Renderer(job, part)
    with part.spool:

        def unpaired(item: AcceptedCandidate) -> None:
            part.skipped.add(
                f"{renderer.fmt.name} cannot hold it: accepted, with no rejected answer in its variant group to pair with",
                f"candidate:{item.candidate_id}",
            )

        for pair in iter_variant_pairs(session, tags=job.tags, on_refusal=part.skipped.refused, on_unpaired=unpaired):
            chosen, rejected = pair.chosen, pair.rejected
            for item in (chosen, rejected):
                if item.run_id:
                    part.run_ids.add(item.run_id)
                if item.template_hash:
                    part.template_hashes.add(item.template_hash)
            loser = _candidate_entry(rejected)
            entry = {
                **_candidate_entry(chosen),
                "kind": "pair",
                "variant_group": chosen.variant_group,
                "rejected": {k: v for k, v in loser.items() if k != "kind"},
            }
            renderer.emit(
                ident=f"pair:{chosen.candidate_id}:{rejected.candidate_id}",
                kind="pair",
                final=chosen.messages,
                original=rejected.messages,
                tags=chosen.tags,
                entry=entry,
            )
    return part


def render_seeds(session: Session, job: PartJob) -> Part:
    """The verified seeds, by id. Their content hashes keep a promoted candidate from being written twice."""
    seeds = list(session.exec(select(SeedRecord).order_by(SeedRecord.id)))
    if not seeds:
        raise UserError(
            "--include-seeds: the review store holds no verified seeds",
            fix="run `synthgate seeds check` to record the project's seeds, then export again",
        )
    part = Part(PartSpool(job.spool_folder, job.name))
    renderer = _Renderer(job, part)
    wanted = set(job.tags)
    with part.spool:
        for seed in seeds:
            if wanted and wanted.isdisjoint(seed.tags):
                continue
            entry = {
                "kind": "seed",
                "seed_id": seed.id,
                "content_hash": seed.content_hash,
                "verified_by": seed.verified_by,
                "source": f"{seed.source}:{seed.line}",
            }
            renderer.emit(ident=f"seed:{seed.id}", kind="seed", final=seed.messages, original=None, tags=seed.tags, entry=entry)
    return part


def _decided(session: Session, job: PartJob, fmt: ExportFormat, part: Part, tally: GateTally) -> Iterator[AcceptedCandidate]:
    """The candidates the gate lets through, in id order; for a labelled format merged with those a human rejected."""
    accepted = iter_accepted(session, tags=job.tags, id_range=job.id_range, on_refusal=part.skipped.refused, tally=tally)
    if not fmt.labelled:
        return accepted
    rejected = iter_accepted(session, tags=job.tags, id_range=job.id_range, on_refusal=part.skipped.refused, actions=REJECTING_ACTIONS)
    return heapq.merge(accepted, rejected, key=lambda item: item.candidate_id)


def _candidate_entry(item: AcceptedCandidate, *, label: bool | None = None) -> dict[str, Any]:
    labelled = {} if label is None else {"label": label}
    # A reject's reasons are what the negative teaches; kept in the manifest, never in the training line.
    reasons = {"reasons": item.reasons} if item.action in REJECTING_ACTIONS else {}
    return {
        **labelled,
        **reasons,
        "kind": "candidate",
        "candidate_id": item.candidate_id,
        "decision_id": item.decision_id,
        "action": item.action,
        "reviewer": item.reviewer,
        "decided_at": item.decided_at.isoformat(),
        "decision_hash": item.decision_hash,
    }


def spooled_content_hashes(part: Part) -> Iterator[str]:
    for entry in part.spool.iter_entries():
        yield entry["content_hash"]
