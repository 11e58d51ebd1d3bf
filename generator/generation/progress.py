"""What the user sees while generating: a live progress bar, then a summary table."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from generator.generation.pricing import unknown_price
from generator.generation.report import DryRun, RunStats


class LiveProgress:
    """requests done/total, candidates, failures, tokens and cost, redrawn as answers arrive."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("generating", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, stats: RunStats) -> None:
        info = (
            f"{stats.candidates} candidates · {stats.failed_calls} failed · "
            f"{stats.input_tokens + stats.output_tokens:,} tokens · {_cost(stats)}"
        )
        if self.task is None:
            self.task = self.progress.add_task("generate", total=stats.total_requests, info=info)
        self.progress.update(self.task, completed=stats.done, info=info)


def summary_table(stats: RunStats) -> Table:
    table = Table(title=f"Run {stats.run_id} — {stats.status}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("requests in the run", f"{stats.total_requests}"),
        ("answered before this invocation", f"{stats.answered_before}"),
        ("requests sent", f"{stats.requests_sent}"),
        ("answers reused from the cache", f"{stats.cache_hits}"),
        ("retries", f"{stats.retries}"),
        ("calls without a usable answer", f"{stats.failed_calls}" + _breakdown(stats)),
        ("new candidates", f"{stats.candidates}"),
        ("  of which filtered by checks", f"{stats.filtered}"),
        ("tokens in / out", f"{stats.input_tokens:,} / {stats.output_tokens:,}"),
        (
            "cost (this invocation / whole run)",
            unknown_price(stats.unpriced_model) if stats.unpriced_model else f"${stats.cost_usd:.4f} / ${stats.run_cost_usd:.4f}",
        ),
        ("time", f"{stats.seconds:.1f} s"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table


def _cost(stats: RunStats) -> str:
    return "unknown price" if stats.unpriced_model else f"${stats.cost_usd:.4f}"


def _breakdown(stats: RunStats) -> str:
    parts = [f"{n} {status}" for status, n in sorted(stats.outcomes.items()) if status != "ok" and n]
    return f" ({', '.join(parts)})" if parts else ""


def dry_run_lines(report: DryRun) -> list[str]:
    lines = [f"Dry run of run {report.run_id}: nothing is sent or stored.", "", "Prompt of request 1:"]
    for message in report.prompt:
        lines += [f"--- {message['role']} ---", message["content"]]
    lines.append("---")
    cost = unknown_price(report.model) if report.cost_usd is None else f"≈ ${report.cost_usd:.4f}"
    worst = "" if report.worst_case_cost_usd is None else f" (at most ${report.worst_case_cost_usd:.4f} if every answer used max_tokens)"
    lines += [
        f"{report.requests} request(s) to {report.model} for {report.candidates} candidate(s).",
        f"Estimated tokens: ≈ {report.input_tokens:,} in, ≈ {report.output_tokens:,} out.",
        f"Estimated cost: {cost}{worst}.",
        "The facts the template derived from your seeds: `synthgate template check`.",
    ]
    return lines
