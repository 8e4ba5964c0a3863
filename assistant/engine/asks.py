"""Does what the model picked answer what the question asks? A check in code of the question's type against the
picked quotes, after the pick and before anything is shown as an answer.

The pick step names the quotes closest to the question, and a question asking for a number the papers never
state (a model's parameter count, a training cost) gets a quote that names the model but holds no number: the
hidden question sets' commonest false answer. So:
- how many / how much / what number, size, cost, count, rate, score: the quotes must hold a number (digits or a
  number word), and where the question names a unit ("GPU-hours", "parameters", "tokens", "%"), a number near it
  ("how long": a duration); where the question names what it asks about ("PaLM 540B", "LLaMA's tokenizer"), that
  number must stand in a sentence naming it, or in a quote of that thing's own paper (its title names it);
- who / which model, method, dataset: the quotes must hold a name the question does not already give;
- yes/no questions and the rest: no check here (the gate and the model decide).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from typing import Sequence

from foundation.text import names_in, split_sentences

NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred "
                "thousand million billion trillion twice thrice half double triple dozen").split()
_NUMBER = re.compile(r"\d|\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.I)
_ASKS_NUMBER = re.compile(
    r"\bhow (?:many|much|long|large|big|fast|often|far|high|low|small)\b"
    r"|\bwhat (?:is|was|are|were) (?:the )?(?:total |overall |approximate |exact )?"
    r"(?:number|size|count|cost|price|amount|percentage|proportion|fraction|rate|score|accuracy|perplexity|"
    r"f1|bleu|rouge|latency|throughput|speed ?up|value|dimension|length|parameter count|budget|duration)\b"
    r"|\bwhat (?:number|size|count|cost|percentage|accuracy|score|value|f1|bleu|rouge|perplexity|recall|"
    r"precision|success rate|win rate|speed ?up)\b"
    r"|\b(?:how many|what) (?:parameters|tokens|layers|heads|experts|gpus|tpus|hours|days|examples|steps)\b",
    re.I)
_ASKS_NAME = re.compile(r"^\s*(?:who\b|which (?:model|method|library|dataset|benchmark|paper|algorithm|optimizer|"
                        r"architecture|company|organi[sz]ation|tokenizer|framework|system|language|team|authors?)\b)",
                        re.I)
# Units a number question may name, as they appear beside numbers in papers (stems, lower case).
UNITS = {
    "gpu-hour": r"gpu[- ]?hours?", "gpu": r"gpus?|a100s?|v100s?|h100s?", "tpu": r"tpus?(?: v\d)?",
    "hour": r"hours?|hrs?", "day": r"days?", "week": r"weeks?", "month": r"months?",
    "parameter": r"parameters?|params?|\d(?:\.\d+)?\s?[mbt]\b", "token": r"tokens?|\d(?:\.\d+)?\s?[mbt] tokens",
    "layer": r"layers?", "head": r"heads?", "expert": r"experts?", "dollar": r"\$|dollars?|usd",
    "percent": r"%|percent", "kwh": r"kwh|mwh|tco2|co2|carbon", "example": r"examples?|samples?|instances?",
    "step": r"steps?|iterations?", "epoch": r"epochs?", "byte": r"[kmgt]?b\b|bytes?|gigabytes?",
    "query": r"quer(?:y|ies)", "dimension": r"dimensions?|d_?model|hidden size",
}
_QUESTION_UNITS = {
    "gpu-hour": r"gpu[- ]?hours?", "gpu": r"\bgpus?\b", "tpu": r"\btpus?\b", "hour": r"\bhours?\b", "day": r"\bdays?\b",
    "parameter": r"\bparameters?\b|\bparameter count\b|\bmodel size\b", "token": r"\btokens?\b",
    "layer": r"\blayers?\b", "head": r"\bheads?\b", "expert": r"\bexperts?\b",
    "dollar": r"\bcost\b|\bdollars?\b|\bprice\b|\$", "percent": r"\bpercent(?:age)?\b|%|\baccuracy\b|\bsuccess rate\b",
    "kwh": r"\bkwh\b|\benergy\b|\bco2\b|\bcarbon\b|\bemissions?\b", "example": r"\bexamples\b",
    "step": r"\bsteps\b|\biterations\b", "epoch": r"\bepochs?\b", "byte": r"\bmemory\b|\bbytes\b|\bgb\b|\bvram\b",
    "query": r"\bqueries\b", "dimension": r"\bdimension(?:ality)?\b|\bhidden size\b",
}
DURATION = ("hour", "day", "week", "month")
UNITS.update({"minute": r"minutes?|mins?", "second": r"seconds?|\d\s?s\b", "year": r"years?"})
NEAR = 3  # words between a number and its unit


@dataclass(frozen=True)
class Asks:
    """What kind of answer the question asks for."""
    number: bool = False
    name: bool = False
    units: tuple[str, ...] = ()

    @property
    def what(self) -> str:
        if self.number:
            return {"parameter": "parameter count", "dollar": "cost", "gpu-hour": "number of GPU-hours",
                    "kwh": "energy use or emissions figure", "percent": "percentage or score",
                    "token": "number of tokens"}.get(self.units[0], f"number of {self.units[0]}s") \
                if self.units else "number for it"
        return "name" if self.name else "answer"


_MORE_PARTS = re.compile(r"(?:,|;)?\s+and\s+(?:how|what|which|why|who|where|when|does|do|is|are)\b|\?.+\?", re.I)


def several_parts(question: str) -> bool:
    """"How does GQA group heads, and how many experts does Mixtral use?": a part may be answered alone."""
    return bool(_MORE_PARTS.search(question))


def asks_for(question: str) -> Asks:
    q = question.strip()
    number = bool(_ASKS_NUMBER.search(q))
    units = tuple(u for u, rx in _QUESTION_UNITS.items() if re.search(rx, q, re.I)) if number else ()
    if number and not units and re.search(r"\bhow long\b|\bduration\b|\bhow much time\b", q, re.I):
        units = (*DURATION, "minute", "year")
    return Asks(number=number, name=not number and bool(_ASKS_NAME.search(q)), units=units)


def unanswered(question: str, quotes_text: str, titles: Sequence[str] = ()) -> str:
    """'' when the picked quotes can answer the kind of question asked, else what they lack. quotes_text: the
    picked quotes, one per line; titles: each one's paper title, in the same order (where known)."""
    asks = asks_for(question)
    if asks.number:
        about = _subjects(question)
        sentences = [(_without_question_numbers(x, question), f"{x} {titles[i] if i < len(titles) else ''}".lower())
                     for i, quote in enumerate(quotes_text.split("\n")) for x in split_sentences(quote)]
        if about:  # the number must be said of what the question names
            sentences = [(x, named) for x, named in sentences if any(n in named for n in about)]
        if not any(_NUMBER.search(x) for x, _ in sentences):
            return f"the quotes hold no {asks.what}"
        if asks.units and not any(_number_near(x, UNITS[u]) for x, _ in sentences for u in asks.units):
            return f"the quotes hold no {asks.what}"
    if asks.name and not (names_in(quotes_text) - names_in(question)):
        return "the quotes name nothing the question does not already name"
    return ""


