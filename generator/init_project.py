"""`synthgate init`: scaffold a new project (config with every option documented, seeds, prompt)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from generator.config import CONFIG_FILE, Config, PriceSection
from generator.errors import UserError

SCAFFOLD = Path(__file__).parent / "scaffold"
SEEDS_FILE = Path("seeds") / "seeds.jsonl"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _section_lines(name: str, model: type[BaseModel], overrides: dict[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    defaults = model()
    for key, field in model.model_fields.items():
        if field.description:
            lines.append(f"# {field.description}")
        if key in overrides:
            lines.append(f"{key} = {_toml_value(overrides[key])}")
            continue
        value = getattr(defaults, key)
        if value is None:
            lines.append(f"# {key} =   (unset)")
        else:
            lines.append(f"# {key} = {_toml_value(value)}")
    return lines


def render_config(project_name: str, description: str = "") -> str:
    """A synthgate.toml with every option present, commented out at its default, and its meaning."""
    lines = [
        "# synthgate project configuration. Every option is listed at its default; uncomment to change.",
        "# Reference: the README's 'Configuration' section.",
        "",
    ]
    for name, field in Config.model_fields.items():
        annotation = field.annotation
        if name == "pricing":
            lines += [
                "# Per-model prices in USD per million tokens, overriding the built-in table.",
                '# [pricing."my-model"]',
                *(f"# {key} = 0.0   # {f.description}" for key, f in PriceSection.model_fields.items()),
                "",
            ]
            continue
        overrides = {"name": project_name, "description": description} if name == "project" else {}
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        lines += [*_section_lines(name, annotation, overrides), ""]
    return "\n".join(lines)  # valid by construction; tests/test_config.py parses it


def init_project(directory: Path, *, description: str = "") -> list[Path]:
    """Create a project in `directory`; refuse if any file it would write already exists."""
    directory = directory.resolve()
    planned: dict[Path, str | Path] = {
        directory / CONFIG_FILE: render_config(directory.name, description.strip()),
        directory / SEEDS_FILE: "",
        directory / "seeds" / "README.md": SCAFFOLD / "seeds" / "README.md",
        directory / "prompts" / "generate.jinja": SCAFFOLD / "prompts" / "generate.jinja",
    }
    existing = [path for path in planned if path.exists()]
    if existing:
        raise UserError(
            f"refusing to overwrite {existing[0].relative_to(directory)}"
            + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""),
            file=directory,
            fix="choose an empty folder, or remove the existing project files first",
        )
    for path, source in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copyfile(source, path)
        else:
            path.write_text(source, encoding="utf-8")
    _ignore_state_dir(directory / ".gitignore")
    return list(planned)


def _ignore_state_dir(gitignore: Path) -> None:
    """Keep the review store out of git (appending to an existing .gitignore, not replacing it)."""
    entry = (SCAFFOLD / "gitignore").read_text(encoding="utf-8")
    current = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if entry.strip() not in current.splitlines():
        separator = "" if not current or current.endswith("\n") else "\n"
        gitignore.write_text(current + separator + entry, encoding="utf-8")
