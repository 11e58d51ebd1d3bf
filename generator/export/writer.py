"""Writing export files: atomic (temp file + rename), in the order given, with a stratified deterministic train/validation split.

Lines arrive in parts (the seeds, then the candidates, each spooled to temporary files); `route_lines`
writes them, in part order, into the training and validation files, and `write_entries` the
manifest entries that prove them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from generator.errors import UserError

_BUFFER = 1 << 20


class AtomicFile:
    """A file that appears complete or not at all: written beside its destination, fsynced, then renamed over it.

    The temporary file is created with mode 0666 and the process umask applied by the kernel, as
    any new file is (0644 under umask 022): tempfile.mkstemp's 0600 would leave an export that a
    trainer running as another user cannot read. A replaced file's old mode is not kept.
    """

    def __init__(self, destination: Path, *, create_folder: bool = False) -> None:
        self.destination = destination
        try:
            if create_folder:
                destination.parent.mkdir(parents=True, exist_ok=True)
            self.temporary = _create_beside(destination)
        except OSError as exc:
            raise UserError(
                f"cannot write here: {exc.strerror or exc}", file=destination, fix="choose a path in a folder you can write to"
            ) from None
        self.handle: IO[bytes] = self.temporary[1]

    def finish(self) -> None:
        """Make the written bytes durable (still under the temporary name)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def commit(self) -> None:
        commit_together([self])

    def discard(self) -> None:
        self.handle.close()
        self.temporary[0].unlink(missing_ok=True)


def _create_beside(destination: Path) -> tuple[Path, IO[bytes]]:
    for _attempt in range(100):
        path = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
        try:
            # O_EXCL: never opens an existing file or follows a planted symlink. 0o666: the umask decides.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return path, os.fdopen(descriptor, "wb", buffering=_BUFFER)
    raise FileExistsError(f"no free temporary name beside {destination}")


def commit_together(files: Sequence[AtomicFile]) -> None:
    """Rename finished files over their destinations in the order given (the manifest last); on an error, put back what was there.

    What holds, as far as POSIX allows (it has no rename of several files at once):
    - each destination holds either its previous complete content or its new complete content,
      never a mix: the data is fsynced before an atomic rename, and the folder after it;
    - an error (an exception) anywhere here undoes the renames already made: a replaced file
      comes back from a hard link taken just before (on a filesystem without hard links it
      cannot, and stays replaced), a file that did not exist is removed, the temporary files go;
    - a crash (kill -9, power cut) between two renames can leave the new data file beside the
      previous manifest or none, plus hidden `.tmp`/`.old` files. As the manifest is renamed
      last, such a pair never verifies: the manifest's sha256 of the file no longer matches.
    """
    backups: dict[Path, Path | None] = {}
    renamed: list[AtomicFile] = []
    try:
        for file in files:
            if not file.handle.closed:
                file.finish()
        for file in files:
            backups[file.destination] = _hard_link_backup(file.destination)
        for file in files:
            os.replace(file.temporary[0], file.destination)
            renamed.append(file)
        for folder in {file.destination.parent for file in files}:
            _fsync_directory(folder)
    except BaseException:
        for file in reversed(renamed):
            backup = backups.get(file.destination)
            with contextlib.suppress(OSError):  # best effort: put back as much as can be put back
                if backup is not None:
                    os.replace(backup, file.destination)
                else:
                    file.destination.unlink()
        for file in files:
            file.discard()
        raise
    finally:
        for backup in backups.values():
            if backup is not None:
                backup.unlink(missing_ok=True)


def _hard_link_backup(destination: Path) -> Path | None:
    """A second name for the file about to be replaced, so a failed commit can restore it (None: nothing to keep)."""
    if not destination.exists():
        return None
    backup = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.old")
    try:
        os.link(destination, backup)
    except OSError:
        return None  # no hard links here (some network and FUSE filesystems): this file cannot be restored
    return backup


