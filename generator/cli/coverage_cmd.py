"""`synthgate coverage`: accepted examples per tag and edge case against the [coverage] targets."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from generator.cli.app import app, console, state


@app.command("coverage")
def coverage_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table (stable keys for scripts).")] = False,
) -> None:
    """Accepted examples per tag and per edge case (edge:* tags) against their targets, least covered first.

    A tag's target is [coverage] tags.TAG when set, else its share of the verified seeds times
    [coverage] target (default 500). `synthgate generate --fill-gaps` aims the next run at the tag
    furthest below its target.
    """
    from generator.coverage import coverage, coverage_json
    from generator.store.db import read_session

    cli = state(ctx)
    with read_session(cli.reading_engine) as session:
        rows = coverage(session, cli.project.config.coverage)
    if as_json:
        console.print(json.dumps(coverage_json(rows), indent=2, sort_keys=True))
        return
    console.print(coverage_table(rows))


def coverage_table(rows: list) -> Table:  # type: ignore[type-arg]
    """The coverage rows as a table with a bar per tag (shared with `stats`); edge cases are the edge:* tags."""
    from generator.charts import bar

    table = Table(title="Coverage (accepted against target)", title_justify="left")
    for column in ("tag", "seeds", "accepted", "target", "shortfall", "covered"):
        table.add_column(column, justify="left" if column in ("tag", "covered") else "right")
    if not rows:
        table.caption = "no tags yet: run `synthgate seeds check` to record the seeds, or set [coverage] tags"
    for row in rows:
        covered = f"{row.covered:>4.0%} {bar(min(row.covered, 1.0), width=10)}"
        table.add_row(row.tag, str(row.seeds), str(row.accepted), str(row.target), str(row.shortfall), covered)
    return table
