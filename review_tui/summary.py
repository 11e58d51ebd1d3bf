"""What `synthgate review` prints when the reviewer quits: this session's decisions, pace, and what to run next."""

from __future__ import annotations

from review_tui.tally import SessionTally


def session_summary(
    *, tally: SessionTally, now: float, left: int | None, left_in_store: int | None, waiting: int = 0, command: str = "synthgate"
) -> str:
    """Lines for the terminal after the app closes.

    `left`: pending candidates for the session's filters; `left_in_store`: pending in the whole
    store (None: not known, e.g. the count failed); `waiting`: pending candidates that are not this
    reviewer's to take (overlapped ones they decided, disagreements for the adjudicator). `command` is how the user runs synthgate here
    (with --db when they passed one), so the next commands can be pasted as they are.
    """
    lines = []
    if tally.decided:
        pace = tally.seconds_per_decision(now)
        lines.append(
            f"This session: {tally.decided} decided — {tally.accepted} accepted ({tally.edited} of them edited), "
            f"{tally.rejected} rejected; {pace:.1f} s per decision."
        )
    else:
        lines.append("This session: no decisions (every decision you make is saved as you make it).")
    if waiting:
        lines.append(f"{waiting:,} candidate(s) wait for another reviewer or the adjudicator before they count as decided.")
    if left:
        where = f" for your filters ({left_in_store:,} in the whole queue)" if left_in_store not in (None, left) else ""
        lines.append(f"{left:,} left in the queue{where}: run `{command} review` to go on.")
    elif left_in_store:
        lines.append(
            f"Nothing left for your filters; {left_in_store:,} left in the whole queue (`{command} review`, f to change the filters)."
        )
    else:
        empty = "" if left is None else "Nothing left for you. " if waiting else "The queue is empty. "
        lines.append(f"{empty}Next, export what was accepted and prove every line's review:")
        lines.append(f"  {command} export -o train.jsonl")
        lines.append(f"  {command} verify train.jsonl")
    return "\n".join(lines)
