"""`export_dataset`: accepted examples (and optionally the verified seeds) through a format into atomic files with a manifest."""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from generator import __version__
from generator.errors import UserError, WorkFailed
from generator.examples import canonical_hash
from generator.export.card import CARD_NAME, is_synthgate_card, render_card
from generator.export.formats import FORMATS, ExportFormat
from generator.export.manifest import write_manifest
from generator.export.render import Part, PartJob, SkipLog, render_seeds, render_variant_pairs, spooled_content_hashes
from generator.export.selection import PROOFS_UNCHECKED, proof_check
from generator.export.targets import ExportTargets, OutputGuard
from generator.export.workers import ChainHead, begin_snapshot, render_all_candidates
from generator.export.writer import AtomicFile, OutputFile, commit_together, route_lines, write_entries
from generator.project import Project
from generator.store.db import sqlite_path
from generator.store.models import Run, utcnow
from generator.store.signing import store_identity


@dataclass(frozen=True)
class ExportOptions:
    output: Path
    format: str = "openai"
    include_seeds: bool = False
    tags: tuple[str, ...] = ()
    val_fraction: float = 0.0
    split_seed: int = 0
    val_output: Path | None = None
    force: bool = False  # replace an existing file that is not a previous export (never a project file)
    card: Path | None = None  # the dataset card (default: README.md beside the training file, when that is free or ours)
    write_card: bool = True

    @property
    def validation_path(self) -> Path:
        """Where validation lines go: --val-output, else FILE with `.val` before its suffix (data.jsonl -> data.val.jsonl)."""
        if self.val_output is not None:
            return self.val_output
        return self.output.with_name(f"{self.output.stem}.val{self.output.suffix or '.jsonl'}")


@dataclass
class ExportReport:
    files: list[OutputFile]
    manifest: Path
    counts: dict[str, int]
    skipped: SkipLog
    notes: list[str] = field(default_factory=list)  # what the user must still know (e.g. proofs not checked here)
    card: Path | None = None


def export_dataset(session: Session, *, options: ExportOptions, project: Project | None = None, workers: int | None = None) -> ExportReport:
    """Write the export and its manifest, or nothing at all (WorkFailed when no example passes).

    `workers`: processes that render candidates (default: one per CPU, up to 4, for large stores).

    Where it may write is checked first (UserError, nothing written): never over the project's
    own files or the store, never over a folder, device or pipe, never into a missing folder, and
    over an existing file only when it is a previous export or `options.force` is set.
    """
    fmt = FORMATS.get(options.format)
    if fmt is None:
        raise UserError(f"unknown export format {options.format!r}", fix=f"use one of {', '.join(FORMATS)}")
    if fmt.needs_original and options.include_seeds:
        raise UserError(
            f"--include-seeds cannot be used with --format {fmt.name}",
            fix="seeds have no model original to prefer a correction over; export the seeds in another format",
        )
    guard = OutputGuard(project, _store_file(session))
    data_files = [options.output, options.validation_path] if options.val_fraction > 0 else [options.output]
    card, notes = _card_path(options)
    targets = guard.plan(data_files, force=options.force, card=card)
    # The first read of the export's one read transaction: the manifest's chain head describes exactly the state exported.
    head = begin_snapshot(session)
    # Read here only to tell the user; each rendering process checks the proofs with its own read of the key.
    notes += [PROOFS_UNCHECKED] if proof_check(session).unchecked else []
    with tempfile.TemporaryDirectory(prefix="synthgate-export-") as spool_folder:
        job = PartJob(
            format=fmt.name,
            tags=options.tags,
            split_seed=options.split_seed,
            splitting=options.val_fraction > 0,
            seed_hashes=frozenset(),
            spool_folder=Path(spool_folder),
            name="seeds",
        )
        parts = [render_seeds(session, job)] if options.include_seeds else []
        seed_hashes = frozenset(e for p in parts for e in spooled_content_hashes(p))
        parts += render_all_candidates(session, replace(job, seed_hashes=seed_hashes), head=head, workers=workers)
        if fmt.needs_original:  # pair formats: also every accepted/rejected pair within a variant group
            parts.append(render_variant_pairs(session, replace(job, name="pairs")))
        skipped = SkipLog()
        for part in parts:
            skipped.merge(part.skipped)
        kinds = sum((p.kinds for p in parts), Counter())
        total = sum(p.spool.count for p in parts)
        if total == 0:
            raise WorkFailed(_nothing_message(options, skipped), fix=_nothing_fix(options))
        counts = {
            "lines": total,
            "accepted": kinds["accepted"],
            "edited": kinds["edited"],
            "seeds": kinds["seed"],
            "skipped": sum(skipped.counts.values()),
        }
        if fmt.labelled:
            counts["rejected"] = kinds["rejected"]  # the negatives a human's rejection made
        if kinds["pair"]:
            counts["pairs"] = kinds["pair"]  # pair lines from variant groups (the other pairs are corrections: "edited")
        report = _write_files(
            session, options, project, fmt, parts, guard=guard, targets=targets, counts=counts, skipped=skipped, head=head
        )
    report.notes.extend(notes)
    return report


