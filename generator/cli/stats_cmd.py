"""`synthgate stats`: what the review store holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from generator.charts import plain
from generator.cli.app import app, console, state
from generator.errors import UserError

# The mark of a report synthgate wrote: a file without it is never replaced.
HTML_MARK = '<meta name="generator" content="synthgate stats">'


@app.command("stats")
def stats_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables (stable keys for scripts).")] = False,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the dashboard and its charts as one self-contained HTML file (no scripts, fonts or links). "
            "Replaces only a report synthgate wrote.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """The team's dashboard: the queue by status, acceptance rate by run, template, model and tag,
    top reject and filter reasons, reviewer throughput, API cost per accepted example, coverage
    against the [coverage] targets, and histograms of answer length, similarity to the nearest
    seed and seconds per decision (the newest 20,000 values of each)."""
    from generator.generation.pricing import PriceTable
    from generator.stats import collect_stats
    from generator.store.db import read_session

    cli = state(ctx)
    if html_file is not None:
        _check_html_target(html_file)
    with read_session(cli.reading_engine) as session:
        stats = collect_stats(
            session,
            cli.project.config.coverage,
            min_dwell_ms=cli.project.config.review.min_dwell_ms,
            prices=PriceTable(cli.project.config.pricing),
        )
    if html_file is not None:
        _write_html(html_file, stats)
        console.print(f"HTML report: {html_file}")
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
    table.add_row("decisions", str(stats["decisions"]))
    console.print(table)
    if stats["filtered_by_reason"]:  # a handful of fixed reasons
        console.print(_count_table("Why candidates were filtered (never shown for review)", stats["filtered_by_reason"]))
    if stats["flags_by_kind"]:
        # Flagged candidates are pending or decided (a flag asks the reviewer to look closer; it filters nothing).
        console.print(_count_table("Flags on candidates for review (pending or decided)", stats["flags_by_kind"], column="flag"))
    print_dashboard(stats)
    print_team(stats)


def print_team(stats: dict[str, Any]) -> None:
    """Attention checks per reviewer, and overall agreement (`synthgate agreement` has the detail)."""
    if stats["attention"]:
        table = Table(title="Attention (marks, not verdicts)", title_justify="left")
        for column in ("reviewer", "decisions", "median s on screen", "faster than skimming", "canaries caught / shown"):
            table.add_column(column, justify="left" if column == "reviewer" else "right")
        for name, row in stats["attention"].items():
            median = "-" if row["median_dwell_seconds"] is None else f"{row['median_dwell_seconds']:.1f}"
            share = "-" if row["share_below_reading_floor"] is None else f"{row['share_below_reading_floor']:.0%}"
            table.add_row(name, str(row["decisions"]), median, share, f"{row['canaries_caught']} / {row['canaries_shown']}")
        console.print(table)
    overall = stats["agreement"]["overall"]
    if stats["agreement"]["overlapped"]:
        alpha = "undefined" if overall["alpha"] is None else f"{overall['alpha']:.2f}"
        judged = "" if overall["judged"] else " (too few to judge)"
        console.print(
            f"Agreement: Krippendorff's alpha {alpha}{judged} on {overall['n']} overlapped candidate(s); see `synthgate agreement`."
        )


def _charts(stats: dict[str, Any]) -> list[Any]:
    from generator.charts import Histogram

    return [Histogram(**chart) for chart in stats["distributions"].values()]


def _check_html_target(path: Path) -> None:
    if not path.parent.is_dir():
        raise UserError(f"the folder {path.parent} does not exist", file=path, fix="create it first, or choose another --html path")
    if path.exists():
        if not path.is_file():
            raise UserError("is not a regular file", file=path, fix="choose another --html path")
        with path.open("rb") as handle:
            if HTML_MARK.encode() not in handle.read(4096):
                raise UserError("already exists and is not a report synthgate wrote", file=path, fix="choose another --html path")


def _write_html(path: Path, stats: dict[str, Any]) -> None:
    from generator.charts import html_report
    from generator.export.writer import AtomicFile

    coverage = [
        [row["tag"], str(row["seeds"]), str(row["accepted"]), str(row["target"]), str(row["shortfall"])]
        for row in stats["coverage"]["tags"]
    ]
    queue = [[status, str(count)] for status, count in stats["candidates"].items()]
    page = html_report(
        "synthgate stats",
        _charts(stats),
        [("Queue", ["status", "candidates"], queue), ("Coverage", ["tag", "seeds", "accepted", "target", "shortfall"], coverage)],
    ).replace('<meta charset="utf-8">', '<meta charset="utf-8">' + HTML_MARK, 1)
    target = AtomicFile(path)
    target.handle.write(page.encode())
    target.commit()


def _count_table(title: str, counts: dict[str, int], *, column: str = "reason") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(column)
    table.add_column("count", justify="right")
    for reason, count in counts.items():
        table.add_row(plain(reason), str(count))
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
            table.add_row(plain(name), str(row["accepted"]), str(row["rejected"]), str(row["pending"]), rate)
        console.print(table)
    if stats["reject_reasons"]:
        console.print(_count_table("Top reject reasons", stats["reject_reasons"]))
    reviewers = stats["reviewers"]
    if reviewers["by_reviewer"]:
        table = Table(title=f"Reviewer throughput (median {reviewers['median_seconds_per_decision']} s per decision)", title_justify="left")
        for column in ("reviewer", "decisions", "median s"):
            table.add_column(column, justify="left" if column == "reviewer" else "right")
        for name, row in reviewers["by_reviewer"].items():
            table.add_row(plain(name), str(row["decisions"]), f"{row['median_seconds']:.1f}")
        console.print(table)
    cost = stats["cost"]
    per_accepted = "-" if cost["per_accepted_usd"] is None else f"${cost['per_accepted_usd']:.4f}"
    unpriced = cost["unpriced_models"]
    console.print(
        f"API cost: {'at least ' if unpriced else ''}${cost['total_usd']:.4f} over {cost['calls']} call(s) "
        f"({cost['input_tokens']} input, {cost['output_tokens']} output tokens); per accepted example: {per_accepted}"
    )
    if unpriced:  # never a silent $0: say which models the total leaves out, and how to price them
        names = ", ".join(plain(model) for model in unpriced)
        console.print(f'  unknown price for {names}: add [pricing."{plain(unpriced[0])}"] to synthgate.toml to count it')
    from generator.charts import histogram_lines
    from generator.cli.coverage_cmd import coverage_table
    from generator.coverage import TagCoverage

    rows = [TagCoverage(**{k: v for k, v in row.items() if k != "shortfall"}) for row in stats["coverage"]["tags"]]
    console.print(coverage_table(rows))
    for chart in _charts(stats):
        console.print()
        for line in histogram_lines(chart):
            console.print(line)
