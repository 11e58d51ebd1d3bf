"""Where an export may write: the project's own files it never replaces, and the checks every output path passes first.

An export's files are the training file, the validation file (when splitting) and the manifest
beside the training file. Each is checked before anything is rendered and again just before the
files are renamed into place, so a refusal always means nothing was written.
"""

from __future__ import annotations

import glob
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from generator.errors import UserError
from generator.export.card import is_synthgate_card
from generator.export.manifest import manifest_path, read_manifest_header
from generator.project import Project

# SQLite keeps a store's recent writes in these files beside it: replacing one loses decisions.
SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")
_ELSEWHERE = "write the export to a new file, e.g. exports/train.jsonl"


@dataclass(frozen=True)
class ProtectedFile:
    path: Path  # resolved
    what: str  # what it is, as the refusal names it
    identity: tuple[int, int] | None  # device and inode when it exists: catches hard links and case-insensitive names


@dataclass(frozen=True)
class ExportTargets:
    """The resolved destinations of one export: its data files (training first) and its manifest."""

    data_files: tuple[Path, ...]
    manifest: Path
    card: Path | None = None  # the dataset card, replaced only when synthgate wrote it (or with --force)

    @property
    def all_files(self) -> tuple[Path, ...]:
        return (*self.data_files, self.manifest, *([self.card] if self.card is not None else []))


class OutputGuard:
    """The files of a project and its store that no export may replace, and the rules for everything else."""

    def __init__(self, project: Project | None, store_file: Path | None) -> None:
        self.project = project
        self.protected = list(_protected_files(project, store_file))

    def plan(self, data_files: Sequence[Path], *, force: bool, card: Path | None = None) -> ExportTargets:
        """Resolve and check the export's destinations (symlinks followed): a UserError names the first that may not be written."""
        resolved = tuple(_resolve(path) for path in data_files)
        targets = ExportTargets(data_files=resolved, manifest=manifest_path(resolved[0]), card=None if card is None else _resolve(card))
        self.check(targets, force=force)
        return targets

    def check(self, targets: ExportTargets, *, force: bool) -> None:
        seen: dict[Path, str] = {}
        for path, role in zip(targets.all_files, _roles(targets), strict=True):
            if path in seen:
                raise UserError(f"is both the {seen[path]} and the {role} of this export", file=path, fix="give each output its own name")
            seen[path] = role
            self._check_one(path, role, targets, force=force)

    def _check_one(self, path: Path, role: str, targets: ExportTargets, *, force: bool) -> None:
        protected = self._protection_of(path)
        if protected is not None:
            raise UserError(f"is {protected}; an export never replaces it (not even with --force)", file=path, fix=_ELSEWHERE)
        folder = path.parent
        if not folder.is_dir():
            if folder.exists():
                raise UserError(f"{folder} is not a folder", file=path, fix="choose a path inside a folder")
            raise UserError(
                f"the folder {folder} does not exist", file=path, fix=f"create it first (mkdir -p {folder}), or choose another path"
            )
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return  # a new file
        except OSError as exc:
            raise UserError(f"cannot check this path: {exc.strerror or exc}", file=path, fix=_ELSEWHERE) from None
        if stat.S_ISDIR(mode):
            fix = (
                "move that folder away, or choose another -o FILE"
                if role == "manifest"
                else f"name a file inside it, e.g. {path / 'train.jsonl'}"
            )
            raise UserError(f"is a folder, not a file (the {role} of this export goes here)", file=path, fix=fix)
        if not stat.S_ISREG(mode):
            raise UserError(
                "is not a regular file (a device, pipe or socket); an export writes only regular files", file=path, fix=_ELSEWHERE
            )
        if force or _written_by_a_previous_export(path, targets):
            return
        if path == targets.card:
            raise UserError(
                "already exists and is not a dataset card synthgate wrote",
                file=path,
                fix="choose another --card path, or pass --force to replace it",
            )
        raise UserError(
            "already exists and is not a previous synthgate export (no manifest beside it names it)",
            file=path,
            fix="choose a new file name, or pass --force to replace it",
        )

    def _protection_of(self, path: Path) -> str | None:
        identity = _identity(path)
        for protected in self.protected:
            if path == protected.path or (identity is not None and identity == protected.identity):
                return protected.what
        if self.project is None:
            return None
        if path.is_relative_to(_resolve(self.project.state_dir)):
            return "inside the project's state folder (.synthgate: the review store, journals)"
        # The globs too, not only the files they match today: a new file there would join the seeds unverified.
        pattern = seed_pattern_matching(self.project, path)
        return None if pattern is None else f"a seed file of the project ([seeds] paths {pattern!r})"


def seed_pattern_matching(project: Project, path: Path) -> str | None:
    """The [seeds] paths glob that matches `path` (None: generation and `seeds check` do not read it)."""
    resolved = _resolve(path)
    return next((p for p in project.config.seeds.paths if fnmatch(str(resolved), str(_resolve(project.path(p))))), None)


def _resolve(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise UserError(f"cannot resolve this path: {exc}", file=path, fix=_ELSEWHERE) from None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


def _roles(targets: ExportTargets) -> list[str]:
    return [*("training file", "validation file")[: len(targets.data_files)], "manifest", *(["dataset card"] if targets.card else [])]


def _protected_files(project: Project | None, store_file: Path | None) -> Iterable[ProtectedFile]:
    if store_file is not None:
        store = _resolve(store_file)
        yield ProtectedFile(store, "the review store", _identity(store))
        for suffix in SQLITE_SIBLINGS:
            sibling = store.with_name(store.name + suffix)
            yield ProtectedFile(sibling, f"the review store's {suffix[1:].upper()} file", _identity(sibling))
    if project is None:
        return
    config = project.config
    named: list[tuple[str | Path, str]] = [
        (project.config_path, "the project's config"),
        (config.generate.template, "the generation template ([generate] template)"),
        (config.export.promote_to, "the promoted seed file ([export] promote_to)"),
        *((name, "a context file of the template ([generate] context_files)") for name in config.generate.context_files),
        *((name, "a holdout file ([checks] holdout)") for name in config.checks.holdout),
    ]
    if config.generate.replay_file:
        named.append((config.generate.replay_file, "the replay file ([generate] replay_file)"))
    for name, what in named:
        resolved = _resolve(project.path(name))
        yield ProtectedFile(resolved, what, _identity(resolved))
    # The seed files as they are today, through symlinks: the globs alone match only their own spelling.
    for pattern in config.seeds.paths:
        for match in glob.glob(str(project.path(pattern)), recursive=True):
            resolved = _resolve(Path(match))
            yield ProtectedFile(resolved, f"a seed file of the project ([seeds] paths {pattern!r})", _identity(resolved))


def _written_by_a_previous_export(path: Path, targets: ExportTargets) -> bool:
    """Whether a synthgate manifest beside `path` (or the one this export replaces) names it: re-exporting over it is safe."""
    if path == targets.manifest:
        return _manifest_files(path) is not None
    if path == targets.card:
        return is_synthgate_card(path)
    for manifest in {manifest_path(path), targets.manifest}:
        listed = _manifest_files(manifest)
        if listed and path in listed:
            return True
    return False


def _manifest_files(manifest: Path) -> set[Path] | None:
    """The files a synthgate manifest describes, resolved (None: not a synthgate manifest)."""
    if not manifest.is_file():
        return None
    try:
        header = read_manifest_header(manifest)
    except (UserError, OSError, ValueError):
        return None
    files: set[Path] = set()
    for described in header["files"]:
        try:
            files.add((manifest.parent / described["path"]).resolve())
        except (OSError, RuntimeError):
            continue
    return files
