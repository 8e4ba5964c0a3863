"""Text from papers and from the model, made safe to show on a terminal.

A PDF can hold any character, and pypdf hands them over as they are: ESC starts a sequence that
clears the screen, sets the window title (OSC 0) or prints a live hyperlink (OSC 8); a carriage
return or backspace overwrites what was printed; right-to-left overrides reorder a line. `inert`
replaces each such character with a visible stand-in, so the reader sees that it was there and the
terminal never acts on it. Newlines and tabs stay. JSON output needs none of this: `json.dumps`
escapes every control character.
"""
from __future__ import annotations

BIDI_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x20):
        if chr(code) not in "\n\t":
            table[code] = chr(0x2400 + code)  # the Unicode control pictures: ESC is shown as ␛
    # DEL, the C1 controls (0x9B is a one-byte CSI) and bidi overrides, written as JSON writes them: inside
    # a JSON string the stand-in reads back as the same character, so `--json` output stays exact.
    for code in (0x7F, *range(0x80, 0xA0), *BIDI_CONTROLS):
        table[code] = f"\\u{code:04x}"
    return table


_INERT = _table()


def inert(text: str) -> str:
    """`text` with every control, escape and bidi-override character replaced by a visible stand-in
    (linear time: one character map)."""
    return text.translate(_INERT)


def is_inert(text: str) -> bool:
    """Whether `text` holds nothing a terminal would act on."""
    return not any(ord(ch) in _INERT for ch in text)
