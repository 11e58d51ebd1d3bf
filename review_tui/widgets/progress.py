"""The header line: who is reviewing, queue progress, this session's pace and acceptance rate, filters."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from generator.store.queue import QueueFilter
from review_tui.safe_text import visible
from review_tui.tally import QueueProgress, SessionTally

SEPARATOR = ("  │  ", "dim")


def describe_filters(filters: QueueFilter) -> str:
    """e.g. "tag billing, run r1, flagged only" ("" when nothing is filtered)."""
    parts = []
    if filters.tag:
        parts.append(f"tag {filters.tag}")
    if filters.run_id:
        parts.append(f"run {filters.run_id}")
    if filters.flagged_only:
        parts.append("flagged only")
    return ", ".join(parts)


def progress_text(*, reviewer: str, filters: QueueFilter, progress: QueueProgress, tally: SessionTally, now: float) -> Text:
    text = Text.assemble(("synthgate review", "bold"), "  ", visible(reviewer, style="bold cyan"), SEPARATOR)
    if progress.decided is None or progress.left is None:
        text.append("counting…", style="dim")
    else:
        text.append(f"{progress.decided:,} decided · {progress.left:,} left")
    text.append(*SEPARATOR)
    pace = tally.per_minute(now)
    rate = tally.acceptance_rate()
    text.append(f"session {tally.decided} · ")
    text.append(f"{pace:.1f}/min" if pace is not None else "–/min")
    text.append(" · ")
    text.append(f"{rate:.0%} accepted" if rate is not None else "–% accepted")
    described = describe_filters(filters)
    if described:
        text.append(*SEPARATOR)
        text.append("filter: ", style="dim")
        text.append_text(visible(described, style="yellow"))
    return text


class ProgressHeader(Static):
    def show(self, **state) -> None:  # type: ignore[no-untyped-def]
        self.update(progress_text(**state))