def _card_path(options: ExportOptions) -> tuple[Path | None, list[str]]:
    """Where the dataset card goes: --card (checked like every output), else README.md beside the file unless someone else's."""
    if not options.write_card:
        return None, []
    if options.card is not None:
        return options.card, []
    beside = options.output.with_name(CARD_NAME)
    if beside.exists() and not is_synthgate_card(beside):
        # Not even with --force: the default never replaces a README synthgate did not write.
        return None, [f"{beside} is not a dataset card synthgate wrote: left alone (pass --card PATH to write the card elsewhere)"]
    return beside, []


def _store_file(session: Session) -> Path | None:
    bind = session.get_bind()
    return sqlite_path(bind if isinstance(bind, Engine) else bind.engine)


def store_location(session: Session) -> str:
    """Where the store lives, as a user would pass it to --db: its SQLite file, or its URL without a password."""
    path = _store_file(session)
    if path is not None:
        return f"sqlite:///{path.resolve()}"
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return engine.url.render_as_string(hide_password=True)


def _write_files(
    session: Session,
    options: ExportOptions,
    project: Project | None,
    fmt: ExportFormat,
    parts: list[Part],
    *,
    guard: OutputGuard,
    targets: ExportTargets,
    counts: dict[str, int],
    skipped: SkipLog,
    head: ChainHead,
) -> ExportReport:
    """Assemble the parts into the data files and write the manifest; commit all of them or none."""
    train_path = targets.data_files[0]
    created: list[AtomicFile] = []
    try:
        outputs: list[OutputFile] = []
        for path, split in zip(targets.data_files, ("train", "validation"), strict=False):
            outputs.append(OutputFile(path, split, _display(path, train_path)))
            created.append(outputs[-1].file)
        manifest = AtomicFile(targets.manifest)
        created.append(manifest)
        train, validation = outputs[0], (outputs[1] if len(outputs) > 1 else None)
        spools = [p.spool for p in parts]
        to_validation = route_lines(spools, train=train, validation=validation, val_fraction=options.val_fraction)
        files = [o for o in outputs if o.lines]
        header = {
            "exported_at": utcnow().isoformat(timespec="seconds"),
            "synthgate_version": __version__,
            # verify compares it with the store it is pointed at, and says so plainly when they differ.
            "store_id": store_identity(session).store_id,
            "store_location": store_location(session),
            "format": fmt.name,
            "options": {
                "include_seeds": options.include_seeds,
                "tags": list(options.tags),
                "val_fraction": options.val_fraction,
                "split_seed": options.split_seed,
            },
            "project": _project_summary(project),
            "runs": _runs_summary(session, set().union(*(p.run_ids for p in parts))),
            "template_hashes": sorted(set().union(*(p.template_hashes for p in parts))),
            "decision_chain": {"seq": head.seq, "head_hash": head.head_hash},
            "counts": counts,
            "skipped": skipped.as_manifest(),
            "files": [{"path": f.display_name, "split": f.split, "lines": f.lines, "sha256": f.sha256} for f in files],
            # What the dataset card tells a reader (verify does not rely on these).
            "tag_counts": dict(sorted(sum((p.tag_counts for p in parts), Counter()).items())),
            "reviewers": dict(sorted(sum((p.reviewers for p in parts), Counter()).items())),
            "checks": project.config.checks.model_dump(mode="json") if project is not None else {},
        }
        write_manifest(manifest, header, lambda out: write_entries(out, spools, files, to_validation))
        if targets.card is not None:
            manifest.handle.flush()
            card_text = render_card(
                header, manifest_sha256=file_sha256(manifest.temporary[0]), manifest=targets.manifest, card=targets.card
            )
            card = AtomicFile(targets.card)
            created.append(card)
            card.handle.write(card_text.encode())
        for unused in (o for o in outputs if not o.lines):
            unused.file.discard()
        # The export took a while: what now sits at the destinations must still be safe to replace.
        guard.check(targets, force=options.force)
        # Data files first, the manifest last: a manifest on disk always describes complete files.
        commit_together([*(f.file for f in files), manifest, *created[len(outputs) + 1 :]])
    except BaseException as exc:
        for temporary in created:
            temporary.discard()
        if isinstance(exc, OSError):
            raise WorkFailed(
                f"writing the export failed: {exc.strerror or exc}",
                file=train_path,
                fix="free disk space or choose another folder, then export again",
            ) from None
        raise
    return ExportReport(files=files, manifest=manifest.destination, counts=counts, skipped=skipped, card=targets.card)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    runs = session.exec(select(Run).where(col(Run.id).in_(sorted(run_ids))).order_by(col(Run.id))).all()
    return [
        {
            "id": run.id,
            "provider": run.provider,
            "model": run.model,
            "template": run.template,
            "template_hash": run.template_hash,
            "config_sha256": canonical_hash(run.config),
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
