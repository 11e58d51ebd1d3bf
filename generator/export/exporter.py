"""`export_dataset`: accepted examples (and optionally the verified seeds) through a format into atomic files with a manifest.

Rendering (the gate's checks, the format, the JSON) is the expensive part, so a large store is
rendered by several processes, each over its own range of candidate ids, into spool files that
are then assembled in id order: the output is the same bytes as a single process writes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func
from sqlmodel import Session, select

from generator import __version__
from generator.errors import UserError, WorkFailed
from generator.examples import canonical_json
from generator.export.formats import FORMATS, ExportFormat, Unrepresentable
from generator.export.manifest import manifest_path, write_manifest
from generator.export.selection import AcceptedCandidate, GateTally, Refusal, count_accepted_statuses, iter_accepted
from generator.export.writer import AtomicFile, OutputFile, PartSpool, route_lines, split_rank, write_entries
from generator.project import Project
from generator.store.models import Candidate, DecisionChain, Run, SeedRecord, utcnow

FORGED = "left out by the gate: marked accepted without a live accepting decision"
# How many ids per skip reason the manifest lists (the counts are always complete).
LISTED_PER_REASON = 100
# Below this many candidates one process is quicker than starting others.
PARALLEL_FROM = 50_000
MAX_WORKERS = 4
RANGES_PER_WORKER = 4


@dataclass(frozen=True)
class ExportOptions:
    output: Path
    format: str = "openai"
    include_seeds: bool = False
    tags: tuple[str, ...] = ()
    val_fraction: float = 0.0
    split_seed: int = 0
    val_output: Path | None = None

    @property
    def validation_path(self) -> Path:
        """Where validation lines go: --val-output, else FILE with `.val` before its suffix (data.jsonl -> data.val.jsonl)."""
        if self.val_output is not None:
            return self.val_output
        return self.output.with_name(f"{self.output.stem}.val{self.output.suffix or '.jsonl'}")


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
        return [{"reason": reason, "count": count, "examples": self.listed.get(reason, [])} for reason, count in sorted(self.counts.items())]


@dataclass
class ExportReport:
    files: list[OutputFile]
    manifest: Path
    counts: dict[str, int]
    skipped: SkipLog


@dataclass(frozen=True)
class _PartJob:
    """One part of the export to render. Picklable: it may run in another process."""

    format: str
    tags: tuple[str, ...]
    split_seed: int
    splitting: bool
    seed_hashes: frozenset[str]
    spool_folder: Path
    name: str
    id_range: tuple[int, int] | None = None
    db_url: str | None = None  # set when the part runs in its own process, with its own connection


@dataclass
class _Part:
    """A rendered part: its spooled lines and what rendering it found."""

    spool: PartSpool
    kinds: Counter[str] = field(default_factory=Counter)
    skipped: SkipLog = field(default_factory=SkipLog)
    run_ids: set[str] = field(default_factory=set)
    template_hashes: set[str] = field(default_factory=set)


def _category(tags: list[str]) -> str:
    # The stratum of the train/validation split: the category tag (as Example.category), or none.
    return next((t for t in tags if not t.startswith("edge:")), "(untagged)")


class _Renderer:
    """Renders items through a format and its rules into a part's spool."""

    def __init__(self, job: _PartJob, part: _Part) -> None:
        self.fmt: ExportFormat = FORMATS[job.format]
        self.split_seed = job.split_seed
        self.splitting = job.splitting
        self.part = part

    def emit(self, *, ident: str, kind: str, final: list[dict[str, Any]], original: list[dict[str, Any]] | None,
             tags: list[str], entry: dict[str, Any]) -> None:
        try:
            record = self.fmt.render(final, original)
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
            self.part.spool.add(line, orjson.dumps(entry), stratum=_category(tags), rank=split_rank(self.split_seed, ident))
        else:
            self.part.spool.add(line, orjson.dumps(entry))
        self.part.kinds[kind] += 1


def _render_candidates(session: Session, job: _PartJob) -> _Part:
    part = _Part(PartSpool(job.spool_folder, job.name))
    renderer = _Renderer(job, part)
    tally = GateTally()
    with part.spool:
        for item in iter_accepted(session, tags=job.tags, id_range=job.id_range, on_refusal=part.skipped.refused, tally=tally):
            ident = f"candidate:{item.candidate_id}"
            if item.content_hash in job.seed_hashes:
                part.skipped.add("already in the export as a verified seed (promoted)", ident)
                continue
            if item.run_id:
                part.run_ids.add(item.run_id)
            if item.template_hash:
                part.template_hashes.add(item.template_hash)
            renderer.emit(ident=ident, kind="edited" if item.edited else "accepted", final=item.messages,
                          original=item.original_messages, tags=item.tags, entry=_candidate_entry(item))
    # Counted in the same read transaction as the rows above, so both see one state of the store.
    forged = count_accepted_statuses(session, id_range=job.id_range) - tally.backed_statuses
    if forged:
        part.skipped.counts[FORGED] += forged
    return part


