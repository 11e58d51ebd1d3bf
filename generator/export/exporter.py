"""`export_dataset`: accepted examples (and optionally the verified seeds) through a format into atomic files with a manifest."""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from generator import __version__
from generator.errors import UserError, WorkFailed
from generator.examples import canonical_hash
from generator.export.formats import FORMATS, ExportFormat
from generator.export.manifest import manifest_path, write_manifest
from generator.export.render import Part, PartJob, SkipLog, render_all_candidates, render_seeds, spooled_content_hashes
from generator.export.writer import AtomicFile, OutputFile, route_lines, write_entries
from generator.project import Project
from generator.store.models import DecisionChain, Run, utcnow


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
class ExportReport:
    files: list[OutputFile]
    manifest: Path
    counts: dict[str, int]
    skipped: SkipLog


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
        job = PartJob(
            format=fmt.name, tags=options.tags, split_seed=options.split_seed, splitting=options.val_fraction > 0,
            seed_hashes=frozenset(), spool_folder=folder, name="seeds",
        )
        parts = [render_seeds(session, job)] if options.include_seeds else []
        seed_hashes = frozenset(e for p in parts for e in spooled_content_hashes(p))
        parts += render_all_candidates(session, replace(job, seed_hashes=seed_hashes), workers=workers)
        skipped = SkipLog()
        for part in parts:
            skipped.merge(part.skipped)
        kinds = sum((p.kinds for p in parts), Counter())
        total = sum(p.spool.count for p in parts)
        if total == 0:
            raise WorkFailed(_nothing_message(options, skipped), fix=_nothing_fix(options))
        counts = {"lines": total, "accepted": kinds["accepted"], "edited": kinds["edited"], "seeds": kinds["seed"], "skipped": sum(skipped.counts.values())}
        return _write_files(session, options, project, fmt, parts, counts=counts, skipped=skipped, head=head)


def _write_files(session: Session, options: ExportOptions, project: Project | None, fmt: ExportFormat, parts: list[Part],
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
