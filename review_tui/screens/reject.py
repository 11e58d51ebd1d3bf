"""The reject dialog: a digit records the rejection with that reason at once; `n` adds a note first."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from review_tui.safe_text import visible


@dataclass(frozen=True)
class RejectChoice:
    reason: str
    note: str | None


class RejectScreen(ModalScreen[RejectChoice | None]):
    BINDINGS = [
        *[Binding(str(n), f"pick({n - 1})", show=False, id=f"reject.reason{n}") for n in range(1, 10)],
        Binding("n", "note", "Add a note", id="reject.note", tooltip="Write a note before picking the reason"),
        Binding("escape", "cancel", "Cancel", id="reject.cancel", tooltip="Back to the candidate, nothing recorded"),
    ]

    def __init__(self, *, candidate_id: int, reasons: list[str], blink: bool = True) -> None:
        super().__init__()
        self.candidate_id = candidate_id
        self.reasons = reasons
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="reject-dialog"):
            yield Static(f"Reject candidate #{self.candidate_id}: why?", classes="dialog-question", markup=False)
            # Reasons come from the project's config: shown as plain text, never as markup.
            yield OptionList(
                *[Option(visible(f"{n}  {reason}"), id=str(n - 1)) for n, reason in enumerate(self.reasons, start=1)],
                id="reasons",
            )
            note = Input(placeholder="note (optional); enter, then pick a reason", id="note")
            note.cursor_blink = self.blink
            note.display = False
            yield note
            yield Static(
                f"1-{len(self.reasons)} reject with that reason   n add a note first   esc cancel",
                classes="dialog-hint",
                markup=False,
            )

    def action_pick(self, index: int) -> None:
        if index >= len(self.reasons):
            self.app.bell()
            return
        note = self.query_one("#note", Input).value.strip()
        self.dismiss(RejectChoice(reason=self.reasons[index], note=note or None))

    @on(OptionList.OptionSelected, "#reasons")
    def _picked_with_enter(self, event: OptionList.OptionSelected) -> None:
        self.action_pick(int(event.option.id or 0))

    def action_note(self) -> None:
        note = self.query_one("#note", Input)
        note.display = True
        note.focus()

    @on(Input.Submitted, "#note")
    def _note_written(self) -> None:
        # Back to the reasons: the next digit records the rejection with the note.
        self.query_one("#reasons", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
