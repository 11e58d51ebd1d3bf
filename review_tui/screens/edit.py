"""The edit screen: correct the conversation in place, one text box per turn, validated on save."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static, TextArea

from generator.examples import Example, Message, describe_validation_error, messages_hash
from generator.store.queue import CandidateView
from review_tui.safe_text import editable, has_unsafe
from review_tui.screens.confirm import ConfirmScreen
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

    def __init__(self, candidate: CandidateView, *, blink: bool = True) -> None:
        super().__init__()
        self.candidate = candidate
        self.blink = blink

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
            self.dismiss(EditResult(edited=example))
            return

        def accept_as_is(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(EditResult(edited=None))

        self.app.push_screen(ConfirmScreen("Nothing was changed. Accept the candidate as it is?"), accept_as_is)

    def action_cancel(self) -> None:
        if not self._changed():
            self.dismiss(None)
            return

        def discard(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen("Discard your changes to this candidate?"), discard)
