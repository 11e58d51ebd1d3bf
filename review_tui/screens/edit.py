"""The edit screen: correct the conversation in place, one text box per turn, validated on save."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static, TextArea

from generator.examples import Example, Message, describe_validation_error, messages_hash
from generator.store.models import Flag
from generator.store.queue import CandidateView
from review_tui.safe_text import editable, has_unsafe
from review_tui.screens.confirm import ConfirmScreen
from review_tui.widgets.flags import flags_text
from review_tui.widgets.key_footer import KeyFooter

UNSAFE_NOTICE = (
    "This conversation holds control or invisible characters, shown here as symbols (␛, �). "
    "A turn you leave untouched is saved exactly as it was; a turn you change is saved as you see it."
)


@dataclass(frozen=True)
class EditResult:
    """The corrected example, or None: nothing changed and the reviewer chose to accept it as it is."""

    edited: Example | None


class EditScreen(Screen[EditResult | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="edit.save", tooltip="Check the conversation and record the corrected version"),
        Binding("escape", "cancel", "Cancel", id="edit.cancel", tooltip="Back to the candidate without saving"),
    ]

    def __init__(
        self, candidate: CandidateView, *, blink: bool = True, check_flags: Callable[[list[Message]], list[Flag]] | None = None
    ) -> None:
        super().__init__()
        self.candidate = candidate
        self.blink = blink
        # The checks' flag rules (generator.checks.flags), run on the corrected text before it is saved.
        self.check_flags = check_flags
        self.flags_seen_for: str | None = None  # the content hash whose flags the reviewer has been shown
        self.original_kinds: set[str] | None = None  # flag kinds of the text as the model wrote it

    def compose(self) -> ComposeResult:
        yield Static(
            f"Editing candidate #{self.candidate.id}: correct any turn (usually the assistant's). "
            "tab moves to the next turn, ctrl+s saves, esc cancels.",
            id="edit-title",
            markup=False,
        )
        if any(has_unsafe(m.content) for m in self.candidate.messages):
            yield Static(UNSAFE_NOTICE, id="edit-notice", markup=False)
        error = Static(id="edit-error")
        error.display = False
        yield error
        flags = Static(id="edit-flags")
        flags.display = False
        yield flags
        with VerticalScroll(id="edit-turns"):
            for index, message in enumerate(self.candidate.messages):
                area = TextArea(editable(message.content), id=f"turn-{index}", soft_wrap=True, classes=f"role-{message.role}")
                area.border_title = message.role
                area.cursor_blink = self.blink
                yield area
        yield KeyFooter()

    def on_mount(self) -> None:
        # The assistant's answer is what experts correct most: start there.
        areas = self._areas()
        assistant = [i for i, m in enumerate(self.candidate.messages) if m.role == "assistant"]
        areas[assistant[-1] if assistant else -1].focus()

    def _areas(self) -> list[TextArea]:
        return list(self.query(TextArea))

    def edited_messages(self) -> list[Message]:
        """The conversation as the editor holds it; untouched turns keep their exact original text."""
        messages = []
        for original, area in zip(self.candidate.messages, self._areas(), strict=True):
            unchanged = area.text == editable(original.content)
            messages.append(Message(role=original.role, content=original.content if unchanged else area.text))
        return messages

    def _changed(self) -> bool:
        return messages_hash(self.edited_messages()) != self.candidate.content_hash

    def show_error(self, problem: str) -> None:
        error = self.query_one("#edit-error", Static)
        error.update(Text.assemble(("Not saved: ", "bold"), problem, "\nFix it and press ctrl+s again, or esc to cancel."))
        error.display = True

    def action_save(self) -> None:
        try:
            example = Example(messages=self.edited_messages())
        except ValidationError as exc:
            self.show_error(describe_validation_error(exc))
            return
        if example.content_hash() != self.candidate.content_hash:
            if self._flags_unseen(example):
                return
            self.dismiss(EditResult(edited=example))
            return

        def accept_as_is(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(EditResult(edited=None))

        self.app.push_screen(ConfirmScreen("Nothing was changed. Accept the candidate as it is?"), accept_as_is)

    def _flags_unseen(self, example: Example) -> bool:
        """Show what the checks flag in the corrected text; True when the correction brought a new kind of flag (nothing saved yet).

        A correction that adds a flag (a cut-off answer, a placeholder) needs a second ctrl+s: the
        editor is the last look before an accept, and a warning that flashed by as the next candidate
        appeared would not be seen. Kinds the original text already had were on the review screen
        when the reviewer chose to edit, so they do not stop the save (the same rules flag every demo
        candidate's system prompt, and a warning on every save would soon be pressed through unread).
        Flags are reasons to look, never a verdict: the second ctrl+s saves; any change is checked anew.
        """
        if self.check_flags is None:
            return False
        flags = self.check_flags(example.messages)
        if self.original_kinds is None:
            self.original_kinds = {flag.kind for flag in self.check_flags(self.candidate.messages)}
        new = [flag for flag in flags if flag.kind not in self.original_kinds]
        content_hash = example.content_hash()
        if not new or self.flags_seen_for == content_hash:
            return False
        self.flags_seen_for = content_hash
        panel = self.query_one("#edit-flags", Static)
        panel.update(
            Text.assemble(
                ("Not saved yet: the checks flag your corrected text\n", "bold"),
                flags_text(new),
                "\nLook again: press ctrl+s once more to save it as it is, or correct it first.",
            )
        )
        panel.display = True
        self.query_one("#edit-error", Static).display = False
        return True

    def action_cancel(self) -> None:
        if not self._changed():
            self.dismiss(None)
            return

        def discard(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen("Discard your changes to this candidate?"), discard)
