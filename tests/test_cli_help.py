"""Every command and every option of the CLI explains itself in --help."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer.main
from typer.testing import CliRunner

from generator.cli import app
from tests.conftest import REPO


def is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    if is_group(command):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def test_every_command_and_parameter_has_help_text() -> None:
    root = typer.main.get_command(app)
    commands = list(walk(root))
    assert {"init", "seeds", "stats"} <= {path[0] for path, _ in commands if path}
    for path, command in commands:
        name = " ".join(path) or "synthgate"
        assert (command.help or "").strip(), f"`{name}` has no help text"
        for param in command.params:
            if param.name == "help":
                continue
            assert (getattr(param, "help", None) or "").strip(), f"`{name}` parameter {param.name!r} has no help text"


def help_words(text: str) -> list[str]:
    """The words of a help text as a reader must see them: markdown's code ticks and escapes are not words."""
    return re.findall(r"[^\s`\\*]+", text)


def test_help_runs_for_every_command_and_shows_every_word_in_plain_terms() -> None:
    root = typer.main.get_command(app)
    for path, command in walk(root):
        # In-process (a subprocess per command took 15 s of the suite); wide, so no word is wrapped apart.
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "500"}, prog_name="synthgate")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.stdout
        # No word is eaten as markup: "[seeds]" and "<project>" used to vanish from the rendered help.
        shown = " ".join(result.stdout.split())
        for text in [command.help or "", *(getattr(param, "help", None) or "" for param in command.params)]:
            for word in help_words(text.split("\n\n")[0] if is_group(command) else text):
                assert word in shown, f"`synthgate {' '.join(path)} --help` lost {word!r}"
        # Types read as a CLI's, not as Python annotations: no <bool> beside a flag, no list[str].
        assert not re.search(r"<(bool|int|str|float|list\[\w+\]|Path)>", result.stdout), (path, result.stdout)


def test_every_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    root = typer.main.get_command(app)
    for path, command in walk(root):
        if path and not is_group(command):
            assert f"synthgate {' '.join(path)}" in readme, f"README does not document `synthgate {' '.join(path)}`"


def test_every_config_key_is_in_the_readme() -> None:
    from generator.config import Config

    readme = (REPO / "README.md").read_text()
    for section, field in Config.model_fields.items():
        if section == "pricing":
            assert "[pricing." in readme
            continue
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            assert f"`{section}.{key}`" in readme, f"README's config reference lacks `{section}.{key}`"
