"""Text helpers shared by every stage that compares sentences with passages: sentence splitting, [n]
markers, content words (PyStemmer's English stemmer, bm25s's English stopwords), numbers and names."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import Stemmer

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
NAME = re.compile(r"[A-Za-z][\w-]*")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    # Imported on first use: bm25s pulls in scipy and numba, 0.37-0.45 s, more than all of
    # `paper-assistant --help` (0.28 s; python -X importtime), which needs no stopwords.
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS) | {"also", "using", "used", "use", "via", "per"}


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _stemmer().stemWord(word)


def split_sentences(text: str) -> list[str]:
    """Sentences line by line (an answer's lines are its units), cut as `sentence_spans` cuts them: never
    after "et al." or "Fig.", which left quotes such as "Following Sukhbaatar et al." on their own."""
    return [line[a:b] for line in text.splitlines() for a, b in sentence_spans(line)]


def strip_markers(text: str) -> str:
    """Text without [n] markers, and without the space a marker leaves before punctuation."""
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


def place_markers(sentence: str, markers: str, end: str = ".") -> str:
    """The sentence with its markers ("[2][3]") before the final stop, as citations are written; a sentence
    without a stop gets `end` after them."""
    if sentence.endswith((".", "!", "?")):
        return f"{sentence[:-1]} {markers}{sentence[-1]}"
    return f"{sentence} {markers}{end}"


def markers_in(sentence: str) -> list[int]:
    nums: list[int] = []
    for group in MARKER.findall(sentence):
        nums.extend(int(n) for n in re.split(r"\s*[,;]\s*", group))
    return nums


def content_words(text: str) -> set[str]:
    """Lower-cased, stemmed words that carry meaning (enough to align a sentence with a passage)."""
    stop = _stopwords()
    return {stem(w) for w in (m.lower() for m in WORD.findall(text)) if w not in stop and len(w) > 1}


def overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage holds."""
    words = content_words(MARKER.sub("", sentence))
    if not words:
        return 0.0
    return len(words & content_words(passage)) / len(words)


def best_quote(sentence: str, passage: str) -> str:
    """The passage sentence sharing most content words with the citing sentence."""
    candidates = split_sentences(passage) or [passage]
    return max(candidates, key=lambda c: overlap(sentence, c)).strip()


# A sentence whose content words lie mostly (this share, at least 5 words) inside an earlier one restates it.
REPEATED = 0.7


def restates(words: set[str], earlier: set[str]) -> bool:
    shared = len(words & earlier)
    return shared >= 5 and shared >= REPEATED * min(len(words), len(earlier))


# A single digit with a unit glued on ("7B", "8x"): a model size or a factor, never list numbering.
SIZED_DIGIT = re.compile(r"(?<![\w.,])(\d)(?=[BMKTx]\b)")


def numbers_in(text: str) -> set[str]:
    """Numbers worth checking: two or more digits, with a decimal part, or a digit with a unit ("7B");
    commas and points dropped."""
    text = MARKER.sub("", text)
    out = set(SIZED_DIGIT.findall(text))
    for m in NUMBER.findall(text):
        digits = re.sub(r"[.,]", "", m)
        if len(digits) >= 2:
            out.add(digits)
    return out


def numbers_ok(sentence: str, passage: str) -> bool:
    """Every number of the sentence appears in the passage (pypdf drops some decimal points: compare digits)."""
    have = {re.sub(r"[.,]", "", m) for m in NUMBER.findall(passage)}
    return numbers_in(sentence) <= have


def names_in(sentence: str) -> set[str]:
    """Names and terms (a capital after the first word, or letters with digits): ColBERTv2, Mixtral, GPT-4."""
    return {name for name, _, _ in name_spans(MARKER.sub("", sentence), first_mixed=False)}


def name_spans(text: str, first_mixed: bool = True) -> list[tuple[str, int, int]]:
    """Names and terms with where they stand (a capital after the first word, or letters with digits); with
    first_mixed, also a first word in mixed case (PagedAttention, vLLM), which a sentence's capital hides."""
    found = []
    for i, m in enumerate(NAME.finditer(text)):
        w = m.group(0)
        upper = any(c.isupper() for c in w)
        mixed = first_mixed and (any(c.isupper() for c in w[1:]) or w[:1].islower() and upper)
        digits = any(c.isdigit() for c in w) and any(c.isalpha() for c in w)
        if len(w) >= 3 and ((i > 0 and upper) or mixed or digits):
            found.append((w.lower().strip("-"), m.start(), m.end()))
    return found


# --- sentences of PDF text, as quotes are cut from it
_ABBREVIATIONS = frozenset("""fig figs eq eqs sec secs tab tabs table ref refs e.g i.e al vs cf no nos approx resp app appx
alg algo thm def eqn ch pp vol etc viz sect""".split())
# A citation marker after the full stop belongs to the sentence before it (`“...” [1] “...” [2]`): taken in.
_CITED = r"\[\d+(?:\s*[,;\u2013-]\s*\d+)*\]"
# A paper's sentence may open with one ("[4] showed that ..."): before a marker and a small letter, cut.
# A name written with a small first letter opens sentences too ("vLLM supports ...", "mBERT ..."): cut.
_BREAK = re.compile(rf"[.!?][\"')\]”’]*(?:\s*{_CITED})*"
                    rf"(?=\s+(?:(?!{_CITED})[\"“(\[]?(?:[A-Z0-9]|[a-z]{{1,2}}[A-Z])|{_CITED}\s+[a-z]))")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `text` (PDF text with line breaks), cut after . ! ? before a
    capital or digit, except after abbreviations (Fig., e.g., et al.) and initials."""
    spans, start = [], 0
    for m in _BREAK.finditer(text):
        word = re.findall(r"[\w.]+$", text[start:m.start()])
        prev = word[0].lower().rstrip(".") if word else ""
        if prev in _ABBREVIATIONS or (len(prev) == 1 and prev.isalpha()):
            continue
        end = m.end()
        spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    out = []
    for a, b in spans:  # trim the white space around each sentence
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            out.append((a, b))
    return out


def squash(text: str) -> str:
    """White space (line breaks of PDF text) folded to single spaces."""
    return " ".join(text.split())


def is_prose(raw: str) -> bool:
    """A sentence worth quoting, not figure labels, table cells or a list of names run together:
    enough real words, and lines of running text rather than short fragments."""
    words = raw.split()
    symbols = sum(c in "#=<>{}|\\_^~@$" for c in raw)
    if symbols > max(2, 0.02 * len(raw)):  # code, formulas, tables
        return False
    # Table rows and formulas read as words around loose cells ("∅ - Lcos - Lmlm -2.96"): 117 of the corpus's
    # 29,689 prose sentences; "2Ψ + 2Ψ + KΨ = 16Ψ" (4 loose symbols, a dev evidence sentence) stays.
    loose = sum(1 for w in words if not any(c.isalnum() for c in w))
    if loose >= 6 and loose >= 0.1 * len(words):
        return False
    alpha = [w for w in words if sum(c.isalpha() for c in w) >= max(2, 0.6 * len(w))]
    lower = [w for w in alpha if w[:1].islower()]
    if len(alpha) < 3 or len(alpha) < 0.5 * len(words) or len(lower) < 2:
        return False
    lines = [line for line in raw.splitlines() if line.strip()]
    return len(lines) < 4 or sum(len(line) for line in lines) / len(lines) >= 25


_LEXICAL = re.compile(r"(?u)\b\w\w+\b")


def lexical_terms(text: str) -> list[str]:
    """Terms as the BM25 index counts them (bm25s' default pattern, English stopwords, the same stemmer)."""
    stop = _stopwords()
    return [stem(w) for w in _LEXICAL.findall(text.lower()) if w not in stop]


# The words that make a query a question: "how many", "what", "did", "does"... The index (bm25s' short English
# list) keeps them as terms, so a question searched word for word ranks passages that *ask* such questions (an
# appendix of sample problems, "How many roses did she cut?") above the ones that answer: "How long did BLOOM's
# training take, and on how many GPUs?" reached no BLOOM page. The word after "how" says what kind of answer is
# wanted, not what it is about.
_HOW_FRAME = re.compile(r"\bhow\s+(?:many|much|long|often|far|large|big|fast|old|well|high|low|small|deep|wide)\b", re.I)
_QUESTION_WORDS = re.compile(r"\b(?:how|what|which|who|whom|whose|why|when|where|did|does|do|has|have|had|can|could"
                             r"|would|should|will|shall|is|are|was|were|you|your|we|our|i|me|my)\b", re.I)


def without_question_framing(query: str) -> str:
    """The query for lexical search, without the words that only make it a question: "How many GPUs did BLOOM
    use?" searches "GPUs BLOOM use" (the question keeps them for everything else that reads it)."""
    return " ".join(_QUESTION_WORDS.sub(" ", _HOW_FRAME.sub(" ", query)).split())


def without_heading(text: str, headings: Sequence[str]) -> str:
    """`text` without a leading copy of one of `headings` (a paper's title, a section's heading, or both
    joined by a comma), then any ", p. 7:" or punctuation after it: chunk text starts with its section's
    heading ("3.3 Work Partitioning Between Warps As Section 3.2 describe ..."), and the model copies the
    source line above a quote ("Attention Is All You Need, 3.2.1 Scaled Dot-Product Attention We call ...")."""
    lowered = text.lower()
    for heading in sorted({h.strip() for h in headings if h and len(h.strip()) >= 4}, key=len, reverse=True):
        if lowered.startswith(heading.lower()):
            tail = text[len(heading):]
            if tail[:1].isalnum():
                continue  # the heading is the start of a longer word
            rest = _AFTER_HEADING.sub("", tail, count=1)
            punctuated = rest != tail.lstrip()  # "Title, p. 7:" or "Heading:" before the text
            if rest[:1].isupper() or rest[:1].isdigit() or (punctuated and rest[:1].isalpha()):
                return rest
            return text
    return text


_AFTER_HEADING = re.compile(r"^(?:\s*,?\s*pp?\.\s*\d+(?:\s*[-\u2013]\s*\d+)?)?\s*[:.,;\u2013-]?\s+")
