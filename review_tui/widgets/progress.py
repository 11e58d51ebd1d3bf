"""The header line: who is reviewing, queue progress, this session's pace and acceptance rate, filters."""

from __future__ import annotations

from typing import Any

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


def progress_text(
    *,
    reviewer: str,
    filters: QueueFilter,
    progress: QueueProgress,
    tally: SessionTally,
    now: float,
    search: str | None = None,
    width: int | None = None,
    decided_word: str = "decided",
) -> Text:
    """The header; within `width` cells it drops words, never the counts (a narrow terminal, e.g. 80x24).

    `decided_word`: "settled" under review --adjudicate, whose counts are the adjudication queue's."""
    state: dict[str, Any] = {"reviewer": reviewer, "filters": filters, "progress": progress, "tally": tally, "now": now, "search": search}
    full = _header(**state, decided_word=decided_word, compact=False)
    if width is None or full.cell_len <= width:
        return full
    return _header(**state, decided_word=decided_word, compact=True)


def _header(
    *,
    reviewer: str,
    filters: QueueFilter,
    progress: QueueProgress,
    tally: SessionTally,
    now: float,
    search: str | None,
    decided_word: str,
    compact: bool,
) -> Text:
    separator = (" │ ", "dim") if compact else SEPARATOR
    text = Text() if compact else Text.assemble(("synthgate review", "bold"), "  ")
    text.append_text(visible(reviewer, style="bold cyan"))
    text.append(*separator)
    if progress.decided is None or progress.left is None:
        text.append("counting…", style="dim")
    else:
        text.append(f"{progress.decided:,} {decided_word} · {progress.left:,} left")
    text.append(*separator)
    pace = tally.per_minute(now)
    rate = tally.acceptance_rate()
    text.append(f"{'you' if compact else 'session'} {tally.decided} · ")
    text.append(f"{pace:.1f}/min" if pace is not None else "–/min")
    text.append(" · ")
    text.append(f"{rate:.0%}" if rate is not None else "–%")
    if not compact:
        text.append(" accepted")
    described = describe_filters(filters)
    if described:
        text.append(*separator)
        if not compact:
            text.append("filter: ", style="dim")
        text.append_text(visible(described, style="yellow"))
    if search is not None:
        text.append(*separator)
        text.append("search ", style="dim")
        text.append_text(visible(repr(search), style="yellow"))
    return text


class ProgressHeader(Static):
    _state: dict[str, Any] | None = None

    def show(self, **state: Any) -> None:
        self._state = state
        self._render_state()

    def on_resize(self) -> None:
        self._render_state()

    def _render_state(self) -> None:
        if self._state is None:
            return
        # Before the first layout the widget has no size yet: the screen's width, less the padding.
        width = (self.size.width or self.app.size.width - 2) or None
        self.update(progress_text(**self._state, width=width))
