"""`synthgate export`, `synthgate verify` and `synthgate promote`: the accepted examples leave the store, with proof."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from generator.cli.app import app, check_tags, console, err_console, state
from generator.errors import UserError
from generator.export.formats import FORMATS

FORMAT_HELP = "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values()) + ". Default: \\[export] format, else openai."


@app.command("export")
def export_command(
    ctx: typer.Context,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Training file to write (JSONL), in an existing folder. Its manifest is written beside it as FILE.manifest.json.",
        ),
    ],
    format: Annotated[str | None, typer.Option("--format", "-f", help=FORMAT_HELP)] = None,
    include_seeds: Annotated[
        bool | None,
        typer.Option(
            "--include-seeds/--no-seeds",
            help="Also write the verified seeds (recorded by `synthgate seeds check`). Default: \\[export] include_seeds.",
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only examples with this tag (repeat for any of several).")] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction",
            min=0.0,
            max=0.99,
            help="Write this share of each category tag to a validation file, e.g. 0.1. Default: \\[export] val_fraction (0: no split).",
        ),
    ] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(
            "--split-seed",
            help="Seed of the train/validation split; the same seed and store give the same split. Default: \\[export] split_seed.",
        ),
    ] = None,
    val_output: Annotated[
        Path | None, typer.Option("--val-output", help="Validation file (default: FILE with .val before its suffix, e.g. data.val.jsonl).")
    ] = None,
    card: Annotated[
        Path | None,
        typer.Option(
            "--card",
            help="Where to write the dataset card (a Hugging Face README.md made from the manifest). Default: README.md beside FILE, "
            "unless a README.md synthgate did not write is there (then none, with a note).",
            dir_okay=False,
        ),
    ] = None,
    no_card: Annotated[bool, typer.Option("--no-card", help="Write no dataset card.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing file that is not a previous synthgate export. Never replaces the store, seeds, holdout, template, context, replay or config files.",
        ),
    ] = False,
) -> None:
    """Write every example a named reviewer accepted (the corrected version where edited), and nothing else.

    Output order is deterministic (seeds by id, then candidates by id): the same store gives
    byte-identical files. The data file(s) and the manifest appear together or not at all. A line
    the format's rules would refuse is reported and left out. Exit 1 when nothing passes the gate
    (no file is written).

    Exit 2, writing nothing, when FILE, the validation file or the manifest is the review store
    (or its -wal/-shm/-journal), a seed, holdout, template, context, replay or promote_to file,
    synthgate.toml, a folder, a device, pipe or socket, or is in a missing folder. An existing file
    is replaced only when it is a previous synthgate export (its manifest names it) or with --force.
    """
    from generator.export.exporter import ExportOptions, export_dataset, iter_skip_lines
    from generator.store.db import read_session

    cli = state(ctx)
    config = cli.project.config.export
    chosen = format or config.format
    if chosen not in FORMATS:
        raise UserError(f"--format {chosen!r} is not a known format", fix=f"use one of {', '.join(FORMATS)}")
    options = ExportOptions(
        output=output,
        format=chosen,
        include_seeds=config.include_seeds if include_seeds is None else include_seeds,
        tags=check_tags(tag),
        val_fraction=config.val_fraction if val_fraction is None else val_fraction,
        split_seed=config.split_seed if split_seed is None else split_seed,
        val_output=val_output,
        force=force,
        card=card,
        write_card=not no_card,
    )
    with read_session(cli.reading_engine) as session:
        report = export_dataset(session, options=options, project=cli.project)
    counts = report.counts
    console.print(export_summary(chosen, counts))
    for written in report.files:
        console.print(f"  {written.split}: {written.path} ({written.lines} lines, sha256 {written.sha256[:16]}...)")
    console.print(f"  manifest: {report.manifest}")
    if report.card is not None:
        console.print(f"  dataset card: {report.card}")
    if options.val_fraction > 0 and len(report.files) == 1:
        err_console.print("warning: every category is too small for a validation share; no validation file was written")
    for line in iter_skip_lines(report):
        err_console.print(line)
    for note in report.notes:
        err_console.print(f"note: {note}")


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A training or validation file written by `synthgate export` (its manifest must be in the same folder).", dir_okay=False
        ),
    ],
) -> None:
    """Re-prove every line of an export against the review store; exit 1 if any line fails.

    Each line must still map to a live accepting decision by a named reviewer, whose hash recomputes
    and whose content is the line's content (seed lines: a verified seed with that content), and
    the decision chain must be intact. Lines edited, added or removed after export are reported
    by number, as are decisions altered, removed or undone in the store.

    Only reads: it never creates or changes a store. Pointed at another store than the export's
    (or at none), it names the store the export came from and exits 2.
    """
    from generator.export.manifest import find_manifest, read_manifest_header
    from generator.export.verify import verify_export, wrong_store_error
    from generator.store.db import create_store_engine, read_session, sqlite_path

    cli = state(ctx)
    manifest = find_manifest(file)
    header = read_manifest_header(manifest)
    unopened = create_store_engine(cli.project.db_url, create_folder=False)  # connects to nothing yet
    missing = sqlite_path(unopened)
    unopened.dispose()
    if missing is not None and not missing.exists():
        # Verify only reads: opening a store that is not there would create an empty one.
        raise wrong_store_error(header, manifest, verifying_against=f"no store (nothing at {missing})")
    with read_session(cli.reading_engine) as session:
        report = verify_export(session, data_file=file)
    for failure in report.failures:
        console.print(f"FAIL {failure.render()}")
    if report.failure_count > len(report.failures):
        console.print(f"... and {report.failure_count - len(report.failures)} more failure(s)")
    if report.ok:
        for note in report.notes:
            console.print(f"note: {note}")
        console.print(
            f"OK: {report.lines_checked} line(s) verified against the review store ({report.format}; manifest {report.manifest})."
        )
        return
    console.print(f"FAILED: {report.failure_count} problem(s) in {report.lines_checked} line(s) checked.")
    raise typer.Exit(1)


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Seed file to append to, relative to the project (default: \\[export] promote_to, seeds/promoted.jsonl).",
            dir_okay=False,
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only promote examples with this tag (repeat for any of several).")] = None,
) -> None:
    """Append accepted examples to the verified seed pool, each with its reviewer as verified_by.

    The next generation round then grows from the larger baseline. Examples already in the pool
    (same conversation) are not added again, so running it twice adds nothing twice. Run
    `synthgate seeds check` afterwards to record the new seeds in the store.
    """
    from generator.promote import promote_accepted
    from generator.store.db import read_session

    cli = state(ctx)
    project = cli.project
    target = project.path(to if to is not None else project.config.export.promote_to)
    with read_session(cli.reading_engine) as session:
        report = promote_accepted(session, project=project, target=target, tags=check_tags(tag))
    console.print(f"Promoted {report.added} accepted example(s) to {target} ({report.already_seeds} already in the seed pool).")
    for candidate, problem in sorted(report.invalid.items()):
        err_console.print(f"skipped {candidate}: not a valid seed: {problem}")
    for refusal in report.refused:
        err_console.print(f"skipped candidate:{refusal.candidate_id}: left out by the gate: {refusal.reason}")
    for note in report.notes:
        err_console.print(f"note: {note}")
    if report.outside_seed_paths:
        err_console.print(f"warning: {target} is not matched by [seeds] paths; add it there so generation uses the promoted seeds")
    if report.added:
        console.print("Next: run `synthgate seeds check` to record them as verified seeds.")


def export_summary(fmt: str, counts: dict[str, int]) -> str:
    """What the export holds, in the unit of its format: examples, labelled lines, or preference pairs."""
    if "rejected" in counts:  # unpaired preferences: every human decision is a labelled line
        corrections = counts["edited"] // 2  # a correction is two lines (both counted as edited): its answer true, the model's false
        positives = counts["accepted"] + corrections + counts["seeds"]
        return (
            f"Exported {counts['lines']} labelled line(s) as {fmt}: {positives} labelled true ({counts['accepted']} accepted, "
            f"{corrections} corrected, {counts['seeds']} seed(s)), {counts['rejected'] + corrections} labelled false "
            f"({counts['rejected']} rejected, {corrections} model answer(s) a reviewer corrected)."
        )
    if FORMATS[fmt].needs_original:  # pairs: a correction over the model's answer, or an accepted over a rejected variant
        pairs = counts.get("pairs", 0)
        return (
            f"Exported {counts['lines']} preference pair(s) as {fmt}: {counts['lines'] - pairs} from corrections, "
            f"{pairs} from variant groups."
        )
    return f"Exported {counts['lines']} example(s) as {fmt}: {counts['accepted']} accepted, {counts['edited']} edited, {counts['seeds']} seed(s)."
