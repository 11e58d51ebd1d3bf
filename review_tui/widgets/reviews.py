"""Adjudication: the reviewers' decisions on the disagreement shown, side by side (only under `synthgate review --adjudicate`)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from generator.store.queue import DecisionView
from review_tui.safe_text import visible


def reviews_table(decisions: list[DecisionView]) -> Table:
    table = Table(show_header=True, expand=True, box=None)
    for decision in decisions:
        table.add_column(visible(decision.reviewer, style="bold"), ratio=1)
    cells = []
    for decision in decisions:
        cell = Text()
        cell.append({"accept": "✓ accepted", "reject": "✗ rejected", "edit": "✎ corrected"}.get(decision.action, decision.action))
        if decision.reasons:
            cell.append("\n")
            cell.append_text(visible(", ".join(decision.reasons)))
        if decision.note:
            cell.append("\nnote: ", style="dim")
            cell.append_text(visible(decision.note))
        if decision.edited_messages:
            cell.append("\ntheir last turn: ", style="dim")
            cell.append_text(visible(decision.edited_messages[-1].content))
        cells.append(cell)
    table.add_row(*cells)
    return table


class ReviewsView(Static):
    def show(self, decisions: list[DecisionView]) -> None:
        self.update(reviews_table(decisions) if decisions else Text("no reviews", style="dim"))