def _render_candidates_in_worker(job: _PartJob) -> _Part:
    from generator.store.db import create_store_engine, read_session

    assert job.db_url is not None
    engine = create_store_engine(job.db_url)
    try:
        with read_session(engine) as session:
            return _render_candidates(session, job)
    finally:
        engine.dispose()


def _render_seeds(session: Session, job: _PartJob) -> _Part:
    """The verified seeds, by id. Their content hashes keep a promoted candidate from being written twice."""
    seeds = list(session.exec(select(SeedRecord).order_by(SeedRecord.id)))
    if not seeds:
        raise UserError(
            "--include-seeds: the review store holds no verified seeds",
            fix="run `synthgate seeds check` to record the project's seeds, then export again",
        )
    part = _Part(PartSpool(job.spool_folder, job.name))
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


def _candidate_entry(item: AcceptedCandidate) -> dict[str, Any]:
    return {
        "kind": "candidate",
        "candidate_id": item.candidate_id,
        "decision_id": item.decision_id,
        "action": item.action,
        "reviewer": item.reviewer,
        "decided_at": item.decided_at.isoformat(),
        "decision_hash": item.decision_hash,
    }


def export_dataset(session: Session, *, options: ExportOptions, project: Project | None = None, workers: int | None = None) -> ExportReport:
    """Write the export and its manifest, or nothing at all (WorkFailed when no example passes).

    `workers`: processes that render candidates (default: one per CPU, up to 4, for large stores).
    """
    fmt = FORMATS.get(options.format)
    if fmt is None:
        raise UserError(f"unknown export format {options.format!r}", fix=f"use one of {', '.join(FORMATS)}")
    if fmt.needs_original and options.include_seeds:
        raise UserError(
            f"--include-seeds cannot be used with --format {fmt.name}",
            fix="seeds have no model original to prefer a correction over; export the seeds in another format",
        )
    head = session.get(DecisionChain, 1)
    with tempfile.TemporaryDirectory(prefix="synthgate-export-") as spool_folder:
        folder = Path(spool_folder)
        job = _PartJob(
            format=fmt.name, tags=options.tags, split_seed=options.split_seed, splitting=options.val_fraction > 0,
            seed_hashes=frozenset(), spool_folder=folder, name="seeds",
        )
        parts = [_render_seeds(session, job)] if options.include_seeds else []
        seed_hashes = frozenset(e for p in parts for e in _spooled_content_hashes(p))
        parts += _render_all_candidates(session, job, seed_hashes=seed_hashes, workers=workers)
        skipped = SkipLog()
        for part in parts:
            skipped.merge(part.skipped)
        kinds = sum((p.kinds for p in parts), Counter())
        total = sum(p.spool.count for p in parts)
        if total == 0:
            raise WorkFailed(_nothing_message(options, skipped), fix=_nothing_fix(options))
        counts = {"lines": total, "accepted": kinds["accepted"], "edited": kinds["edited"], "seeds": kinds["seed"], "skipped": sum(skipped.counts.values())}
        return _write_files(session, options, project, fmt, parts, counts=counts, skipped=skipped, head=head)


def _spooled_content_hashes(part: _Part) -> Iterator[str]:
    for entry in part.spool.iter_entries():
        yield entry["content_hash"]


def _render_all_candidates(session: Session, job: _PartJob, *, seed_hashes: frozenset[str], workers: int | None) -> list[_Part]:
    """Render candidates in one process, or in several over consecutive ranges of candidate ids."""
    low, high = session.execute(select(func.min(Candidate.id), func.max(Candidate.id))).one()
    base = replace(job, seed_hashes=seed_hashes, name="candidates")
    count = _worker_count(session, workers, 0 if low is None else high - low + 1)
    if low is None or count == 1:
        return [_render_candidates(session, base)]
    # More ranges than workers: a worker that finishes early takes the next range, so a busy
    # core does not leave the other idle at the end.
    ranges = count * RANGES_PER_WORKER
    step = (high - low + ranges) // ranges
    url = session.get_bind().url.render_as_string(hide_password=False)
    jobs = [
        replace(base, name=f"candidates-{index}", id_range=(start, min(start + step - 1, high)), db_url=url)
        for index, start in enumerate(range(low, high + 1, step))
    ]
    # fork: a spawned child would re-import the caller's __main__ (the CLI itself). SQLite allows
    # forking while a connection is open as long as the child never uses it: workers open their own.
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_render_candidates_in_worker, jobs))


