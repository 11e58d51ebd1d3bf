"""The verified seed most like the candidate, with its similarity: is this new, or a paraphrase?"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from generator.store.queue import CandidateView
from review_tui.safe_text import visible

ROLE_STYLES = {"system": "bold magenta", "user": "bold cyan", "assistant": "bold green"}


def nearest_seed_text(candidate: CandidateView) -> Text:
    seed = candidate.nearest_seed
    if seed is None:
        return Text("no nearest seed recorded for this candidate", style="dim")
    similarity = candidate.nearest_seed_similarity
    text = Text.assemble(visible(seed.id, style="bold"), "  similarity ", (f"{similarity:.2f}" if similarity is not None else "?", "bold"))
    text.append("\n")
    text.append_text(visible(f"{seed.source}:{seed.line}", style="dim"))
    if seed.tags:
        text.append("  ")
        text.append_text(visible(", ".join(seed.tags), style="dim"))
    for message in seed.messages:
        text.append(f"\n\n{message.role}\n", style=ROLE_STYLES[message.role])
        text.append_text(visible(message.content))
    return text


class NearestSeedView(VerticalScroll):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="nearest-seed-body")

    def show(self, candidate: CandidateView) -> None:
        self.query_one("#nearest-seed-body", Static).update(nearest_seed_text(candidate))
        self.scroll_home(animate=False, immediate=True)
