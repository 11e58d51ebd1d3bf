"""`synthgate init DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from generator.cli.app import app, console


@app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(help="Folder for the new project (created if missing).", file_okay=False)] = Path("."),
) -> None:
    """Create a synthgate project: synthgate.toml (every option documented), seeds/ and prompts/."""
    from generator.init_project import init_project

    created = init_project(directory)
    root = directory.resolve()
    console.print(f"Created a synthgate project in {root}:")
    for path in created:
        console.print(f"  {path.relative_to(root)}")
    console.print("Next: add verified examples to seeds/seeds.jsonl (see seeds/README.md), then run `synthgate seeds check`.")
