"""Untrusted text (model output, seed ids, flag details) turned into inert, visible Rich Text.

Rich/Textual markup is never parsed: everything becomes a `Text` built from plain strings. Control
characters and other invisible code points are made visible: escape sequences must not reach the
terminal (colour changes, OSC 52 clipboard writes, cursor moves), and bidi overrides or zero-width
characters must not hide what the reviewer is approving.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls except tab and newline, DEL, C1 controls, zero-width and bidi formatting
# characters, line/paragraph separators and the byte-order mark.
UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
ESCAPE_STYLE = "bold reverse red"
# One visible character per unsafe one, so positions in an editor stay put: the Unicode
# "control pictures" for C0 and DEL, the replacement character for the rest.
_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}


def escape_sequence(character: str) -> str:
    """How one unsafe character is shown in a transcript: `\\x1b`, `\\u202e`."""
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, style: str = "") -> Text:
    """`text` as a Rich Text that shows every unsafe character as a highlighted escape."""
    result = Text(style=style, end="")
    position = 0
    for match in UNSAFE_CHARACTERS.finditer(text):
        result.append(text[position : match.start()])
        result.append(escape_sequence(match.group()), style=ESCAPE_STYLE)
        position = match.end()
    result.append(text[position:])
    return result


def has_unsafe(text: str) -> bool:
    return UNSAFE_CHARACTERS.search(text) is not None


def editable(text: str) -> str:
    """`text` for a text editor: each unsafe character replaced by one visible stand-in (␛, �)."""
    return UNSAFE_CHARACTERS.sub(lambda match: _PICTURES.get(ord(match.group()), "\ufffd"), text)
