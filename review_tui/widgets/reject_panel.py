"""The reject reasons, opened under the candidate by `r`: a digit rejects with that reason at once.

Inline rather than a dialog screen: the reviewer keeps the candidate in view while choosing, and
closing it costs a small repaint instead of a screen switch (which doubled the reject latency).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from review_tui.safe_text import visible

COLUMNS = 3  # at most; fewer when the panel is narrower than three reasons side by side (an 80-column terminal)


@dataclass(frozen=True)
class RejectChoice:
    reason: str
    note: str | None


def reasons_text(reasons: list[str], *, room: int | None = None) -> Text:
    """The reasons in rows of equal cells, as many per row as fit in `room` cells (None: COLUMNS)."""
    width = max(len(reason) for reason in reasons) + 6
    columns = COLUMNS if room is None else max(1, min(COLUMNS, room // width))
    text = Text()
    for index, reason in enumerate(reasons):
        if index and index % columns == 0:
            text.append("\n")
        text.append(f" {index + 1} ", style="bold reverse")
        cell = visible(f" {reason}")
        cell.pad_right(width - cell.cell_len - 3)
        text.append_text(cell)
    return text


class RejectPanel(Vertical):
    def __init__(self, *, reasons: list[str], blink: bool = True, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.reasons = reasons
        self.blink = blink

    def compose(self) -> ComposeResult:
        yield Static(id="reject-title", markup=False)
        yield Static(reasons_text(self.reasons), id="reject-reasons")
        note = Input(placeholder="note (optional): enter, then the reason's digit", id="reject-note")
        note.cursor_blink = self.blink
        yield note
        yield Static(
            f"1-{len(self.reasons)} reject with that reason   n add a note first   esc cancel",
            classes="dialog-hint",
            markup=False,
        )

    def on_resize(self) -> None:
        reasons = self.query_one("#reject-reasons", Static)
        reasons.update(reasons_text(self.reasons, room=reasons.content_size.width or None))

    def on_mount(self) -> None:
        self.display = False
        self.query_one("#reject-note", Input).display = False

    def open(self, candidate_id: int) -> None:
        self.query_one("#reject-title", Static).update(f"Reject candidate #{candidate_id}: why?")
        self.display = True

    def close(self) -> None:
        note = self.query_one("#reject-note", Input)
        note.value = ""
        note.display = False
        self.display = False

    def start_note(self) -> None:
        note = self.query_one("#reject-note", Input)
        note.display = True
        note.focus()

    def choice(self, index: int) -> RejectChoice | None:
        """The reason at `index` (0-based) with the note written so far; None if there is no such reason."""
        if not 0 <= index < len(self.reasons):
            return None
        note = self.query_one("#reject-note", Input).value.strip()
        return RejectChoice(reason=self.reasons[index], note=note or None)
