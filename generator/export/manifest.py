"""The manifest beside every export (`FILE.manifest.json`): what was exported, from what, and per line the review that let it through.

It is one JSON object. Its summary keys come first and its per-line entries (`lines`) last, one
entry per text line, so a million-line export is written and read back streaming.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import ijson

from generator.errors import UserError
from generator.export.writer import AtomicFile

MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
_SCALARS = {"string", "number", "boolean", "null"}


def manifest_path(data_file: Path) -> Path:
    return data_file.with_name(data_file.name + MANIFEST_SUFFIX)


def find_manifest(data_file: Path) -> Path:
    """The manifest that describes `data_file`: FILE.manifest.json, else a manifest in its folder that lists it (a validation file)."""
    beside = manifest_path(data_file)
    if beside.exists() or not data_file.is_file():
        return beside
    wanted = data_file.resolve()
    for candidate in sorted(data_file.parent.glob("*" + MANIFEST_SUFFIX)):
        try:
            header = read_manifest_header(candidate)
        except UserError:
            continue  # someone else's JSON, or a damaged manifest: not the one that lists this file
        if any((candidate.parent / described["path"]).resolve() == wanted for described in header["files"]):
            return candidate
    return beside  # reading it reports "no manifest beside this export"


def write_manifest(target: AtomicFile, header: dict[str, Any], write_lines: Callable[[IO[bytes]], None]) -> None:
    """Write the summary, then the per-line entries that `write_lines` streams into the `lines` array."""
    summary = json.dumps({"synthgate_manifest": MANIFEST_VERSION, **header}, indent=2, ensure_ascii=False)
    out = target.handle
    out.write(summary.removesuffix("\n}").encode())
    out.write(b',\n  "lines": [')
    write_lines(out)
    out.write(b"\n  ]\n}\n")


def read_manifest_header(path: Path) -> dict[str, Any]:
    """Every top-level key except `lines`, without reading the line entries into memory."""
    header: dict[str, Any] = {}
    try:
        with path.open("rb") as handle:
            key: str | None = None
            builder: ijson.ObjectBuilder | None = None
            skipping = False
            for prefix, event, value in ijson.parse(handle, use_float=True):
                if prefix == "" and event == "map_key":
                    if value == "lines" and "files" in header:
                        break  # written by synthgate: the summary is complete
                    key, skipping, builder = value, value == "lines", None if value == "lines" else ijson.ObjectBuilder()
                    continue
                if builder is None or key is None or skipping:
                    continue
                builder.event(event, value)
                if prefix == key and (event in ("end_map", "end_array") or event in _SCALARS):
                    header[key] = builder.value
                    builder = None
    except FileNotFoundError:
        raise UserError(
            "no manifest beside this export",
            file=path,
            fix="verify a file written by `synthgate export` (its manifest is FILE.manifest.json)",
        ) from None
    except ijson.JSONError as exc:
        raise UserError(
            f"the manifest is not valid JSON: {exc}", file=path, fix="restore the manifest written by `synthgate export`"
        ) from None
    if header.get("synthgate_manifest") != MANIFEST_VERSION or not isinstance(header.get("files"), list):
        raise UserError(
            "not a synthgate export manifest (no 'synthgate_manifest' version or 'files' list)",
            file=path,
            fix="restore the manifest written by `synthgate export`, or export again",
        )
    for described in header["files"]:
        if not _describes_a_file(described):
            raise UserError(
                "the manifest's 'files' list is damaged (each needs a plain 'path', a 'lines' count and a 'sha256')",
                file=path,
                fix="restore the manifest written by `synthgate export`, or export again",
            )
    return header


def _describes_a_file(described: Any) -> bool:
    # The path is printed in reports: refuse control characters rather than echo them to a terminal.
    return (
        isinstance(described, dict)
        and isinstance(described.get("path"), str)
        and described["path"].isprintable()
        and isinstance(described.get("lines"), int)
        and isinstance(described.get("sha256"), str)
    )


def iter_manifest_entries(path: Path) -> Iterator[dict[str, Any]]:
    """The per-line entries, streamed in file order."""
    with path.open("rb") as handle:
        try:
            yield from ijson.items(handle, "lines.item", use_float=True)
        except ijson.JSONError as exc:
            raise UserError(
                f"the manifest's line entries are not valid JSON: {exc}",
                file=path,
                fix="restore the manifest written by `synthgate export`",
            ) from None
