"""`synthgate review`: a named human accepts, rejects or corrects each pending candidate in the terminal."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import ProgrammingError

from generator.cli.app import app, check_tags, state
from generator.config import ReviewSection
from generator.errors import UserError
from generator.serve.identity import SERVED_ENV, engine_as_reviewer


@app.command("review")
def review_command(
    ctx: typer.Context,
    reviewer: Annotated[
        str | None,
        typer.Option(
            "--reviewer",
            help="Your name, recorded with every decision (default: \\[review] reviewer, else git's user.name, else your login name).",
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Only review candidates with this tag, e.g. a topic tag of your seeds or edge:ambiguous.")
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Only review candidates from this generation run (its id, as `synthgate stats` shows).")
    ] = None,
    flagged: Annotated[bool, typer.Option("--flagged", help="Only review candidates the checks flagged for a closer look.")] = False,
    filtered: Annotated[
        bool,
        typer.Option(
            "--filtered",
            help="Browse the candidates the machine checks filtered, read-only, with the reason for each; "
            "R restores one to the queue (recorded like `synthgate check --restore`). No decisions are made there.",
        ),
    ] = False,
    adjudicate: Annotated[
        bool,
        typer.Option(
            "--adjudicate",
            help="Settle overlapped candidates whose reviewers disagree: both decisions side by side, yours final "
            "(on PostgreSQL needs the adjudicator role: synthgate team grant-adjudicator NAME).",
        ),
    ] = False,
) -> None:
    """Review pending candidates one at a time: a accept, r reject with a reason, e correct, s skip, u undo.

    Only what a named reviewer accepts here can ever be exported. Each decision is saved before the
    next candidate appears. Several reviewers can work on one store at once: each candidate is
    leased to one of them while it is on their screen. Keys can be remapped in \\[review] keys.
    Without --tag, --run or --flagged, the filters you last used on this store come back.
    """
    from generator.store.db import read_session
    from generator.store.models import Run
    from generator.store.queue import QueueFilter

    cli = state(ctx)
    project = cli.project
    config = project.config.review
    served = os.environ.get(SERVED_ENV) == "browser"
    name = (None if served else _connected_reviewer(cli.engine, given=reviewer)) or resolve_reviewer(
        reviewer, configured=config.reviewer, project_root=project.root
    )
    check_tags([tag] if tag is not None else None)
    if tag is not None:
        _check_tag_in_queue(cli.engine, tag)
    if run is not None:
        with read_session(cli.engine) as session:
            if session.get(Run, run) is None:
                raise UserError(
                    f"--run {run!r}: no such generation run in the store",
                    fix="pass a run id that `synthgate stats` lists, or leave --run out",
                )
    # Under synthgate serve the browser is the terminal: the server set SERVED_ENV, naming the reviewer itself.
    engine = engine_as_reviewer(cli.engine, reviewer=name) if served else cli.engine
    if not served and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError(
            "synthgate review needs an interactive terminal", fix="run it in a terminal (over SSH and in tmux is fine), not through a pipe"
        )

    prepare_team_review(engine, config=config, adjudicate=adjudicate)
    # Textual is imported here, never at module level: the rest of the CLI works without it.
    from review_tui import filter_memory
    from review_tui.app import make_review_app

    filters = QueueFilter(tag=tag, run_id=run, flagged_only=flagged)
    store = filter_memory.store_key(engine)
    if not (adjudicate or filtered):  # those views have their own queues: the review filters stay as they were
        if filters == QueueFilter():
            filters = filter_memory.recall(store=store, reviewer=name) or filters
        else:
            filter_memory.remember(store=store, reviewer=name, filters=filters)
    review_app = make_review_app(
        engine=engine,
        reviewer=name,
        config=config,
        filters=filters,
        client_kind="browser" if served else "terminal",
        adjudicate=adjudicate,
        browse_filtered=filtered,
        length_factor=project.config.checks.length_factor,
        remember_filters=lambda chosen: filter_memory.remember(store=store, reviewer=name, filters=chosen),
    )
    review_app.run()
    # The app may end without its quit key: a browser tab closed under synthgate serve, SIGTERM.
    # Whatever it still holds (the shown candidate, one an undo reserved) goes back to the queue now.
    review_app.client.release()
    summary = review_app.summary(command=_command_prefix(cli.db_url))
    if summary and not served:
        print(summary)


def _command_prefix(db_url: str | None) -> str:
    """How to run synthgate on this store again: with --db when one was given (its password hidden)."""
    if not db_url:
        return "synthgate"
    from sqlalchemy.engine import make_url

    return f"synthgate --db {make_url(db_url).render_as_string(hide_password=True)}"


def _check_tag_in_queue(engine: Engine, tag: str) -> None:
    """A tag no candidate carries is a typo, not an empty queue: exit 2 naming the tags there are."""
    from generator.store.browse import pending_tags, tag_in_store
    from generator.store.db import read_session

    with read_session(engine) as session:
        if tag_in_store(session, tag):
            return
        tags = pending_tags(session)
    listed = ", ".join(f"{known} ({count})" for known, count in sorted(tags.items(), key=lambda item: (-item[1], item[0]))[:30])
    raise UserError(
        f"--tag {tag!r}: no candidate in the store has this tag",
        fix=f"use one of the pending candidates' tags: {listed}" if tags else "no pending candidate has any tag: leave --tag out",
    )


INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for a right the role lacks


def prepare_team_review(engine: Engine, *, config: ReviewSection, adjudicate: bool) -> None:
    """Mark the overlapping share of new candidates ([review] overlap), and check an adjudicator may adjudicate."""
    from generator.store.adjudication import may_adjudicate
    from generator.store.db import write_session
    from generator.store.overlap import mark_overlap

    with write_session(engine) as session:
        try:
            mark_overlap(session, share=config.overlap, reviewers=config.overlap_reviewers)
        except ProgrammingError as exc:
            # A reviewer's PostgreSQL role may not write candidates: the owner's own review marks them.
            if getattr(exc.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            session.rollback()
        if adjudicate and not may_adjudicate(session):
            raise UserError(
                "--adjudicate: this database role is not an adjudicator",
                fix="ask the project owner to run `synthgate team grant-adjudicator NAME`, or review without --adjudicate",
            )


def _connected_reviewer(engine: Engine, *, given: str | None) -> str | None:
    """On PostgreSQL as a reviewer's role, the role is the reviewer: the claims carry the name the decisions will."""
    if engine.dialect.name != "postgresql":
        return None
    from generator.store.db import read_session
    from generator.store.team import role_reviewer

    with read_session(engine) as session:
        role = role_reviewer(session)
    if role is not None and given is not None and given.strip() != role:
        raise UserError(
            f"--reviewer {given!r}: you are connected as {role!r}, and the database records every decision under that role",
            fix="leave --reviewer out, or connect as that reviewer's role",
        )
    return role


def resolve_reviewer(given: str | None, *, configured: str | None, project_root: Path) -> str:
    """The reviewer's name: --reviewer, else [review] reviewer, else git's user.name, else the login name."""
    if given is not None:
        if not given.strip():
            raise UserError("--reviewer must not be blank", fix="pass your name, e.g. --reviewer 'Ada Lovelace'")
        return given.strip()
    for candidate in (configured, _git_user_name(project_root), _login_name()):
        if candidate and candidate.strip():
            return candidate.strip()
    raise UserError(
        "no reviewer name: every decision must carry one",
        fix='pass --reviewer NAME, or set reviewer = "NAME" under [review] in synthgate.toml',
    )


def _git_user_name(folder: Path) -> str | None:
    try:
        result = subprocess.run(["git", "config", "user.name"], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None  # no git here: fall back to the login name
    return result.stdout.strip() if result.returncode == 0 else None


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user entry for this uid (e.g. some containers)
        return None
