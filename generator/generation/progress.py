"""What the user sees while generating: a live progress bar, then a summary table."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from generator.generation.pricing import unknown_price
from generator.generation.report import DryRun, RunStats


class LiveProgress:
    """requests done/total on a bar, and under it what is happening to them (see progress_line), redrawn as it happens.

    Two lines, not one: the counts and the last error are what a user watches for, and on one line
    with the bar they were cut off at 120 columns.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("generating", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.status = Text("", no_wrap=False, overflow="fold")
        self.live = Live(Group(self.progress, self.status), console=console, transient=False, refresh_per_second=10)
        self.task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def update(self, stats: RunStats) -> None:
        if self.task is None:
            self.task = self.progress.add_task("generate", total=stats.total_requests)
        self.progress.update(self.task, completed=stats.done)
        self.status.plain = progress_line(stats)


def progress_line(stats: RunStats) -> str:
    """sent / answered / retrying / failed and the last error's kind: a server that refuses, stalls or
    rate-limits shows itself while it happens, not only in the summary."""
    last = f" · last error: {stats.last_error}" if stats.last_error else ""
    return (
        f"{stats.dispatched} sent · {stats.answered} answered · {stats.retrying} retrying · {stats.failed_calls} failed{last} · "
        f"{stats.candidates} candidates · {_cost(stats)}"
    )


def summary_table(stats: RunStats) -> Table:
    table = Table(title=f"Run {stats.run_id} — {stats.status}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("requests in the run", f"{stats.total_requests}"),
        ("answered before this invocation", f"{stats.answered_before}"),
        ("requests sent", f"{stats.requests_sent}"),
        ("answers reused from the cache", f"{stats.cache_hits}"),
        ("retries", f"{stats.retries}" + _retry_causes(stats)),
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
    # A call without an answer says why (timed out, connection refused); a bad answer says what was wrong with it.
    causes = [f"{n} {cause}" for cause, n in stats.failure_causes.most_common()]
    parts = causes + [
        f"{n} {_OUTCOME_WORDS.get(status, status)}" for status, n in sorted(stats.outcomes.items()) if status not in ("ok", "failed") and n
    ]
    if stats.outcomes["failed"] > sum(stats.failure_causes.values()):  # e.g. refused by the provider (a bad key)
        parts.append(f"{stats.outcomes['failed'] - sum(stats.failure_causes.values())} failed")
    return f" ({', '.join(parts)})" if parts else ""


_OUTCOME_WORDS = {"refused": "refused by the model"}  # not to be read as a refused connection


def _retry_causes(stats: RunStats) -> str:
    parts = [f"{n} after {cause}" for cause, n in stats.retry_causes.most_common()]
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