def _fsync_directory(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk. Windows cannot open
    # a folder to fsync it (and its renames are journaled by NTFS).
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class PartSpool:
    """Rendered lines of one part of an export, their manifest entries, and what the split needs to know of each."""

    def __init__(self, folder: Path, name: str) -> None:
        self.lines_path = folder / f"{name}.lines"
        self.entries_path = folder / f"{name}.entries"
        self.count = 0
        self.strata: list[str] = []
        self.stratum_of = array("I")
        self.rank = array("Q")
        self._stratum_ids: dict[str, int] = {}
        self._lines: IO[bytes] | None = None
        self._entries: IO[bytes] | None = None

    def __enter__(self) -> PartSpool:
        self._lines = self.lines_path.open("wb", buffering=_BUFFER)
        self._entries = self.entries_path.open("wb", buffering=_BUFFER)
        return self

    def __exit__(self, *_exc: object) -> None:
        for handle in (self._lines, self._entries):
            if handle is not None:
                handle.close()
        self._lines = self._entries = None

    def add(self, line: bytes, entry: bytes, *, stratum: str | None = None, rank: int = 0) -> None:
        """Spool a line and its manifest entry; `stratum` and `rank` only when the export is split."""
        assert self._lines is not None and self._entries is not None, "use the spool in a with block"
        self.count += 1
        self._lines.write(line + b"\n")
        self._entries.write(entry + b"\n")
        if stratum is None:
            return
        stratum_id = self._stratum_ids.get(stratum)
        if stratum_id is None:
            stratum_id = self._stratum_ids[stratum] = len(self.strata)
            self.strata.append(stratum)
        self.stratum_of.append(stratum_id)
        self.rank.append(rank)

    def iter_entries(self) -> Iterator[dict[str, Any]]:
        with self.entries_path.open("rb", buffering=_BUFFER) as entries:
            for entry in entries:
                yield orjson.loads(entry)


class OutputFile:
    """One data file of an export: its lines and their sha256. Its manifest entries are written from the parts' spools."""

    def __init__(self, destination: Path, split: str, display_name: str) -> None:
        self.split = split
        self.display_name = display_name  # how the manifest names the file
        self.file = AtomicFile(destination)
        self.lines = 0
        self._hash = hashlib.sha256()
        self.entry_prefix = b'{"file":' + orjson.dumps(display_name) + b',"line":'

    @property
    def path(self) -> Path:
        return self.file.destination

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        """Append one line (ending in a newline)."""
        self.lines += 1
        self.file.handle.write(data)
        self._hash.update(data)

    def append_part(self, part: PartSpool) -> None:
        """Append every line of a spooled part, copied in blocks."""
        with part.lines_path.open("rb") as lines:
            for block in iter(lambda: lines.read(_BUFFER), b""):
                self.file.handle.write(block)
                self._hash.update(block)
        self.lines += part.count


def split_rank(split_seed: int, key: str) -> int:
    """A stable pseudo-random rank for `key`: the same seed and key always land in the same split."""
    return int.from_bytes(hashlib.blake2b(f"{split_seed}:{key}".encode(), digest_size=8).digest(), "big")


def validation_count(size: int, fraction: float) -> int:
    """Rows of a stratum that go to validation: the rounded share, always leaving one for training."""
    if size < 2:
        return 0
    return min(int(fraction * size + 0.5), size - 1)


def route_lines(parts: Sequence[PartSpool], *, train: OutputFile, validation: OutputFile | None, val_fraction: float) -> bytearray | None:
    """Write every spooled line, in part order, to the training file or, when splitting, to validation.

    The split is stratified (each stratum, e.g. a category tag, gives the same share to
    validation) and deterministic (within a stratum the rows with the lowest rank go). Returns
    which rows went to validation (None: no split).
    """
    if validation is None or val_fraction <= 0:
        for part in parts:
            train.append_part(part)
        return None
    to_validation = _validation_rows(parts, val_fraction)
    index = 0
    for part in parts:
        with part.lines_path.open("rb", buffering=_BUFFER) as lines:
            for line in lines:
                (validation if to_validation[index] else train).write(line)
                index += 1
    return to_validation


def write_entries(out: IO[bytes], parts: Sequence[PartSpool], files: Sequence[OutputFile], to_validation: bytearray | None) -> None:
    """Write the manifest entries, file by file in line order, each with its file name and line number.

    The entries are comma-separated members of a JSON array (the caller writes the brackets).
    """
    separator = b"\n    "
    for output in files:
        wanted = 1 if output.split == "validation" else 0
        number = index = 0
        for part in parts:
            with part.entries_path.open("rb", buffering=_BUFFER) as entries:
                for entry in entries:
                    if to_validation is None or to_validation[index] == wanted:
                        number += 1
                        out.write(separator + output.entry_prefix + str(number).encode() + b"," + entry[1:-1])
                        separator = b",\n    "
                    index += 1


def _validation_rows(parts: Sequence[PartSpool], fraction: float) -> bytearray:
    members: dict[str, list[int]] = {}
    ranks = array("Q")
    for part in parts:
        for stratum_id, rank in zip(part.stratum_of, part.rank, strict=True):
            members.setdefault(part.strata[stratum_id], []).append(len(ranks))
            ranks.append(rank)
    flags = bytearray(len(ranks))
    for rows in members.values():
        # Ties on the 64-bit rank are broken by position, so the choice is total and repeatable.
        rows.sort(key=lambda i: (ranks[i], i))
        for index in rows[: validation_count(len(rows), fraction)]:
            flags[index] = 1
    return flags
