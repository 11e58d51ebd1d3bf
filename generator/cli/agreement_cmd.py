"""`synthgate agreement`: how far reviewers agree on the candidates they both reviewed (overlap)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from generator.cli.app import app, console, state

if TYPE_CHECKING:
    from generator.agreement import AgreementReport


@app.command("agreement")
def agreement_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables (stable keys for scripts).")] = False,
) -> None:
    """Accept/reject agreement on overlapped candidates: Cohen's kappa per reviewer pair, Krippendorff's
    alpha overall and per tag, and the reject reasons each pair disputes, each with its count n.
    Figures on fewer than 40 shared candidates are marked "too few to judge"."""
    from generator.agreement import agreement_report
    from generator.store.db import read_session

    with read_session(state(ctx).reading_engine) as session:
        report = agreement_report(session)
    if as_json:
        console.print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    print_agreement(report)


def _figure(value: float | None, judged: bool) -> str:
    if value is None:
        return "undefined"
    return f"{value:.2f}" if judged else f"{value:.2f} (too few to judge)"


def print_agreement(report: AgreementReport) -> None:
    """The agreement tables (also the agreement section of `synthgate stats`)."""
    if report.overlapped == 0:
        console.print("Agreement: no candidate has two reviews yet (set [review] overlap, e.g. 0.1, and review as a team).")
        return
    console.print(
        f"Agreement on {report.overlapped} overlapped candidate(s): Krippendorff's alpha {_figure(report.overall.alpha, report.overall.judged)}"
    )
    pairs = Table(title="Agreement by reviewer pair (Cohen's kappa)", title_justify="left")
    for column in ("reviewers", "n", "agreed", "kappa", "reasons disputed"):
        pairs.add_column(column, justify="right" if column in ("n", "agreed") else "left")
    for pair in report.pairs:
        disputed = ", ".join(f"{reason} ({count})" for reason, count in pair.reasons_disputed.items()) or "-"
        pairs.add_row(" / ".join(pair.reviewers), str(pair.n), str(pair.agreed), _figure(pair.kappa, pair.judged), disputed)
    console.print(pairs)
    if report.by_tag:
        tags = Table(title="Agreement by tag (Krippendorff's alpha)", title_justify="left")
        for column in ("tag", "n", "alpha"):
            tags.add_column(column, justify="right" if column == "n" else "left")
        for tag, alpha in report.by_tag.items():
            tags.add_row(tag, str(alpha.n), _figure(alpha.alpha, alpha.judged))
        console.print(tags)
