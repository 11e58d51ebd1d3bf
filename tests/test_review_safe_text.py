"""Untrusted text is shown literally: no markup is parsed, no control character reaches the terminal."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from review_tui.safe_text import ESCAPE_STYLE, UNSAFE_CHARACTERS, editable, has_unsafe, visible


def test_markup_stays_literal_text() -> None:
    text = "[bold]x[/] [link=x]y[/link] [@click=app.quit]z[/] :smile:"
    rendered = visible(text)
    assert rendered.plain == text
    assert rendered.spans == []


def test_escape_sequences_and_invisible_characters_are_shown_as_escapes() -> None:
    rendered = visible("a\x1b[31mb\x9b1m\u202etxt\u200b\x00\r\n\tc")
    assert rendered.plain == "a\\x1b[31mb\\x9b1m\\u202etxt\\u200b\\x00\\x0d\n\tc"
    escapes = [rendered.plain[span.start : span.end] for span in rendered.spans]
    assert escapes == ["\\x1b", "\\x9b", "\\u202e", "\\u200b", "\\x00", "\\x0d"]
    assert all(span.style == ESCAPE_STYLE for span in rendered.spans)


def test_the_editor_form_keeps_one_character_per_character() -> None:
    assert editable("a\x1b[31m\x07\x7f\x9b\u202e\tb\n") == "a␛[31m␇␡\ufffd\ufffd\tb\n"
    assert has_unsafe("\x1b") and not has_unsafe("plain\ttext\n")


@given(st.text())
def test_nothing_unsafe_survives_either_form(text: str) -> None:
    assert not UNSAFE_CHARACTERS.search(visible(text).plain)
    assert not UNSAFE_CHARACTERS.search(editable(text))
    assert len(editable(text)) == len(text)
    if not has_unsafe(text):
        assert visible(text).plain == text == editable(text)
