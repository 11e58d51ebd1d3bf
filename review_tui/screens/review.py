"""The review screen: one candidate at a time, one key per decision, every decision committed before the next.

Queue work (claim, decide, undo, skip, release, lease renewal, counts) runs in thread workers that
report back with messages; while one is in flight the decision keys do nothing, so a key can only
ever apply to the candidate the reviewer is looking at.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Input, Static

from generator.config import REVIEW_KEY_DEFAULTS
from generator.store.queue import CandidateView, DecisionView, QueueError, QueueFilter
from review_tui.messages import CandidateLoaded, CandidateShown, LeaseLost, NothingToUndo, QueueCounted, QueueFailed
from review_tui.queue_client import QueueClient
from review_tui.safe_text import visible
from review_tui.screens.edit import EditResult, EditScreen
from review_tui.screens.filters import FilterScreen
from review_tui.screens.help import HelpScreen
from review_tui.screens.search import SearchScreen
from review_tui.tally import QueueProgress, SessionTally
from review_tui.widgets.empty_queue import EmptyQueuePanel
from review_tui.widgets.flags import FlagsView
from review_tui.widgets.key_footer import KeyFooter
from review_tui.widgets.nearest_seed import NearestSeedView
from review_tui.widgets.progress import ProgressHeader, describe_filters
from review_tui.widgets.provenance import ProvenanceView, candidate_title
from review_tui.widgets.reject_panel import RejectPanel
from review_tui.widgets.reviews import ReviewsView
from review_tui.widgets.transcript import TranscriptView

# Keys that need a candidate on screen (hidden from the footer when the queue is empty).
CANDIDATE_ACTIONS = {"accept", "reject", "edit", "skip"}
POLL_SECONDS = 10  # an empty queue looks again this often (generation may be running)
RECOUNT_SECONDS = 30  # progress is corrected from the database this often (other reviewers)


def _binding(action: str, description: str, tooltip: str) -> Binding:
    return Binding(REVIEW_KEY_DEFAULTS[action], action, description, id=action, tooltip=tooltip)


class ReviewScreen(Screen[None]):
    BINDINGS = [
        _binding("accept", "Accept", "Accept this candidate as a training example"),
        _binding("reject", "Reject", "Reject it, with a reason"),
        _binding("edit", "Edit", "Correct the conversation, then accept the corrected version"),
        _binding("skip", "Skip", "Decide later: it goes to the back of the queue"),
        _binding("undo", "Undo", "Take back your latest decision"),
        _binding("filter", "Filter", "Choose which candidates come up (tag, run, flagged)"),
        Binding("slash", "search", "Search", id="search", tooltip="Review only candidates whose text holds a word or phrase"),
        _binding("help", "Help", "All keys, and what the gate guarantees"),
        _binding("quit", "Quit", "Give the candidate back and leave; every decision is already saved"),
        # The reject panel's keys (it lists them itself): a digit decides, n writes a note first.
        *[Binding(str(n), f"reject_with({n - 1})", show=False, id=f"reject.reason{n}") for n in range(1, 10)],
        Binding("n", "reject_note", show=False, id="reject.note"),
        Binding("escape", "cancel_reject", show=False, id="reject.cancel"),
    ]
    AUTO_FOCUS = "#transcript"

    def __init__(
        self,
        *,
        client: QueueClient,
        reasons: list[str],
        keys: dict[str, str],
        clock: Callable[[], float],
        blink: bool = True,
        remember_filters: Callable[[QueueFilter], None] | None = None,
    ) -> None:
        super().__init__()
        self.remember_filters = remember_filters  # keeps the reviewer's last filters for their next session
        self.client = client
        self.reasons = reasons
        self.keys = {**REVIEW_KEY_DEFAULTS, **keys}  # as remapped in [review] keys (applied by the app's keymap)
        self.clock = clock
        self.blink = blink
        self.tally = SessionTally(started_at=clock())
        self.progress = QueueProgress()
        self.candidate: CandidateView | None = None
        self.shown_at = 0.0
        self.busy = True  # until the first candidate arrives
        self.busy_with = "loading the queue"  # what keys are waiting for, shown when one is pressed meanwhile
        self.rejecting = False  # the reject panel is open
        self.counting = False  # a count for the header is under way
        self.quit_requested = False

    def compose(self) -> ComposeResult:
        yield ProgressHeader(id="progress")
        with ContentSwitcher(initial="review-pane", id="body"):
            with Horizontal(id="review-pane"):
                with Vertical(id="candidate-column"):
                    yield TranscriptView(id="transcript")
                    yield RejectPanel(reasons=self.reasons, blink=self.blink, id="reject-panel")
                with Vertical(id="context"):
                    if self.client.adjudicate:  # the disagreement first: it is what the adjudicator settles
                        yield ReviewsView(id="reviews")
                    yield NearestSeedView(id="nearest-seed")
                    yield FlagsView(id="flags")
                    yield ProvenanceView(id="provenance")
            yield EmptyQueuePanel(id="empty")
        yield Static(id="status", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        for widget_id, title in (("nearest-seed", "Nearest seed"), ("flags", "Flags"), ("provenance", "Provenance")):
            self.query_one(f"#{widget_id}").border_title = title
        self.query_one("#transcript").border_title = "Candidate"
        if self.client.adjudicate:
            self.query_one("#reviews").border_title = "Reviews (they disagree; your decision is final)"
        self._refresh_header()
        # The first candidate first; counting a million rows for the header can wait until it shows.
        self._claim_next()
        self.set_interval(self.client.renew_every_seconds, self.renew_lease)
        self.set_interval(RECOUNT_SECONDS, self.count_queue)
        self.set_interval(POLL_SECONDS, self.poll_empty_queue)
        self.set_interval(5, self._refresh_header)  # the pace changes as time passes
        self._prepare_flag_rules()

    @work(thread=True, group="flags")
    def _prepare_flag_rules(self) -> None:
        """Build the checks' flag rules (they read every seed) before the editor first needs them."""
        try:
            self.client.flag_rules()
        except Exception:  # noqa: BLE001 (the editor builds them again when it saves, and reports a failure then)
            return

    # --- workers: the only code that touches the database -------------------------------------

    @work(thread=True, group="queue")
    def run_queue_call(self, call: Callable[[], CandidateLoaded | NothingToUndo]) -> None:
        """Run one queue operation off the UI thread; its result (or failure) comes back as a message."""
        shown = self.candidate.id if self.candidate else None
        try:
            message: CandidateLoaded | NothingToUndo | QueueFailed = call()
        except QueueError as exc:  # the candidate was decided or taken meanwhile: move on
            message = QueueFailed(str(exc), candidate_id=shown)
        except Exception as exc:  # noqa: BLE001 (e.g. the database is locked or gone: keep the candidate, let them retry)
            message = QueueFailed(f"{type(exc).__name__}: {exc}")
        self.post_message(message)

    def _claim_next(self) -> None:
        """Show the next candidate for the current filters (decision keys wait until it is shown)."""
        self.busy = True
        self.busy_with = "loading the next candidate"
        self.run_queue_call(lambda: CandidateLoaded(self.client.claim()))

    def count_queue(self) -> None:
        self.counting = True
        self._count(self.client.filters, self.progress.version)

    @work(thread=True, group="counts")
    def _count(self, filters: QueueFilter, version: int) -> None:
        try:
            counts = self.client.counts(filters)
        except Exception:  # noqa: BLE001 (progress is informational; the next count retries)
            counts = None
        self.post_message(QueueCounted(counts, filters, version))

    @work(thread=True, group="lease")
    def _renew(self, candidate_id: int) -> None:
        try:
            held = self.client.renew(candidate_id)
        except Exception:  # noqa: BLE001 (transient; renewed again on the next tick, long before the lease runs out)
            return
        if not held:
            self.post_message(LeaseLost(candidate_id))

    @work(thread=True, group="queue")
    def _release_and_exit(self) -> None:
        try:
            self.client.release()
        finally:
            self.app.call_from_thread(self.app.exit)

    # --- timers ------------------------------------------------------------------------------

    def renew_lease(self) -> None:
        """Keep the shown candidate reserved for this reviewer while they look at it."""
        if self.candidate is not None and not self.busy:
            self._renew(self.candidate.id)

    def poll_empty_queue(self) -> None:
        if self.candidate is None and not self.busy:
            self._claim_next()

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in CANDIDATE_ACTIONS or self.candidate is not None

    def _ready(self) -> CandidateView | None:
        """The candidate a decision key applies to; None (the key is ignored) while the queue is busy
        or the reject panel waits for a reason."""
        if self.busy:
            self._key_ignored()
            return None
        return None if self.rejecting else self.candidate

    def _start_busy(self, doing: str) -> None:
        """Keys wait from now until the call's result is shown; the status line says so while they do."""
        self.busy = True
        self.busy_with = doing
        self._set_status(f"⧗ {doing}…")

    def _key_ignored(self) -> None:
        # Ignoring a key is the safe choice (it could apply to a candidate not yet shown); saying so
        # keeps the reviewer from thinking the keypress was taken.
        if self.busy_with:
            self._set_status(f"⧗ {self.busy_with}… keys wait until it is done (that key was not used)")

    def _record(self, candidate: CandidateView, *, action: str, after_screen: bool = False, **details) -> None:  # type: ignore[no-untyped-def]
        seconds = self.clock() - self.shown_at  # the decision is made now; saving it is our time, not theirs
        client = self.client
        self._start_busy(f"saving: {_ACTION_WORDS[action]} #{candidate.id}")

        def call() -> CandidateLoaded:
            done, moved, shown_next = client.decide_and_claim(candidate_id=candidate.id, action=action, seconds=seconds, **details)
            return CandidateLoaded(shown_next, done=done, moved=moved)

        if after_screen:
            # Let this screen repaint after the editor closes first: run side by side, the repaint
            # and the database work fight over the GIL and both take twice as long.
            self.call_after_refresh(self.run_queue_call, call)
        else:
            self.run_queue_call(call)

    def action_accept(self) -> None:
        if candidate := self._ready():
            self._record(candidate, action="accept")

    def action_reject(self) -> None:
        candidate = self._ready()
        if candidate is not None:
            self.rejecting = True
            self.query_one(RejectPanel).open(candidate.id)

    def action_reject_with(self, index: int) -> None:
        panel = self.query_one(RejectPanel)
        if self.busy:
            self._key_ignored()
            return
        if not self.rejecting or self.candidate is None:
            return
        choice = panel.choice(index)
        if choice is None:
            self.app.bell()
            return
        # The panel closes when the next candidate is shown: one repaint for both, not two.
        self._record(self.candidate, action="reject", reasons=[choice.reason], note=choice.note)

    def action_reject_note(self) -> None:
        if self.rejecting:
            self.query_one(RejectPanel).start_note()

    def action_cancel_reject(self) -> None:
        if self.rejecting:
            self._close_reject_panel()

    @on(Input.Submitted, "#reject-note")
    def _note_written(self) -> None:
        self.query_one(TranscriptView).focus()  # back to the reasons: the next digit decides

    def _close_reject_panel(self) -> None:
        self.rejecting = False
        self.query_one(RejectPanel).close()
        transcript = self.query_one(TranscriptView)
        if not transcript.has_focus:
            transcript.focus()

    def action_edit(self) -> None:
        candidate = self._ready()
        if candidate is None:
            return

        def edited(result: EditResult | None) -> None:
            if result is None or self._ready() is not candidate:
                return
            if result.edited is None:
                self._record(candidate, action="accept", after_screen=True)
            else:
                self._record(candidate, action="edit", edited=result.edited, after_screen=True)

        self.app.push_screen(EditScreen(candidate, blink=self.blink, check_flags=self.client.flags_for), edited)

    def action_skip(self) -> None:
        candidate = self._ready()
        if candidate is None:
            return
        self._start_busy(f"skipping #{candidate.id}")
        client = self.client

        def call() -> CandidateLoaded:
            client.skip(candidate.id)
            return CandidateLoaded(client.claim(), note=f"skipped #{candidate.id}: it comes back after the others")

        self.run_queue_call(call)

    def action_undo(self) -> None:
        if self.busy:
            self._key_ignored()
            return
        if self.rejecting:
            return
        self._start_busy("undoing your latest decision")
        client = self.client

        def call() -> CandidateLoaded | NothingToUndo:
            undone = client.undo()
            if undone is None:
                return NothingToUndo()
            undo, candidate = undone
            # Whose status the undo restored is not known here (it may predate these filters): counted afresh.
            return CandidateLoaded(candidate, done=undo, moved=None)

        self.run_queue_call(call)

    def action_filter(self) -> None:
        if self.busy or self.rejecting:
            return

        def chosen(filters: QueueFilter | None) -> None:
            if filters is None or filters == self.client.filters or self.busy:
                return
            self._start_busy("applying the filters")
            self.client.filters = filters
            self.progress = QueueProgress(version=self.progress.version + 1)
            self.filters_changed(filters)
            client = self.client

            def call() -> CandidateLoaded:
                client.release()  # what this reviewer holds may not match the new filters
                if client.search is not None:
                    client.start_search(client.search)  # the search now looks within the new filters
                return CandidateLoaded(client.claim(), note=f"filters: {describe_filters(filters) or 'none (every candidate)'}")

            self.run_queue_call(call)  # the count for the new filters starts once its first candidate shows

        self.app.push_screen(FilterScreen(self.client.filters, blink=self.blink), chosen)

    def action_search(self) -> None:
        if self.busy:
            self._key_ignored()
            return
        if self.rejecting:
            return

        def chosen(text: str | None) -> None:
            if text is None or self.busy:
                return
            query = text or None
            self._start_busy(f"searching for {query!r}" if query else "ending the search")
            client = self.client

            def call() -> CandidateLoaded:
                found = client.start_search(query)
                if query is None:
                    note = "search ended: the whole queue again"
                else:
                    note = f"search {query!r}: {found} pending candidate(s) match; / then enter on an empty box ends the search"
                return CandidateLoaded(client.claim(), note=note)

            self.run_queue_call(call)

        self.app.push_screen(SearchScreen(self.client.search, blink=self.blink), chosen)

    def filters_changed(self, filters: QueueFilter) -> None:
        if self.remember_filters is not None:
            self.remember_filters(filters)

    def action_help(self) -> None:
        tooltips = {binding.id: binding.tooltip for binding in self.BINDINGS if isinstance(binding, Binding)}
        keys = [(self._key_for(action), tooltips[action]) for action in REVIEW_KEY_DEFAULTS]
        self.app.push_screen(HelpScreen(keys))

    def action_quit(self) -> None:
        """Give the shown candidate back to the pool and leave (after any decision in flight is saved)."""
        if self.busy:
            self.quit_requested = True
            self._set_status(f"⧗ {self.busy_with}… then quitting")
            return
        self.busy = True
        self._release_and_exit()

    # --- results from the workers ----------------------------------------------------------

    @on(CandidateLoaded)
    def _candidate_loaded(self, message: CandidateLoaded) -> None:
        if message.done is not None:
            self.tally.record(message.done)
            if message.moved is None:
                self.progress.forget()
            else:
                self.progress.move(*message.moved)
            self._set_status(_describe(message.done))
        elif message.note:
            self._set_status(message.note)
        self._show(message.candidate)

    @on(NothingToUndo)
    def _nothing_to_undo(self) -> None:
        self.busy = False
        self.notify("Nothing to undo: you have no decision left to take back.", markup=False)
        self._after_call()

    @on(QueueFailed)
    def _queue_failed(self, message: QueueFailed) -> None:
        self.notify(message.error, title="Not saved", severity="error", markup=False)
        self._set_status(f"not saved: {message.error}")
        if self.candidate is not None and message.candidate_id == self.candidate.id:
            # The candidate on screen is gone (someone else decided it, or the lease ran out).
            self._claim_next()
            return
        self.busy = False
        self._after_call()

    @on(LeaseLost)
    def _lease_lost(self, message: LeaseLost) -> None:
        # A decision in flight moves on by itself; only a candidate still being looked at is stale.
        if self.busy or self.candidate is None or self.candidate.id != message.candidate_id:
            return
        self.notify(f"Candidate #{message.candidate_id} is no longer reserved for you; moving on.", markup=False)
        self._claim_next()

    @on(QueueCounted)
    def _queue_counted(self, message: QueueCounted) -> None:
        self.counting = False
        if message.filters != self.client.filters or message.version != self.progress.version:
            self.count_queue()  # counted for filters since changed, or while a decision changed the numbers
        elif message.counts is not None:
            self.progress.set_counts(message.counts)
            self._refresh_header()

    # --- display -----------------------------------------------------------------------------

    def _show(self, candidate: CandidateView | None) -> None:
        # Only touch what changes: a footer refresh or a focus change restyles and recomposes
        # widgets, which would cost more than the whole database round trip.
        had_candidate = self.candidate is not None
        if self.rejecting:  # decided, or the candidate it was for is gone (e.g. its lease ran out)
            self._close_reject_panel()
        self.candidate = candidate
        switcher = self.query_one("#body", ContentSwitcher)
        if candidate is None:
            keys = {action: self._key_for(action) for action in REVIEW_KEY_DEFAULTS}
            self.query_one(EmptyQueuePanel).show(
                filters=self.client.filters, keys=keys, poll_seconds=POLL_SECONDS, search=self.client.search
            )
            switcher.current = "empty"
        else:
            transcript = self.query_one(TranscriptView)
            transcript.border_title = candidate_title(candidate)
            transcript.show(candidate.messages)
            self.query_one(NearestSeedView).show(candidate)
            self.query_one(FlagsView).show(candidate.flags)
            self.query_one(ProvenanceView).show(candidate)
            if self.client.adjudicate:
                self.query_one(ReviewsView).show(self.client.reviews_shown.get(candidate.id, []))
            switcher.current = "review-pane"
            if not transcript.has_focus:
                transcript.focus()
        if had_candidate != (candidate is not None):
            self.refresh_bindings()  # the decision keys appear or disappear
        self._refresh_header()
        self.busy = False
        self.busy_with = ""
        self.shown_at = self.clock()
        self._after_call()
        # "Shown" means rendered: keys pressed from now on apply to what the reviewer sees.
        self.call_after_refresh(self.post_message, CandidateShown(candidate.id if candidate else None))
        if self.progress.decided is None and not self.counting:
            self.count_queue()

    def _after_call(self) -> None:
        if self.quit_requested:
            self.quit_requested = False
            self.action_quit()

    def _refresh_header(self) -> None:
        self.query_one(ProgressHeader).show(
            reviewer=self.client.reviewer,
            filters=self.client.filters,
            progress=self.progress,
            tally=self.tally,
            now=self.clock(),
            search=self.client.search,
            decided_word="settled" if self.client.adjudicate else "decided",
        )

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(visible(text))

    def _key_for(self, action: str) -> str:
        """How the key for `action` is shown (the first, if several are bound), e.g. "?" or "^s"."""
        first = self.keys[action].split(",")[0].strip()
        return self.app.get_key_display(Binding(first, action))


_ACTION_WORDS = {"accept": "accept", "reject": "reject", "edit": "corrected accept"}


def _describe(decision: DecisionView) -> str:
    """The status line after a decision is committed: the reviewer sees that it is saved."""
    if decision.action == "undo":
        return f"↶ undone: #{decision.candidate_id} is back for a new decision"
    if decision.action == "reject":
        note = f" — {decision.note}" if decision.note else ""
        return f"✗ saved: rejected #{decision.candidate_id} ({', '.join(decision.reasons)}){note}"
    if decision.action == "edit":
        return f"✎ saved: accepted #{decision.candidate_id} as corrected"
    return f"✓ saved: accepted #{decision.candidate_id}"
