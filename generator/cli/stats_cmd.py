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
    """The team's dashboard: the queue by status, acceptance rate by run, template, model and tag,
    top reject and filter reasons, reviewer throughput, and API cost per accepted example."""
    from generator.stats import collect_stats
    from generator.store.db import read_session

    with read_session(state(ctx).reading_engine) as session:
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
    for kind, count in stats["flags_by_kind"].items():
        table.add_row(f"  flagged: {kind}", str(count))
    table.add_row("decisions", str(stats["decisions"]))
    console.print(table)
    print_dashboard(stats)


def _count_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, count in counts.items():
        table.add_row(reason, str(count))
    return table


def print_dashboard(stats: dict) -> None:  # type: ignore[type-arg]
    """Acceptance, reasons, reviewers and cost: the tables after the store's counts."""
    for key, label in (("by_run", "run"), ("by_template", "template"), ("by_model", "model"), ("by_tag", "tag")):
        groups = stats["acceptance"][key]
        if not groups:
            continue
        table = Table(title=f"Acceptance by {label}", title_justify="left")
        for column in (label, "accepted", "rejected", "pending", "rate"):
            table.add_column(column, justify="left" if column == label else "right")
        for name, row in groups.items():
            rate = "-" if row["acceptance_rate"] is None else f"{row['acceptance_rate']:.0%}"
            table.add_row(name, str(row["accepted"]), str(row["rejected"]), str(row["pending"]), rate)
        console.print(table)
    if stats["reject_reasons"]:
        console.print(_count_table("Top reject reasons", stats["reject_reasons"]))
    if stats["filtered_by_reason"]:
        console.print(_count_table("Top filter reasons", stats["filtered_by_reason"]))  # a handful of fixed reasons
    reviewers = stats["reviewers"]
    if reviewers["by_reviewer"]:
        table = Table(title=f"Reviewer throughput (median {reviewers['median_seconds_per_decision']} s per decision)", title_justify="left")
        for column in ("reviewer", "decisions", "median s"):
            table.add_column(column, justify="left" if column == "reviewer" else "right")
        for name, row in reviewers["by_reviewer"].items():
            table.add_row(name, str(row["decisions"]), f"{row['median_seconds']:.1f}")
        console.print(table)
    cost = stats["cost"]
    per_accepted = "-" if cost["per_accepted_usd"] is None else f"${cost['per_accepted_usd']:.4f}"
    console.print(
        f"API cost: ${cost['total_usd']:.4f} over {cost['calls']} call(s) "
        f"({cost['input_tokens']} input, {cost['output_tokens']} output tokens); per accepted example: {per_accepted}"
    )
