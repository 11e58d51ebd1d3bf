"""Where the candidate came from: run, model, template and the seeds shown to the model."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from generator.store.queue import CandidateView
from review_tui.safe_text import visible


def candidate_title(candidate: CandidateView) -> str:
    """The candidate pane's title: its id, and its place among the answers to one question (generate --variants)."""
    title = f"Candidate #{candidate.id}"
    if candidate.variant_position is not None and candidate.variant_size:
        title += f" · {candidate.variant_position}/{candidate.variant_size} of a group"
    return title


def provenance_text(candidate: CandidateView) -> Text:
    template = candidate.template or "?"
    if candidate.template_hash:
        template += f" ({candidate.template_hash[:8]})"
    rows = [
        ("candidate", f"#{candidate.id}"),
        ("tags", ", ".join(candidate.tags) or "none"),
        ("run", candidate.run_id or "none"),
        ("model", candidate.model or "?"),
        ("template", template),
        ("seeds", ", ".join(candidate.seed_ids) or "none"),
    ]
    text = Text()
    for index, (label, value) in enumerate(rows):
        if index:
            text.append("\n")
        text.append(f"{label:<9} ", style="dim")
        text.append_text(visible(value))
    return text


class ProvenanceView(Static):
    def show(self, candidate: CandidateView) -> None:
        self.update(provenance_text(candidate))
