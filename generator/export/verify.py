"""`verify FILE`: re-prove every line of an export against the review store, using the manifest written beside it.

Each line must still map to a live accepting decision by a named reviewer whose hash recomputes
and whose content is the line's content (seed lines: a verified seed with that content), and the
whole decision chain must be intact. Lines are matched to manifest entries by their sha256, so
a line edited, added or removed after export is reported by its own number.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice, zip_longest
from pathlib import Path
from typing import Any

import orjson
from sqlmodel import Session, col, select

from generator.batching import batched
from generator.examples import FormatError, messages_hash
from generator.export.formats import FORMATS, ExportFormat
from generator.export.manifest import iter_manifest_entries, manifest_path, read_manifest_header
from generator.export.selection import gate_problem, hashed_fields
from generator.store.audit import latest_live_decision_id
from generator.store.audit import verify_chain
from generator.store.models import Candidate, Decision, SeedRecord

BATCH = 500
# Failures kept for the report; the count is always complete.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Failure:
    file: str
    line: int | None  # None: about the file or the store as a whole
    problem: str

    def render(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}" if self.line else f"{self.file}: {self.problem}"


@dataclass
class VerifyReport:
    manifest: Path
    format: str
    lines_checked: int = 0
    failure_count: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    def fail(self, file: str, line: int | None, problem: str) -> None:
        self.failure_count += 1
        if len(self.failures) < MAX_LISTED:
            self.failures.append(Failure(file, line, problem))


@dataclass(frozen=True)
class _Pair:
    """An exported line matched to its manifest entry."""

    line_number: int
    text: bytes
    entry: dict[str, Any]


def verify_export(session: Session, *, data_file: Path) -> VerifyReport:
    """Check every line of the export whose training file is `data_file` (its manifest covers the validation file too)."""
    path = manifest_path(data_file)
    header = read_manifest_header(path)
    fmt = FORMATS.get(header.get("format", ""))
    report = VerifyReport(manifest=path, format=str(header.get("format")))
    if fmt is None:
        report.fail(path.name, None, f"unknown format {header.get('format')!r} in the manifest")
        return report
    entries = iter_manifest_entries(path)
    for described in header["files"]:
        name = described["path"]
        file_entries = islice(entries, int(described["lines"]))
        target = path.parent / name
        if not target.is_file():
            report.fail(name, None, "the file is missing")
        else:
            for batch in batched(_pairs(report, name, target, described, file_entries), BATCH):
                _check_batch(session, report, fmt, name, batch)
        for _ in file_entries:  # a missing file read none of its entries: keep the next file's aligned
            pass
    _check_chain(session, report, path.name, header.get("decision_chain") or {})
    return report


def _digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def _pairs(report: VerifyReport, name: str, target: Path, described: dict[str, Any], entries: Iterator[dict[str, Any]]) -> Iterator[_Pair]:
    """Lines matched to their entries; lines and entries that match nothing are reported here."""
    if _file_sha256(target) == described.get("sha256"):
        # The file is byte-for-byte what was exported: line n is entry n, if the entries agree.
        with target.open("rb") as handle:
            for number, (text, entry) in enumerate(zip_longest(handle, entries), start=1):
                if text is None:
                    report.fail(name, None, f"the manifest lists a line {number} that the file does not have")
                    continue
                report.lines_checked += 1
                text = text.rstrip(b"\n")
                if entry is None or (entry.get("file"), entry.get("line"), entry.get("sha256")) != (name, number, _digest(text)):
                    report.fail(name, number, "the manifest has no entry for this line (the manifest was altered)")
                    continue
                yield _Pair(number, text, entry)
        return
    lines = target.read_bytes().splitlines()
    listed = [e for e in entries if e.get("file") == name]
    report.lines_checked += len(lines)
    expected = [e.get("sha256") for e in listed]
    actual = [_digest(text) for text in lines]
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                yield _Pair(j + 1, lines[j], listed[i])
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for j in range(j1, j1 + paired):
            report.fail(name, j + 1, "edited after export: it differs from the line exported here")
        for j in range(j1 + paired, j2):
            report.fail(name, j + 1, "not in the manifest: added after export")
        for i in range(i1 + paired, i2):
            report.fail(name, None, f"exported line {listed[i].get('line', i + 1)} is missing (removed after export)")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_line(fmt: ExportFormat, text: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON ({exc})") from None
    problems = fmt.problems(record)
    if problems:
        raise FormatError(f"breaks the {fmt.name} format rules: {problems[0]}")
    return fmt.read_back(record)


def _check_batch(session: Session, report: VerifyReport, fmt: ExportFormat, name: str, batch: list[_Pair]) -> None:
    candidate_ids = {int(p.entry.get("candidate_id") or 0) for p in batch if p.entry.get("kind") == "candidate"}
    decision_ids = {int(p.entry.get("decision_id") or 0) for p in batch if p.entry.get("kind") == "candidate"}
    # Plain rows, not ORM objects: a million-line export is checked 500 lines at a time.
    decisions = {d.id: d for d in session.execute(select(Decision.__table__).where(col(Decision.id).in_(decision_ids)))}
    candidates: dict[int, list[dict[str, Any]]] = {}
    if fmt.needs_original:
        candidates = dict(session.execute(select(Candidate.id, Candidate.messages).where(col(Candidate.id).in_(candidate_ids))).all())
    latest = dict(
        session.execute(select(Candidate.id, latest_live_decision_id(Candidate.id)).where(col(Candidate.id).in_(candidate_ids))).all()
    )
    seed_hashes = {p.entry.get("content_hash") for p in batch if p.entry.get("kind") == "seed"}
    seeds = set(session.exec(select(SeedRecord.content_hash).where(col(SeedRecord.content_hash).in_(seed_hashes))))
    for pair in batch:
        try:
            final, original = _read_line(fmt, pair.text)
        except FormatError as exc:
            report.fail(name, pair.line_number, str(exc))
            continue
        if pair.entry.get("kind") == "seed":
            problem = _seed_problem(pair.entry, final, seeds)
        else:
            problem = _candidate_problem(pair.entry, final, original, decisions, candidates, latest)
        if problem:
            report.fail(name, pair.line_number, problem)


def _seed_problem(entry: dict[str, Any], final: list[dict[str, Any]], seeds: set[str]) -> str | None:
    if messages_hash(final) != entry.get("content_hash"):
        return f"the content differs from seed {entry.get('seed_id')} as exported"
    if entry.get("content_hash") not in seeds:
        return f"seed {entry.get('seed_id')} is no longer in the verified seed set (removed or changed in the seed files)"
    return None


def _candidate_problem(
    entry: dict[str, Any],
    final: list[dict[str, Any]],
    original: list[dict[str, Any]] | None,
    decisions: dict[int, Any],
    candidates: dict[int, list[dict[str, Any]]],
    latest: dict[int, int | None],
) -> str | None:
    decision_id, candidate_id = entry.get("decision_id"), entry.get("candidate_id")
    decision = decisions.get(decision_id)  # type: ignore[arg-type]
    if decision is None:
        return f"decision {decision_id} no longer exists (removed from the database)"
    if decision.candidate_id != candidate_id:
        return f"decision {decision_id} is about candidate {decision.candidate_id}, not {candidate_id}"
    problem = gate_problem(hashed_fields(decision), stored_hash=decision.hash, final_messages=final)
    if problem:
        return f"{problem} (decision {decision_id})"
    if decision.hash != entry.get("decision_hash"):
        return f"decision {decision_id} is not the one recorded at export (its hash changed)"
    newest = latest.get(candidate_id)  # type: ignore[arg-type]
    if newest != decision_id:
        return (
            f"decision {decision_id} was undone: candidate {candidate_id} is no longer accepted"
            if newest is None
            else f"candidate {candidate_id} was decided again after export (decision {newest})"
        )
    if original is not None:
        model_text = candidates.get(candidate_id)  # type: ignore[arg-type]
        if model_text is None or messages_hash(original) != messages_hash(model_text):
            return f"the non-preferred output is not candidate {candidate_id}'s original text"
    return None


def _check_chain(session: Session, report: VerifyReport, name: str, anchor: dict[str, Any]) -> None:
    for chain_break in verify_chain(session):
        where = f"decision {chain_break.decision_id}: " if chain_break.decision_id else ""
        report.fail(name, None, f"decision history broken: {where}{chain_break.problem}")
    seq = int(anchor.get("seq") or 0)
    if seq:
        row = session.get(Decision, seq)
        if row is None or row.hash != anchor.get("head_hash"):
            report.fail(name, None, f"decision history changed since export: decision {seq} no longer has the hash recorded in the manifest")