def _worker_count(session: Session, requested: int | None, span: int) -> int:
    url = session.get_bind().url
    if url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:" or "mode=memory" in str(url)):
        return 1  # an in-memory store exists only in this process
    if requested is not None:
        return max(1, requested)
    return min(os.cpu_count() or 1, MAX_WORKERS) if span >= PARALLEL_FROM else 1


def _write_files(session: Session, options: ExportOptions, project: Project | None, fmt: ExportFormat, parts: list[_Part],
                 *, counts: dict[str, int], skipped: SkipLog, head: DecisionChain | None) -> ExportReport:
    """Assemble the parts into the data files and write the manifest; commit all of them or none."""
    created: list[AtomicFile] = []
    try:
        train = OutputFile(options.output, "train", _display(options.output, options.output))
        created.append(train.file)
        validation = None
        if options.val_fraction > 0:
            validation = OutputFile(options.validation_path, "validation", _display(options.validation_path, options.output))
            created.append(validation.file)
        manifest = AtomicFile(manifest_path(options.output))
        created.append(manifest)
        outputs = [o for o in (train, validation) if o is not None]
        spools = [p.spool for p in parts]
        to_validation = route_lines(spools, train=train, validation=validation, val_fraction=options.val_fraction)
        files = [o for o in outputs if o.lines]
        header = {
            "exported_at": utcnow().isoformat(timespec="seconds"),
            "synthgate_version": __version__,
            "format": fmt.name,
            "options": {"include_seeds": options.include_seeds, "tags": list(options.tags), "val_fraction": options.val_fraction, "split_seed": options.split_seed},
            "project": _project_summary(project),
            "runs": _runs_summary(session, set().union(*(p.run_ids for p in parts))),
            "template_hashes": sorted(set().union(*(p.template_hashes for p in parts))),
            "decision_chain": {"seq": head.seq if head else 0, "head_hash": head.head_hash if head else ""},
            "counts": counts,
            "skipped": skipped.as_manifest(),
            "files": [{"path": f.display_name, "split": f.split, "lines": f.lines, "sha256": f.sha256} for f in files],
        }
        write_manifest(manifest, header, lambda out: write_entries(out, spools, files, to_validation))
    except BaseException as exc:
        for temporary in created:
            temporary.discard()
        if isinstance(exc, OSError):
            raise WorkFailed(f"writing the export failed: {exc.strerror or exc}", file=options.output, fix="free disk space or choose another folder, then export again") from None
        raise
    # Data files first, the manifest last: a manifest on disk always describes complete files.
    for output in outputs:
        output.file.commit() if output in files else output.file.discard()
    manifest.commit()
    return ExportReport(files=files, manifest=manifest.destination, counts=counts, skipped=skipped)


def _display(path: Path, data_file: Path) -> str:
    """A file's name as the manifest records it: relative to the manifest's folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(data_file.resolve().parent))
    except ValueError:
        return str(path.resolve())


def _project_summary(project: Project | None) -> dict[str, Any]:
    if project is None:
        return {}
    return {
        "name": project.config.project.name,
        "config_sha256": hashlib.sha256(project.config_path.read_bytes()).hexdigest(),
    }


def _runs_summary(session: Session, run_ids: set[str]) -> list[dict[str, Any]]:
    """The generation runs behind the exported candidates: model, template and the hash of each run's settings."""
    if not run_ids:
        return []
    runs = session.exec(select(Run).where(Run.id.in_(sorted(run_ids))).order_by(Run.id)).all()
    return [
        {
            "id": run.id,
            "provider": run.provider,
            "model": run.model,
            "template": run.template,
            "template_hash": run.template_hash,
            "config_sha256": hashlib.sha256(canonical_json(run.config).encode()).hexdigest(),
        }
        for run in runs
    ]


def _nothing_message(options: ExportOptions, skipped: SkipLog) -> str:
    scope = f" with tag {', '.join(options.tags)}" if options.tags else ""
    message = f"nothing to export: no example{scope} passed the gate (an accept or edit by a named reviewer); no file written"
    if skipped.counts:
        message += "; left out: " + "; ".join(f"{reason} ({n})" for reason, n in sorted(skipped.counts.items()))
    return message


def _nothing_fix(options: ExportOptions) -> str:
    if options.tags:
        return "review candidates with that tag in `synthgate review`, or drop --tag"
    return "review candidates with `synthgate review` first (only accepted examples are exported)"


def iter_skip_lines(report: ExportReport) -> Iterator[str]:
    """Human-readable lines about what was left out, for the CLI."""
    for reason, count in sorted(report.skipped.counts.items()):
        shown = report.skipped.listed.get(reason, [])[:5]
        more = f" (e.g. {', '.join(shown)})" if shown else ""
        yield f"skipped {count}: {reason}{more}"
