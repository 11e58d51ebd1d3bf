"""The typer application: global options, project/store access for commands, and user-facing errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.console import Console
from sqlalchemy import Engine

from generator import __version__
from generator.errors import SynthgateError, UserError, WorkFailed
from generator.project import DB_ENV, Project

app = typer.Typer(
    name="synthgate",
    help="Grow a verified fine-tuning set with LLM-generated examples, each one reviewed by a named human.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown, not Rich markup: a docstring's "[seeds]" stays text, and its paragraphs are re-wrapped to the terminal.
    rich_markup_mode="markdown",
)


# typer 0.29 labels parameters with Python annotations (<bool> beside every flag, <list[str]>), which
# read as code to a user: help shows click's words instead (INTEGER, PATH; nothing for a flag).
_PLAIN_TYPE_WORDS = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "bool": "BOOLEAN", "path": "PATH", "file": "FILE"}


def _plain_type_labels(label_of: Callable[..., str | None]) -> Callable[..., str | None]:
    def plain_label(param: typer.core.TyperOption | typer.core.TyperArgument, ctx: object) -> str | None:
        label = label_of(param, ctx=ctx)
        if label is None or param.metavar is not None or not label.startswith("<"):
            return label
        if getattr(param, "is_flag", False):
            return None
        inner = label.strip("<>").removesuffix("...")
        many = inner.startswith("list[") or label.endswith("...")
        inner = inner.removeprefix("list[").removesuffix("]")
        word = _PLAIN_TYPE_WORDS.get(inner.lower(), inner.upper() if "|" not in inner else f"[{inner}]")
        return word + ("..." if many else "")

    return plain_label


typer.core.TyperOption.display_type_rich = _plain_type_labels(typer.core.TyperOption.display_type_rich)  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _plain_type_labels(typer.core.TyperArgument.display_type_rich)  # type: ignore[method-assign]

# markup=False: text from seeds, configs and models is printed as-is, never read as Rich markup.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    project_dir: Path | None
    db_url: str | None
    _project: Project | None = None
    _engine: Engine | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project.locate(self.project_dir, self.db_url)
        return self._project

    @property
    def engine(self) -> Engine:
        """The project's store, opened and migrated on first use."""
        if self._engine is None:
            from generator.store.db import open_store

            self._engine = open_store(self.project.db_url)
        return self._engine

    @property
    def reading_engine(self) -> Engine:
        """The project's store for a command that only reads it: works where this user cannot write, never creates one."""
        if self._engine is None:
            from generator.store.db import open_store_for_reading

            self._engine = open_store_for_reading(self.project.db_url)
        return self._engine


def state(ctx: typer.Context) -> CliState:
    root_state: CliState = ctx.find_root().obj  # set by _global_options; typer keeps it untyped
    return root_state


def check_tags(tags: list[str] | None) -> tuple[str, ...]:
    """The --tag values of a command, each checked to be a tag (a typo would silently select nothing)."""
    from generator.examples import TAG_PATTERN

    for tag in tags or ():
        if not TAG_PATTERN.match(tag):
            raise UserError(
                f"--tag {tag!r} is not a tag", fix="tags are lower-case letters, digits and - _ . : / (e.g. my-topic, edge:ambiguous)"
            )
    return tuple(tags or ())


def _version(value: bool) -> None:
    if value:
        console.print(f"synthgate {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project", "-C", help="Project folder (default: the nearest folder upward holding synthgate.toml).", file_okay=False
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar=DB_ENV, help="Review store as a SQLAlchemy URL (default: `sqlite:///<project>/.synthgate/queue.db`)."),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    ctx.obj = CliState(project_dir=project, db_url=db)


# Importing the command modules registers their commands on `app` (one line each, in help order:
# kept out of import sorting, which would put them in alphabetical order).
# isort: off
from generator.cli import init_cmd  # noqa: E402,F401
from generator.cli import seeds_cmd  # noqa: E402,F401
from generator.cli import generate_cmd  # noqa: E402,F401
from generator.cli import template_cmd  # noqa: E402,F401
from generator.cli import check_cmd  # noqa: E402,F401
from generator.cli import review_cmd  # noqa: E402,F401
from generator.cli import serve_cmd  # noqa: E402,F401
from generator.cli import export_cmd  # noqa: E402,F401
from generator.cli import stats_cmd  # noqa: E402,F401
from generator.cli import coverage_cmd  # noqa: E402,F401
from generator.cli import agreement_cmd  # noqa: E402,F401
from generator.cli import team_cmd  # noqa: E402,F401
from generator.cli import team_invite_cmd  # noqa: E402,F401
# isort: on


def main() -> None:
    """Console-script entry point: user errors become a message and an exit code, never a traceback.

    (Ctrl-C needs nothing here: typer turns it into exit code 130 itself.)
    """
    from sqlalchemy.exc import OperationalError

    from generator.store.db import store_fault

    try:
        app(prog_name="synthgate")
    except SynthgateError as error:
        err_console.print(error.render())
        sys.exit(error.exit_code)
    except OperationalError as error:  # the store failed under a command: locked, read-only, full, gone
        err_console.print(
            WorkFailed(
                f"the review store failed: {store_fault(error)}",
                fix="check the store (--db) and its folder, then run the same command again",
            ).render()
        )
        sys.exit(WorkFailed.exit_code)
