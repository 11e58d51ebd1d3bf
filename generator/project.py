"""A synthgate project: the folder holding `synthgate.toml`, found upward like git finds a repository."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from generator.config import CONFIG_FILE, Config, load_config
from generator.errors import UserError

DB_ENV = "SYNTHGATE_DB"
STATE_DIR = ".synthgate"


def display_path(path: Path, root: Path | None) -> str:
    """A path as users see it in messages and records: relative to the project when inside it."""
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds synthgate.toml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise UserError(
        f"not inside a synthgate project (no {CONFIG_FILE} here or in any parent folder)",
        file=start,
        fix="cd into a project, pass --project DIR, or create one with `synthgate init DIR`",
    )


@dataclass
class Project:
    root: Path
    db_override: str | None = None

    @classmethod
    def locate(cls, project_dir: Path | None, db_url: str | None = None) -> Project:
        if project_dir is not None:
            root = project_dir.resolve()
            if not (root / CONFIG_FILE).is_file():
                raise UserError(
                    f"no {CONFIG_FILE} in this folder",
                    file=root,
                    fix="pass the folder that holds synthgate.toml, or create one with `synthgate init DIR`",
                )
        else:
            root = find_project_root(Path.cwd())
        return cls(root=root, db_override=db_url)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def db_url(self) -> str:
        """--db, else $SYNTHGATE_DB, else [store] url, else the project's own SQLite file."""
        url = self.db_override or os.environ.get(DB_ENV) or self.config.store.url
        if url:
            return url
        return f"sqlite:///{self.state_dir / 'queue.db'}"

    def path(self, relative: str | Path) -> Path:
        """A path from the config, relative to the project root unless absolute."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path

    def seed_files(self) -> list[Path]:
        files: set[Path] = set()
        for pattern in self.config.seeds.paths:
            full = str(self.path(pattern))
            matches = glob.glob(full, recursive=True)
            if not matches and not glob.has_magic(full):
                raise UserError(
                    f"seed file {pattern!r} not found",
                    file=self.config_path,
                    fix="correct [seeds] paths, or create the file",
                )
            files.update(Path(m) for m in matches if Path(m).is_file())
        return sorted(files)
