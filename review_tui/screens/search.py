"""The search dialog (the / key): review only the pending candidates whose user or assistant turns hold some text."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class SearchScreen(ModalScreen[str | None]):
    """Dismisses with the text to search for ("" ends a search), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="search.cancel", tooltip="Keep reviewing as before")]

    def __init__(self, current: str | None, *, blink: bool = True) -> None:
        super().__init__()
        self.current = current
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="search-dialog"):
            yield Static("Search the queue's text (user and assistant turns, any case)", classes="dialog-question", markup=False)
            field = Input(self.current or "", placeholder="text to find (empty: the whole queue again)", id="search-text")
            field.cursor_blink = self.blink
            yield field
            yield Static(
                "enter search: matching pending candidates come up, in queue order   esc cancel", classes="dialog-hint", markup=False
            )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