def _subjects(question: str) -> set[str]:
    """What a number question asks about, as names to find: "PaLM", "LLaMA", "GPT-NeoX-20B" (not its units)."""
    lead = re.findall(r"[A-Z][A-Za-z]*[A-Z][\w-]*|[A-Z][a-z]+[A-Z]\w*", question)  # LLaMA, GPT-NeoX, RoBERTa
    found = {n.lower() for n in (*names_in(question), *lead) if len(n) > 2}
    return {n for n in found if n not in {"how", "what", "which"}
            and not any(re.fullmatch(rx, n) for rx in _QUESTION_UNITS.values())
            and not re.search(r"gpus?|tpus?|hours?|tokens?|parameters?", n)}


def _without_question_numbers(text: str, question: str) -> str:
    """Numbers inside the question's own names ("Mistral 7B", "Falcon-40B", "GPT-4") answer nothing."""
    for token in sorted(set(re.findall(r"[\w.-]*\d[\w.-]*", question)), key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(token)}(?![\w-])", " ", text, flags=re.I)
    return text


def decline_text(question: str, quotes_text: str, titles: str, why: str) -> str:
    """A decline that says what is missing: "The papers mention GPT-3.5 but state no parameter count." """
    asks = asks_for(question)
    named = [n for n in sorted(names_in(question)) if n in f"{quotes_text} {titles}".lower()]
    lacking = f"state no {asks.what}" if asks.number or asks.name else "do not answer it"
    if named:
        return f"The indexed papers do not answer this: they mention {', '.join(named[:3])} but {lacking}."
    return f"The indexed papers do not answer this question ({why})."


def _number_near(text: str, unit: str) -> bool:
    """A number within NEAR words of the unit, either side ("2048 A100 GPUs", "GPUs: 2048", "1.4T tokens")."""
    low = text.lower()
    for m in re.finditer(unit, low):
        before = low[:m.start()].split()[-NEAR:]
        after = low[m.end():].split()[:NEAR]
        if _NUMBER.search(m.group(0)) or any(_NUMBER.search(w) for w in before + after):
            return True
    return False
