"""The filter dialog: change which candidates come up (tag, run, flagged only) without leaving the app."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Static

from generator.examples import TAG_PATTERN
from generator.store.queue import QueueFilter


class FilterScreen(ModalScreen[QueueFilter | None]):
    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", id="filter.apply", tooltip="Review the candidates that match"),
        # Priority: on the checkbox, enter would toggle it instead of applying, unlike everywhere else here.
        Binding("enter", "apply", "Apply", id="filter.apply-enter", show=False, priority=True),
        Binding("escape", "cancel", "Cancel", id="filter.cancel", tooltip="Keep the current filters"),
    ]

    def __init__(self, current: QueueFilter, *, blink: bool = True) -> None:
        super().__init__()
        self.current = current
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="filter-dialog"):
            yield Static("Which candidates?", classes="dialog-question", markup=False)
            tag = Input(self.current.tag or "", placeholder="tag (empty: any)", id="filter-tag")
            run = Input(self.current.run_id or "", placeholder="run id (empty: any)", id="filter-run")
            for field in (tag, run):
                field.cursor_blink = self.blink
                yield field
            yield Checkbox("only candidates the checks flagged", self.current.flagged_only, id="filter-flagged")
            error = Static(id="filter-error", markup=False)
            error.display = False
            yield error
            yield Static("enter / ctrl+s apply   tab next field   space ticks the box   esc cancel", classes="dialog-hint", markup=False)

    @on(Input.Submitted)
    def action_apply(self) -> None:
        tag = self.query_one("#filter-tag", Input).value.strip()
        if tag and not TAG_PATTERN.match(tag):
            error = self.query_one("#filter-error", Static)
            error.update(f"tag {tag!r} is not a tag: use lower-case letters, digits and - _ . : /")
            error.display = True
            return
        run = self.query_one("#filter-run", Input).value.strip()
        flagged = self.query_one("#filter-flagged", Checkbox).value
        self.dismiss(QueueFilter(tag=tag or None, run_id=run or None, flagged_only=flagged))

    def action_cancel(self) -> None:
        self.dismiss(None)
