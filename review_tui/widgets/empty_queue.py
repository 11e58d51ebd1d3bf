"""What the review screen shows when no candidate is left: what happened and what to do next."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from generator.store.queue import QueueFilter
from review_tui.safe_text import visible
from review_tui.widgets.progress import describe_filters


def empty_queue_text(*, filters: QueueFilter, keys: dict[str, str], poll_seconds: int, search: str | None = None) -> Text:
    text = Text("Nothing left to review.\n\n", style="bold")
    if search is not None:
        text.append("No pending candidate left holds the search text ")
        text.append_text(visible(repr(search), style="yellow"))
        text.append(". Press / then enter on an empty box to review the whole queue again.\n\n")
    described = describe_filters(filters)
    if described:
        text.append("No pending candidate matches the filters (")
        text.append_text(visible(described, style="yellow"))
        text.append(f"). Press {keys['filter']} to change them.\n\n")
    text.append("Next:\n")
    text.append("  synthgate generate", style="bold")
    text.append("   make more candidates (they appear here on their own)\n")
    text.append("  synthgate export", style="bold")
    text.append("     write the accepted examples to a training file\n\n")
    text.append(
        f"Press {keys['undo']} to undo your last decision, {keys['quit']} to quit. "
        f"New candidates are picked up every {poll_seconds} seconds.",
        style="dim",
    )
    return text


class EmptyQueuePanel(Static):
    def show(self, **state) -> None:  # type: ignore[no-untyped-def]
        self.update(empty_queue_text(**state))
