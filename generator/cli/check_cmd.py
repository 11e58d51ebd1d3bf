"""`synthgate check`: re-run the machine checks over the pending queue, or restore filtered candidates."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer

from generator.cli.app import app, console, state


@app.command("check")
def check_command(
    ctx: typer.Context,
    restore: Annotated[
        str | None,
        typer.Option(
            "--restore",
            metavar="REASON",
            help=(
                "Instead of checking, put every candidate filtered for REASON back to pending, e.g. "
                "--restore 'near-duplicate of seed'. They carry a 'restored' flag for the reviewer and are "
                "not filtered for that reason again."
            ),
        ),
    ] = None,
) -> None:
    """Re-run the checks over pending candidates, e.g. after changing thresholds or the holdout set.

    Filters the provably worthless: structural defects, holdout leaks, exact and near duplicates.

    Flags what needs a closer look: refusals, truncation, placeholders, odd length, format drift, PII.

    Also records each candidate's nearest seed. Seeds are re-read from the seed files first. Checks never accept anything.
    """
    cli = state(ctx)
    project = cli.project
    if restore is not None:
        from generator.checks.rerun import restore_filtered

        restored = restore_filtered(cli.engine, reason=restore)
        console.out(f"Restored {restored} candidate(s) filtered as {restore!r} to pending, each flagged 'restored' for the reviewer.")
        if restore == "holdout leak" and restored:
            console.out("Caution: they overlap the evaluation set; accepting one puts eval data into training.")
        return

    from generator.checks.rerun import recheck_pending
    from generator.seeds import load_project_seeds
    from generator.store.db import write_session
    from generator.store.intake import sync_seeds

    seed_set = load_project_seeds(project)
    with write_session(cli.engine) as session:
        sync_seeds(session, seed_set.seeds, root=project.root)
    summary = recheck_pending(cli.engine, project=project)
    from generator.store.overlap import mark_overlap_as_owner

    # The owner's command marks [review] overlap on what is still pending (a reviewer's role may not).
    mark_overlap_as_owner(cli.engine, share=project.config.review.overlap, reviewers=project.config.review.overlap_reviewers)
    still_pending = summary.checked - sum(summary.filtered.values())
    compared = summary.compared_with
    console.out(
        f"Checked {summary.checked} pending candidate(s) against {compared['seeds']} seed(s), "
        f"{compared['holdout']} holdout example(s) and {compared['candidates']} reviewed candidate(s)."
    )
    console.out(f"Newly filtered: {sum(summary.filtered.values())}{_breakdown(summary.filtered)}")
    console.out(f"Still pending: {still_pending}; flagged{_breakdown(summary.flagged) or ': none'}")
    console.out(f"Flags or nearest seed updated: {summary.refreshed}")
    if summary.left_alone:
        console.out(
            f"Left as they were: {summary.left_alone} (a reviewer held or decided them meanwhile; run `synthgate check` again later)"
        )


def _breakdown(counts: Counter[str]) -> str:
    return (" (" + ", ".join(f"{name}: {count}" for name, count in counts.most_common()) + ")") if counts else ""
