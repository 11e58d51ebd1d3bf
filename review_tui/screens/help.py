"""The help screen: every key (as currently mapped) and what the gate guarantees."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

GATE = (
    "Only what you accept, or correct and save, can ever be exported. Every decision is saved, "
    "with your name and the seconds it took, before the next candidate appears; quitting or a crash "
    "loses nothing. Undo takes back your latest decision, as many times as you like."
)
DIALOG_KEYS = [
    ("/", "search the queue's text (user and assistant turns); an empty search ends it"),
    ("1-9", "after r: reject with that reason at once"),
    ("n", "after r: write a note first (enter, then the reason's digit)"),
    ("ctrl+s", "in the editor: check and save the corrected conversation"),
    ("tab", "in the editor: next turn"),
    ("escape", "close the reject reasons, a dialog or the editor without recording anything"),
    ("↑ ↓ pgup pgdn", "scroll the conversation"),
]


def help_table(review_keys: list[tuple[str, str]]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, description in [*review_keys, *DIALOG_KEYS]:
        table.add_row(Text(key), Text(description))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close", tooltip="Back to reviewing")]

    def __init__(self, review_keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.review_keys = review_keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Static("Reviewing with synthgate", classes="dialog-question", markup=False)
            yield Static(GATE, id="help-gate", markup=False)
            yield Static(help_table(self.review_keys), id="help-keys")
            yield Static("esc close", classes="dialog-hint", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
