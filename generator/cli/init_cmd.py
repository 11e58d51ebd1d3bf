"""`synthgate init DIR`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from generator.cli.app import app, console


@app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(help="Folder for the new project (created if missing).", file_okay=False)] = Path("."),
    description: Annotated[
        str | None,
        typer.Option(
            "--description",
            help="Who the assistant is and whom it serves, in a sentence or two (written to \\[project] description; "
            "the prompt template shows it to the model). Asked for when omitted in a terminal.",
        ),
    ] = None,
) -> None:
    """Create a synthgate project: synthgate.toml (every option documented), seeds/ and prompts/."""
    from generator.init_project import init_project

    if description is None:
        # Never prompt when input is not a terminal (CI, pipes): it would wait forever.
        description = ask_description() if stdin_is_terminal() else ""
    created = init_project(directory, description=description)
    root = directory.resolve()
    console.print(f"Created a synthgate project in {root}:")
    for path in created:
        console.print(f"  {path.relative_to(root)}")
    if not description.strip():
        console.print("Describe your assistant and its audience in synthgate.toml, [project] description.")
    console.print(
        "Adapt prompts/generate.jinja to your project: it follows your seeds (code, markdown, answer length, tags); "
        "`synthgate template check` shows the prompt it renders."
    )
    console.print("Next: add verified examples to seeds/seeds.jsonl (see seeds/README.md), then run `synthgate seeds check`.")


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def ask_description() -> str:
    answer: str = typer.prompt("Describe the assistant and its audience (Enter to skip)", default="", show_default=False)
    return answer
