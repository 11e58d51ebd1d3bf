"""What the machine checks found: reasons to look closely (never a verdict)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from generator.store.models import Flag
from review_tui.safe_text import visible


def flags_text(flags: list[Flag]) -> Text:
    if not flags:
        return Text("no flags", style="dim")
    text = Text()
    for index, flag in enumerate(flags):
        if index:
            text.append("\n")
        text.append("⚑ ", style="bold yellow")
        text.append_text(visible(flag.kind, style="bold"))
        text.append(": ")
        text.append_text(visible(flag.detail))
    return text


class FlagsView(Static):
    def show(self, flags: list[Flag]) -> None:
        self.update(flags_text(flags))
