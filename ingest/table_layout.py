"""The cells of a table's lines, and which header names go with which cells (ingest/tables.py finds the tables).

pypdf gives a table row as one line of space-separated cells: a label, then a run of value cells
("BERTBASE 84.6/83.4 71.2 ... 79.6"). The header's names line up with the values only by a few rules that
hold on the corpus's tables: one name per value (after the label column's name, when the first name is one),
pairs with a shared metric ("Dev F1 Test F1"), groups over repeated names ("SQuAD 1.1 SQuAD 2.0 EM F1 EM F1",
or "System Dev Test" above "EM F1 EM F1"), a units line ("(Acc) ... (F1)"), or the last names when each is a
benchmark's ("GLUE CNNDM SQuAD"). Where none holds, `layout_of` says so and the rows are read without names.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_NUM = r"[-+−~≈<>]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+−]?\d+)?(?:[kKMBTG]|GB|TB|MB|KB|x|×|%|ms|s)?"
_PIECE = rf"(?:{_NUM}|[-–—])"
VALUE = re.compile(rf"[⋆*]?{_PIECE}(?:[/±]{_PIECE})*[†‡∗*§¶♠♣⋆]*")
UNIT = re.compile(r"(?:GB|TB|MB|KB|B|M|K|k|%|ms|s|x|×|[†‡∗*§¶]|[TGMK]?FLOP[sS]?(?:/s)?|tokens?/s|/s|days|hours|min)")
# Numbers a row label may hold: sizes and counts ("GPT-3 175B", "Sum All 12 Layers"), never a decimal score.
SCORE = re.compile(r"[-+−]?\d*\.\d+%?")  # a decimal cell: never part of a row's label
SIZE = re.compile(r"\d+(?:\.\d+)?[BMK]")
LABEL_NUMBER = re.compile(r"\d+(?:\.\d+)?[BMKk]|\d+")
HEADING = re.compile(r"(?:\d{1,2}(?:\.\d{1,2}){0,3}|[A-H](?:\.\d{1,2}){1,3})\.?\s+[A-Z]")
MIN_ROWS = 2


# ---------------------------------------------------------------- cells
def cells_of(line: str) -> list[str]:
    """Space-separated cells, with what belongs to a value joined to it: a unit ("3.3 TB"), a dagger, a
    "± 0.2" or a parenthesised delta ("1482.0±1.0 (+2.2%)"); a braced set ("{16, 32}") is one cell."""
    out: list[str] = []
    tokens = line.split()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev_value = bool(out) and is_value(out[-1])
        if out and out[-1].startswith("{") and "}" not in out[-1]:
            out[-1] += f" {tok}"
        elif prev_value and UNIT.fullmatch(tok):
            out[-1] += tok if tok in "%†‡∗*§¶" else f" {tok}"
        elif prev_value and tok == "±" and i + 1 < len(tokens):
            out[-1] += f"±{tokens[i + 1]}"
            i += 1
        elif prev_value and tok.startswith("(") and tok.endswith(")") and any(c.isdigit() for c in tok):
            out[-1] += f" {tok}"
        else:
            out.append(tok)
        i += 1
    return out


def is_value(cell: str) -> bool:
    if cell.startswith("{") and cell.endswith("}"):
        return any(c.isdigit() for c in cell)
    return bool(VALUE.fullmatch(cell.split(" ", 1)[0]))


def trailing_values(cells: list[str]) -> int:
    n = 0
    for cell in reversed(cells):
        if not is_value(cell):
            break
        n += 1
    return n


def has_digit(cell: str) -> bool:
    return any(c.isdigit() for c in cell)


def is_row(text: str) -> bool:
    """Label words then value cells: three values or more, two after a label that is not running text,
    or one after a short label."""
    if text.endswith((".", ",", ";")) or WORD_BREAK.search(text):
        return False
    cells = cells_of(text)
    run = trailing_values(cells)
    if not any(has_digit(v) for v in cells[len(cells) - run:]):
        return False
    label = cells[: len(cells) - run]
    if run >= 3:
        return len(label) <= 12
    if run == 2:
        return len(label) <= 8 and not lowercase_run(" ".join(label))
    return run == 1 and len(label) <= 6 and not lowercase_run(" ".join(label))


def lowercase_run(text: str, share: float = 0.6, min_words: int = 4) -> bool:
    """Running English: enough words, mostly lower-case."""
    words = [w.strip("()[],.;:“”\"'") for w in text.split()]
    words = [w for w in words if w]
    lower = sum(1 for w in words if w.isalpha() and w.islower())
    return len(words) >= min_words and lower >= share * len(words)


FUNCTION_WORDS = {"the", "a", "an", "of", "to", "and", "in", "for", "is", "are", "we", "with", "that", "by", "on",
                  "as", "this", "which", "be", "it", "from", "at", "or", "not", "can", "our"}
ABBREVIATED = re.compile(r"(?:^|\s)[A-Z][a-z]{0,3}\.$")  # a header ending on "Avg." or "Len."
WORD_BREAK = re.compile(r"[A-Za-z]-$")  # "concate-": a line of running text broken inside a word
SENTENCE_BREAK = re.compile(r"[a-z)\]]\.\s+[A-Z]|\bet al\b|\b(?:Table|Figure|Fig\.|Section)\s+\d")


def is_prose(text: str) -> bool:
    """A line of the paper's running text (or a heading, footnote or link), never part of a table."""
    if "http" in text or "www." in text or len(text) > 90 or HEADING.match(text):
        return True
    if SENTENCE_BREAK.search(text) and (len(text.split()) >= 7 or "et al" in text):
        return True
    if text.endswith((",", ";")) or WORD_BREAK.search(text) or (text.endswith(".") and not ABBREVIATED.search(text)):
        return True
    if text[:1].islower() and any(w in FUNCTION_WORDS for w in text.lower().split()):
        return True
    return lowercase_run(text, share=0.6, min_words=8) and any(w in FUNCTION_WORDS for w in text.lower().split())


