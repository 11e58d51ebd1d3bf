"""`synthgate seeds check`: validate and lint the verified seed set."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from generator.cli.app import app, console, state
from generator.config import SeedsSection

seeds_app = typer.Typer(help="Work with the verified seed examples.", no_args_is_help=True)
app.add_typer(seeds_app, name="seeds")


@seeds_app.command("check")
def seeds_check(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Seed files to check (default: the project's [seeds] paths).", dir_okay=False),
    ] = None,
) -> None:
    """Validate every seed line and lint the set; exit 2 on errors (warnings do not fail).

    Looks for broken JSON or schema (file:line), exact and near-duplicate seeds, inconsistent system
    prompts, formatting drift, tags with too few examples and length outliers. When the project's
    seeds have no errors they are recorded in the review store as the verified baseline.
    """
    from generator.errors import UserError
    from generator.seed_lint import length_stats, lint_seeds, signing_text, tag_counts
    from generator.seed_near_duplicates import EARLY_START_BYTES, SeedSigning, start_workers
    from generator.seeds import load_seeds

    cli = state(ctx)
    if files:
        project = None
        with suppress(UserError):  # checking loose files outside a project is fine
            project = cli.project
        config = project.config.seeds if project else SeedsSection()
        paths = files
        root = project.root if project else Path.cwd()
    else:
        project = cli.project
        config = project.config.seeds
        paths = project.seed_files()
        root = project.root
        if not paths:
            raise UserError(
                "no seed files match [seeds] paths " + ", ".join(config.paths),
                file=project.config_path,
                fix="add verified examples to seeds/*.jsonl, or correct [seeds] paths",
            )
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError("seed file not found", file=missing[0], fix="check the path")

    # A large set is signed for near-duplicates while it loads: the worker starts now and gets each
    # 2,048 seeds as they are read (100,000 seeds: it was idle for the 1.9 s of loading).
    workers = start_workers() if sum(path.stat().st_size for path in paths) >= EARLY_START_BYTES else None
    signing = SeedSigning(threshold=config.near_duplicate_threshold, workers=workers) if workers is not None else None
    try:
        seed_set = load_seeds(
            paths, default_verified_by=config.verified_by, on_seed=(lambda seed: signing.add(signing_text(seed))) if signing else None
        )
        problems = seed_set.problems + lint_seeds(seed_set, config, signing=signing)
    finally:
        if signing is not None:
            signing.close()
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]

    console.print(f"Checked {len(paths)} file(s): {len(seed_set.seeds)} valid seed(s).")
    if seed_set.seeds:
        table = Table(title="Seeds per tag", title_justify="left")
        table.add_column("tag")
        table.add_column("seeds", justify="right")
        for tag, count in sorted(tag_counts(seed_set.seeds).items()):
            table.add_row(tag, str(count))
        console.print(table)
        stats = length_stats(seed_set.seeds)
        assert stats is not None
        console.print(f"Answer length (chars): min {stats.minimum}, median {stats.median:.0f}, p90 {stats.p90:.0f}, max {stats.maximum}")
    if errors or warnings:
        # One print for the whole list: 5,500 prints of one line each took 0.5 s of the 100,000-seed
        # benchmark, one print of them all 0.1 s. The console (markup off, soft wrap) renders the joined
        # lines exactly as it rendered each: nothing it replaces (":emoji:" codes) spans a newline.
        console.print("\n".join(f"{problem.severity}: {problem.render(root)}" for problem in errors + warnings))
    console.print(f"{len(errors)} error(s), {len(warnings)} warning(s).")

    if errors:
        raise typer.Exit(2)
    if project is not None and not files:
        from generator.store.db import write_session
        from generator.store.intake import sync_seeds

        with write_session(cli.engine) as session:
            count = sync_seeds(session, seed_set.seeds, root=project.root)
        console.print(f"Recorded {count} verified seed(s) in the review store.")
