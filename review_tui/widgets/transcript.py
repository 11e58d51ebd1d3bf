"""The candidate as a chat transcript: one bordered box per turn, role in the border, content as inert text."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from generator.examples import Message
from review_tui.safe_text import visible


class MessageBox(Static):
    """One chat turn."""

    def show(self, message: Message) -> None:
        role_class = f"role-{message.role}"
        if not self.has_class(role_class):  # restyling costs more than the update itself
            self.border_title = message.role  # one of three fixed role names, never model text
            self.set_classes(role_class)
        self.update(visible(message.content))


class TranscriptView(VerticalScroll):
    """Scrolls when the conversation is longer than the screen (arrow keys, page up/down)."""

    def show(self, messages: list[Message]) -> None:
        # Reuse the boxes already mounted: a new candidate costs a content update, not a re-layout
        # of freshly mounted widgets (keypress-to-next-candidate must stay well under 50 ms).
        boxes = list(self.query_children(MessageBox))
        if len(boxes) < len(messages):
            extra = [MessageBox() for _ in range(len(messages) - len(boxes))]
            self.mount_all(extra)
            boxes += extra
        for index, box in enumerate(boxes):
            if index < len(messages):
                box.show(messages[index])
            wanted = index < len(messages)
            if box.display != wanted:
                box.display = wanted
        self.scroll_home(animate=False, immediate=True)