# ---------------------------------------------------------------- headers
VERSION = re.compile(r"v?\d+\.\d+(?:/\d+\.\d+)*")


def header_cells(text: str) -> list[str]:
    """Column names of a header line: a parenthesised unit stays with the name before it ("LM (ppl)"), a
    version with its benchmark ("SQuAD 2.0"), an equation with its sides ("r = 4")."""
    out: list[str] = []
    tokens = text.split()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if out and tok == "=" and i + 1 < len(tokens):
            out[-1] += f" = {tokens[i + 1]}"
            i += 1
        elif out and not out[-1].startswith("(") and (
                (tok.startswith("(") and tok.endswith(")")) or VERSION.fullmatch(tok)):
            out[-1] += f" {tok}"
        else:
            out.append(tok)
        i += 1
    return out


def _fits(runs: list[tuple[list[str], int]], n: int) -> int:
    """Rows whose last n cells are values and whose label (the cells before) holds no score."""
    ok = 0
    for cells, run in runs:
        extra = cells[len(cells) - run: len(cells) - n]
        if run == n or (n < run <= n + 2 and all(LABEL_NUMBER.fullmatch(c) for c in extra)):
            ok += 1
    return ok


def _consistent(runs: list[tuple[list[str], int]], n: int) -> int:
    """Rows that agree on having a label when their last n cells are values: under "PaLM", "8B 25.6 23.8 ..."
    is a row labelled "8B" with five scores, like "GPT-3 175B 40.8 ..." above it, not six values."""
    labelled = [len(cells) > n for cells, run in runs if run >= n]
    return max(sum(labelled), len(labelled) - sum(labelled))


def _exact(runs: list[tuple[list[str], int]], n: int) -> int:
    """Rows with exactly n values, or n values after a model size ("GPT-3 175B", "7B")."""
    return sum(1 for cells, run in runs if run == n or (
        n < run <= n + 2 and all(SIZE.fullmatch(c) for c in cells[len(cells) - run: len(cells) - n])))


