"""`synthgate stats`: what the review store holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from generator.cli.app import app, console, state


@app.command("stats")
def stats_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables (stable keys for scripts).")] = False,
) -> None:
    """Show seeds, runs, candidates by status and decisions in the review store."""
    from generator.stats import collect_stats
    from generator.store.db import read_session

    with read_session(state(ctx).engine) as session:
        stats = collect_stats(session)
    if as_json:
        console.print(json.dumps(stats, indent=2, sort_keys=True, default=str))
        return
    table = Table(title="Review store", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("verified seeds", str(stats["seeds"]))
    table.add_row("generation runs", str(stats["runs"]))
    for status, count in stats["candidates"].items():
        table.add_row(f"candidates {status}", str(count))
    for reason, count in stats["filtered_by_reason"].items():
        table.add_row(f"  filtered: {reason}", str(count))
    for kind, count in stats["flags_by_kind"].items():
        table.add_row(f"  flagged: {kind}", str(count))
    table.add_row("decisions", str(stats["decisions"]))
    console.print(table)
