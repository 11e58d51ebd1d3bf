"""`synthgate review --filtered`: browse the candidates the machine checks filtered, read-only, and restore one to the queue.

No key here records a decision: a filtered candidate is never accepted or rejected as it is. The
one write is a restore (as `synthgate check --restore` does it, a `restored` flag recording which
filter was overruled): the candidate goes back to pending, and is decided in the review queue like
any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from generator.errors import UserError
from generator.store.queue import CandidateView
from review_tui.queue_client import QueueClient
from review_tui.safe_text import visible
from review_tui.screens.confirm import ConfirmScreen
from review_tui.widgets.flags import flags_text
from review_tui.widgets.key_footer import KeyFooter
from review_tui.widgets.provenance import ProvenanceView
from review_tui.widgets.transcript import TranscriptView

READ_ONLY = "read-only: filtered candidates get no decision here. Press R to restore this one to the queue, then review it there."


@dataclass
class FilteredLoaded(Message, bubble=False):
    """The filtered candidates' ids and the one to show (None: there are none)."""

    ids: list[int]
    candidate: CandidateView | None
    note: str | None = None


def why_filtered_text(candidate: CandidateView) -> Text:
    text = Text.assemble(("filtered: ", "bold red"), visible(candidate.filter_reason or "?", style="bold"))
    if candidate.filter_match:
        text.append("\nmatches ")
        text.append_text(visible(candidate.filter_match, style="bold"))
    text.append("\n\n")
    text.append_text(flags_text(candidate.flags))
    return text


class FilteredScreen(Screen[None]):
    BINDINGS = [
        Binding("n,right,j", "move(1)", "Next", id="filtered.next", tooltip="The next filtered candidate"),
        Binding("p,left,k", "move(-1)", "Previous", id="filtered.previous", tooltip="The previous filtered candidate"),
        Binding("R", "restore", "Restore", id="filtered.restore", tooltip="Put this candidate back in the review queue (recorded)"),
        Binding("q", "quit", "Quit", id="filtered.quit", tooltip="Leave; nothing here changes without R"),
        # The review keys do nothing here but say why: muscle memory must not decide a filtered candidate.
        *[Binding(key, "read_only", show=False, id=f"filtered.no-{key}") for key in ("a", "r", "e", "s", "u")],
    ]
    AUTO_FOCUS = "#transcript"

    def __init__(self, *, client: QueueClient) -> None:
        super().__init__()
        self.client = client
        self.ids: list[int] = []
        self.position = 0
        self.candidate: CandidateView | None = None
        self.busy = True

    def compose(self) -> ComposeResult:
        yield Static(id="filtered-header", markup=False)
        with Horizontal(id="review-pane"):
            with Vertical(id="candidate-column"):
                yield TranscriptView(id="transcript")
            with Vertical(id="context"):
                yield Static(id="why-filtered", markup=False)
                yield ProvenanceView(id="provenance")
        yield Static(id="status", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#why-filtered").border_title = "Why it was filtered"
        self.query_one("#provenance").border_title = "Provenance"
        self._load(0)

    @work(thread=True, group="queue")
    def _load(self, position: int, note: str | None = None) -> None:
        ids = self.client.filtered_ids()
        candidate = self.client.get(ids[min(position, len(ids) - 1)]) if ids else None
        self.post_message(FilteredLoaded(ids, candidate, note))

    @work(thread=True, group="queue")
    def _restore(self, candidate_id: int) -> None:
        try:
            restored = self.client.restore(candidate_id)
        except UserError as exc:
            note = f"not restored: {exc}"
        else:
            note = (
                f"↺ restored #{candidate_id} to the review queue (flagged 'restored'): it is decided there like any pending candidate"
                if restored
                else f"#{candidate_id} is no longer filtered (restored or re-checked meanwhile)"
            )
        ids = self.client.filtered_ids()
        position = min(self.position, len(ids) - 1)
        candidate = self.client.get(ids[position]) if ids else None
        self.post_message(FilteredLoaded(ids, candidate, note))

    @on(FilteredLoaded)
    def _loaded(self, message: FilteredLoaded) -> None:
        self.ids = message.ids
        self.candidate = message.candidate
        self.position = self.ids.index(message.candidate.id) if message.candidate else 0
        if message.note:
            self.query_one("#status", Static).update(visible(message.note))
        transcript = self.query_one(TranscriptView)
        if message.candidate is None:
            transcript.border_title = "No filtered candidates"
            transcript.show([])
            self.query_one("#why-filtered", Static).update(Text("The machine checks filtered nothing (for these filters).", style="dim"))
        else:
            transcript.border_title = f"Filtered candidate #{message.candidate.id} (read-only)"
            transcript.show(message.candidate.messages)
            self.query_one("#why-filtered", Static).update(why_filtered_text(message.candidate))
            self.query_one(ProvenanceView).show(message.candidate)
        self._refresh_header()
        self.busy = False

    def _refresh_header(self) -> None:
        text = Text.assemble(("synthgate review --filtered", "bold"), "  ", visible(self.client.reviewer, style="bold cyan"), "  │  ")
        if self.ids:
            text.append(f"{self.position + 1} of {len(self.ids)} filtered")
        else:
            text.append("0 filtered")
        text.append("  │  read-only", style="bold yellow")
        self.query_one("#filtered-header", Static).update(text)

    def action_move(self, step: int) -> None:
        if self.busy or not self.ids:
            return
        self.busy = True
        self._load(max(0, min(self.position + step, len(self.ids) - 1)))

    def action_read_only(self) -> None:
        self.query_one("#status", Static).update(READ_ONLY)

    def action_restore(self) -> None:
        candidate = self.candidate
        if self.busy or candidate is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes and self.candidate is candidate and not self.busy:
                self.busy = True
                self._restore(candidate.id)

        self.app.push_screen(
            ConfirmScreen(f"Restore candidate #{candidate.id} to the review queue? It will be reviewed like any pending candidate."),
            confirmed,
        )

    def action_quit(self) -> None:
        self.app.exit()