def _alignment(header: list[str], n: int) -> int:
    """2: one name per value (a label column's name first or not), pairs or groups; 1: the last n names
    taken for the values; 0: none."""
    found = columns_of(header, n)
    if found is None:
        return 0
    return 1 if len(header) > n + 1 and found[0] == header[-n:] else 2


def _not_column_names(text: str) -> bool:
    """A header line that names the rows below it rather than the columns ("Single models on dev, w/o data
    augmentation", "Our reimplementation (with NSP loss):", "Leaderboard (Oct 8th, 2018)"), or a line of names
    split over lines ("Factor 100k steps (↑) Threshold (↓)": some of its cells are values)."""
    cells = header_cells(text)
    broken = any(c.endswith(",") or c.count("(") != c.count(")") for c in cells)
    values = [is_value(c) for c in cells]
    return broken or text.endswith(":") or lowercase_run(text, share=0.5, min_words=4) or (any(values) and not all(values))


def _blocks_repeat(names: list[str], width: int) -> bool:
    """Columns under a spanning group repeat their names block by block ("EM F1 EM F1", "@1 @100 @1 @80")."""
    firsts = {names[i] for i in range(0, len(names), width)}
    return width >= 2 and len(names) % width == 0 and len(firsts) == 1


def columns_of(header: list[str], n: int) -> tuple[list[str], str] | None:
    """n column names from a header line's cells and the label column's name, or None when they do not
    line up by one of the rules that hold on the corpus."""
    h = len(header)
    if h == n + 1 and _labels_rows(header[0]) and not any(c.lower() in ROW_NAMES for c in header[1:]):
        return header[1:], header[0]  # without the check, "Social Sciences" could be one name
    if h == n:
        return header, ""
    for skip in (1, 0):
        rest = header[skip:]
        label = header[0] if skip else ""
        if len(rest) == 2 * n:  # "Dev F1 Test F1"
            pairs = [f"{rest[2 * i]} {rest[2 * i + 1]}" for i in range(n)]
            if len(set(pairs)) == n and len({p.split()[1] for p in pairs}) == 1:
                return pairs, label
        for k in (2, 3, 4):  # "SQuAD 1.1 SQuAD 2.0 EM F1 EM F1": k groups, then their repeated columns
            if len(rest) == k + n and n % k == 0 and _blocks_repeat(rest[k:], n // k):
                width = n // k
                return [f"{rest[i // width]} {col}" for i, col in enumerate(rest[k:])], label
    # The last n names for the values, when each is a benchmark's or metric's name ("GLUE", "EnDe", "BLEU↑"):
    # a plain word ("Trainable", "Repeats") may be half of a longer name whose other half is a label column's.
    if h > n + 1 and len(set(header[-n:])) == n and all(_name_like(c) for c in header[-n:]):
        return header[-n:], " ".join(header[:-n])
    return None


def _name_like(cell: str) -> bool:
    word = cell.split()[0]
    return sum(c.isupper() for c in word) >= 2 or any(not c.isalpha() for c in word)


# What a header calls its label column ("System", "Model", "# Params"): the first cell is that, not half
# of a two-word column name, only when it is one of these.
LABEL_COLUMNS = {
    "model", "models", "system", "systems", "method", "methods", "approach", "masking", "task", "tasks", "dataset",
    "datasets", "data", "layers", "hyperparam", "hyperparams", "hyperparameter", "hyperparameters", "setting",
    "settings", "objective", "architecture", "name", "params", "parameters", "size", "variant", "configuration",
    "config", "type", "benchmark", "baseline", "baselines", "metric", "metrics", "language", "languages", "domain",
    "source", "split", "strategy", "technique", "ablation", "category", "subset", "corpus", "setup", "encoder",
    "parameter", "hparam",
}


ROW_NAMES = {"model", "models", "system", "systems", "method", "methods", "approach", "task", "tasks"}


def _labels_rows(cell: str) -> bool:
    return cell.lower() in LABEL_COLUMNS or cell.startswith("#")


def _spanned(group: list[str], columns: list[str]) -> list[str] | None:
    """Column names under a line whose cells each span an equal block ("System Dev Test" over "EM F1 EM F1")."""
    n = len(columns)
    for skip in (0, 1):
        tops = group[skip:]
        if len(tops) >= 2 and n % len(tops) == 0 and _blocks_repeat(columns, n // len(tops)):
            width = n // len(tops)
            return [f"{tops[i // width]} {col}" for i, col in enumerate(columns)]
    return None


@dataclass
class Layout:
    n: int                                  # value cells of a full row
    columns: list[str] = field(default_factory=list)  # their names; empty when they do not line up
    label_name: str = ""                    # the label column's name, shown before a numeric label
    context: list[str] = field(default_factory=list)  # header lines that name no column ("Dev Set")
    group: str = ""                         # a group line between the header and the first row


def layout_of(header: list[str], rows: list[list[str]]) -> Layout | None:
    """How the header lines name the value cells of the rows (their cells), or None when the rows do not
    agree on a number of values."""
    runs = [(cells, trailing_values(cells)) for cells in rows]
    texts = list(header)
    units: list[str] = []
    if texts and all(t.startswith("(") and t.endswith(")") for t in texts[-1].split()):
        units = texts.pop().split()
    lines = [header_cells(t) for t in texts]
    mode = Counter(run for _, run in runs).most_common(1)[0][0]
    candidates = {mode} | {len(c) - d for c in lines for d in (0, 1)} | {(len(c) - d) // 2 for c in lines for d in (0, 1)}
    candidates -= {0, -1}

    def score(n: int) -> tuple[int, int, int, int]:
        best_alignment = max((_alignment(c, n) for c, t in zip(lines, texts) if not _not_column_names(t)), default=0)
        return _fits(runs, n), _consistent(runs, n), best_alignment, _exact(runs, n), -n

    n = max(sorted(candidates), key=score)
    if _fits(runs, n) < max(MIN_ROWS, 0.5 * len(rows)):
        return None
    layout = Layout(n)
    aligned = [i for i in range(len(lines) - 1, -1, -1) if columns_of(lines[i], n)]
    # The names are the lowest line that lines up, unless it reads as a group ("Our reimplementation:").
    names_at = next((i for i in aligned if not _not_column_names(texts[i])), aligned[0] if aligned else None)
    if names_at is None:
        return layout
    below = texts[names_at + 1:]
    if any(t.startswith("(") for t in below):
        return layout  # names continued on the next line ("(Neg. Log Perp.) (hours)"): they do not line up
    layout.columns, layout.label_name = columns_of(lines[names_at], n)
    if len(units) == n:
        layout.columns = [f"{c} {u}" for c, u in zip(layout.columns, units)]
    group_words = " ".join(below).split()
    if len(set(group_words)) == len(group_words):  # not a second units line ("s R1 R1 R1 BLEU F1")
        layout.group = " ".join(below).rstrip(":").strip()
    above = texts[:names_at]
    upper = columns_of(lines[names_at - 1], n) if names_at else None
    if upper and _alignment(lines[names_at - 1], n) == 2 and len(set(layout.columns)) < n:
        # "SQuAD 1.1 MNLI ELI5 ..." over "F1 Acc PPL PPL ...": a metric under each benchmark
        layout.columns = [f"{a} {b}" for a, b in zip(upper[0], layout.columns)]
        layout.label_name = layout.label_name or upper[1]
        above = above[:-1]
    elif above and (spanned := _spanned(above[-1].split(), layout.columns)):
        layout.columns = spanned
        above = above[:-1]
    if len(set(layout.columns)) < n:
        layout.columns, layout.label_name = [], ""  # names that repeat say which value is which no better
    layout.context = [t for t in above if len(t.split()) <= 4 and not lowercase_run(t, min_words=2)]
    return layout
