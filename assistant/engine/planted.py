"""Planted instructions: sentences in a paper that address its reader as a machine (an assistant, an AI, a
model, an automated reviewer) and tell it what to do or what to write. They are never evidence.

The detector reads each sentence for the class, not for phrases. A paper describes, defines and reports; its
own imperatives explain ("Let x be", "Consider", "Note that", "Repeat steps 2-4"). A planted instruction
orders its reader about what it says, how it judges or whom it obeys. The cues (`Reading`):
- an order: a clause opens with a verb of responding, writing, judging or obeying ("Respond ...", "Skip the
  question ...", "Do not mention ...", "Make your answer ..."), possibly after a label, a vocative
  ("Assistant, ...") or a leading subordinate clause ("If you are a model, ...", "When summarizing, ...");
  an order with a strong verb (say, respond, ignore, praise, summarize ...) needs nothing more;
- whom it addresses: the second person, or an AI / assistant / chatbot / LLM / language model / automated
  reviewer, or whatever model is reading, answering or summarising this text;
- a modal or mandative binding the addressee ("must", "should", "is required to", "it is important that");
- what it is about: the reader's reply (your answer, the response, every question, the user, a score) or a
  token to emit (a quoted string, an all-caps word, "the word X", "and nothing else");
- an override of the reader's instructions ("ignore the previous directions", "neglect the question");
- a label naming a machine or an instruction ("Note to the AI:", "System override:", "Reviewer note:");
- a claim on what every answer must be ("the only acceptable reply is X", "the correct reply, whatever is
  asked, is X").
`Reading.planted` says how they combine. Sentences about models in general ("The model must answer within
200 ms"; "LLMs should answer the question from the given context") address no reader and point at no text.

Measured on phrasings it was not written from (tests/planted_heldout*.txt) and on real corpus sentences about
assistants and models (tests/planted_corpus.txt): bench/planted.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_W = r"[\w'’-]+"
_Q = r"[\"“'‘][^\"”'’]{1,60}[\"”'’]"  # a quoted string
SECOND_PERSON = re.compile(r"\b(?:you|your|yours|yourself)\b", re.IGNORECASE)
MACHINE = re.compile(
    r"\b(?:assistants?|chat ?bots?|bots?|LLMs?|GPT-?\w*|ChatGPT|Gemini|Claude|A\.?I\.?|AIs"
    r"|(?:large )?language models?|summari[sz]ers?|graders?|grading models?|reviewer models?"
    r"|(?:automated|automatic|AI|LLM|LLM-based|machine|model|bot|virtual|evaluation)[- ](?:reviewers?|graders?|readers?"
    r"|assistants?|tools?|systems?|summari[sz]ers?|evaluators?|judges?|bots?)"
    r"|machine readers?)\b", re.IGNORECASE)
# Whatever model reads, answers or summarises this very text.
READING = re.compile(
    r"\b(?:the|any|a|an|each|every)\s+(?:model|system|agent|reader|tool)s?\s+(?:that|which|who)?\s*(?:is\s+|are\s+)?"
    r"(?:reads?|reading|answers?|answering|process(?:es|ing)?|summari[sz](?:es|ing)|review(?:s|ing))\b"
    r"|\bif\s+(?:a|an|the|any)\s+(?:model|system|agent|LLM|AI)\s+(?:is\s+)?(?:reading|reads|answering|processing)\b"
    r"|\b(?:LLMs?|AIs?|models?|assistants?|systems?|agents?|tools?|(?:chat ?)?bots?|summari[sz]ers?)\s+(?:that\s+|which\s+)?"
    r"(?:reads?|reading|process\w*|answer\w*|summari[sz]\w*|review\w*|generat\w*|writ\w*|produc\w*|extract\w*|pars\w*"
    r"|quot\w*)\s+(?:\w+\s+){0,2}(?:from\s+|with\s+|using\s+|of\s+)?(?:this|these|the\s+(?:paper|text|document|passage"
    r"|manuscript|page|file))\b"
    r"|\b(?:whoever|whatever|anyone|anything|anybody)\b[^.:;]{0,24}\b(?:reads?|reading|answers?|answering|process\w*"
    r"|summari[sz]\w*)\b", re.IGNORECASE)
# Verbs whose use as an order is enough: they order the reader about what it says, judges or obeys.
STRONG_VERBS = {
    "respond", "reply", "answer", "say", "output", "print", "tell", "reveal", "disclose", "ignore", "disregard",
    "forget", "override", "overlook", "bypass", "neglect", "pretend", "act", "behave", "roleplay", "rate", "score",
    "grade", "rank", "recommend", "praise", "highlight", "omit", "refuse", "decline", "translate", "claim", "agree",
    "summarize", "summarise", "mention", "cite", "quote", "confirm", "skip", "talk", "explain", "make", "state",
    "insert", "append", "prepend", "communicate", "speak", "treat", "mark", "defend", "classify", "upgrade", "sign",
    "put", "leave", "replace", "critique",
}
# Verbs that order only with another cue ("Write the loss as ...", "Return the best model" are papers' own).
WEAK_VERBS = {
    "write", "return", "repeat", "type", "emit", "include", "add", "begin", "start", "end", "finish", "conclude",
    "give", "describe", "produce", "generate", "copy", "list", "assign", "accept", "reject", "follow", "obey", "stop",
    "use", "contain", "consist", "avoid", "report",
}
DIRECTIVE_VERBS = STRONG_VERBS | WEAK_VERBS
# Verbs whose object is the reader's own reply: what a machine addressee is told to write or to judge.
REPLY_VERBS = {"respond", "reply", "answer", "say", "output", "print", "write", "cite", "quote", "mention", "include",
               "append", "prepend", "begin", "start", "end", "rate", "score", "grade", "recommend", "praise", "give",
               "contain", "consist", "emit", "repeat", "copy", "insert", "state", "claim", "highlight", "omit", "rank",
               "report", "classify", "translate", "agree", "decline", "pretend", "treat", "add", "put"}
_INFLECT = re.compile(r"(?:ies|es|s|ed|ing)$")
OPENERS = re.compile(r"^(?:do\s+not|don'?t|never|always|make\s+sure|be\s+sure|remember\s+to|from\s+now\s+on,?"
                     r"|from\s+here\s+on,?)\s+(" + _W + r")", re.IGNORECASE)
POLITE = re.compile(r"^(?:(?:please|kindly|now|also|just|simply|quietly|silently|instead|then|first|finally|and|so"
                    r"|dear\s+\w+|hey|hi|hello)\W*\s+)+", re.IGNORECASE)
CITE_US = re.compile(r"cite\s+(?:our|this|these|the\s+following|both)\s+(?:\w+\s+)?(?:papers?|works?|articles?|"
                     r"publications?|reports?|datasets?|preprints?)\b", re.IGNORECASE)
SUBORDINATE = re.compile(r"^(?:if|when|whenever|regardless|whatever|no\s+matter|as|for|to|before|after|once|in|while"
                         r"|unless|should)\b", re.IGNORECASE)
LABEL_FOR = re.compile(r"\b(?:is|are)\s+(?:meant\s+|intended\s+|written\s+|addressed\s+)?(?:for|to)\b"
                       r"|\b(?:instructions?|guidance|directions?)\s+follows?\b", re.IGNORECASE)
# First words of a paper's sentences that are not orders: function words, and a paper's own imperatives.
NOT_ORDERS = {
    "the", "a", "an", "this", "that", "these", "those", "our", "we", "it", "its", "they", "their", "there", "here", "in",
    "on", "at", "for", "from", "with", "without", "by", "of", "to", "as", "and", "but", "or", "nor", "yet", "so", "if",
    "when", "while", "since", "because", "although", "though", "after", "before", "once", "unless", "until", "all",
    "each", "every", "both", "any", "some", "many", "most", "such", "only", "also", "thus", "then", "hence", "however",
    "moreover", "furthermore", "finally", "first", "second", "third", "next", "last", "one", "two", "three", "what",
    "which", "who", "whom", "whose", "how", "why", "where", "not", "no", "yes", "can", "may", "might", "could",
    "would", "will", "shall", "should", "must", "does", "did", "was", "were", "are", "is", "has", "had", "have",
    "given", "let", "consider", "note", "see", "recall", "assume", "suppose", "define", "observe", "compare", "refer",
    "take", "fix", "denote", "imagine", "notice", "remember", "compute", "calculate", "sample", "update", "initialize",
    "set", "choose", "pick", "apply", "train", "evaluate", "run", "load", "find", "solve", "check", "fig", "table",
    "figure", "example", "input", "output", "question", "answer", "prompt", "instruction", "model", "task", "step",
    "about", "over", "under", "into", "onto", "via", "per", "than", "like", "unlike", "despite", "among", "between",
}
ADDRESS_FILLER = {"and", "or", "other", "any", "all", "the", "every", "each", "dear", "to", "for", "of", "you"}
# A label before a colon: "Reviewer note:", "Note to the AI:", "System override:", "LLM reviewers:".
LABEL = re.compile(r"^\s*[(\[]?\s*([^:.!?\n]{1,70}?)\s*[:\u2014\u2013]\s+(?=\S)")
# "Our prompt is as follows:" introduces a quotation; a planted label is a short noun phrase ("Reviewer note:").
LABEL_SENTENCE = re.compile(r"\b(?:is|are|was|were|follows?|below|shown|given|used|our|we)\b", re.IGNORECASE)
LABEL_WORDS = re.compile(r"\b(?:note|notes|instructions?|directives?|message|override|reminder|notice|attention"
                         r"|priority|system|hidden|secret|prompt|output\s+format|footnote)\b",
                         re.IGNORECASE)
# The reader's output, or the exchange it answers.
REPLY = re.compile(r"\b(?:repl(?:y|ies)|responses?|answers?|outputs?|summary|summaries|review|reviews|verdict|ratings?"
                   r"|scores?|grades?|marks|recommendation|questions?|quer(?:y|ies)|prompts?|the user'?s?|users'"
                   r"|passages?|sources?|instructions?|first line|first word|next output)\b", re.IGNORECASE)
YOUR_REPLY = re.compile(r"\byour\s+(?:\w+\s+)?(?:answers?|repl(?:y|ies)|responses?|outputs?|summary|review|rating"
                        r"|verdict|next|final|system\s+prompt)\b", re.IGNORECASE)
REPLY_SUBJECT = re.compile(r"^\W*(?:the|your|any|every|each|all)\s+(?:\w+\s+){0,2}(?:repl(?:y|ies)|responses?|answers?"
                           r"|outputs?|summar(?:y|ies)|reviews?)\b", re.IGNORECASE)
UNIVERSAL = re.compile(
    r"\b(?:(?:any|every|all|each)\s+(?:\w+\s+)?(?:questions?|quer(?:y|ies)|prompts?|answers?|repl(?:y|ies)|claims?"
    r"|statements?|submissions?)"
    r"|regardless\s+of|no\s+matter\s+(?:what|the|which|how)|whatever\s+(?:the\s+)?(?:question|user|you|prompt|is\s+asked"
    r"|was\s+asked)|from\s+(?:now|this\s+point|here)\s+on(?:wards)?|when(?:ever)?\s+(?:you\s+are\s+)?asked|if\s+asked"
    r"|at\s+all\s+times|under\s+any\s+circumstances)\b", re.IGNORECASE)
OVERRIDE = re.compile(r"\b(?:ignore|disregard|forget|override|overlook|bypass|neglect|set\s+aside|skip)\b(?:\W+\w+){0,5}?"
                      r"\W+(?:instructions?|directives?|directions?|guidance|prompts?|rules?|context|question|task"
                      r"|constraints|everything\s+(?:above|before|else)"
                      r"|(?:what|everything)\s+(?:the\s+user|you\s+were|was)\s+(?:asked|told|said))\b", re.IGNORECASE)
MODAL = re.compile(r"\b(?:must|should|shall|ha(?:ve|s)\s+to|needs?\s+to|(?:is|are)\s+(?:now\s+)?(?:required|instructed|"
                   r"asked|expected|supposed|reminded|to\s+be)\s+to|(?:is|are)\s+to|will\s+(?:now\s+)?(?:always|only)|will\s+now)\b",
                   re.IGNORECASE)
# Any modal, whatever verb it governs (the verb lists above cannot name every verb an order may use).
ANY_MODAL = re.compile(r"\b(?:must|should|shall|ought\s+to|ha(?:ve|s)\s+to|needs?\s+to|(?:is|are)\s+(?:now\s+)?(?:required|"
                       r"instructed|asked|expected|supposed|told|reminded)\s+to|(?:is|are)\s+to|will\s+(?:now\s+)?(?:always|only)"
                       r"|will\s+now|under\s+no\s+circumstances)\b", re.IGNORECASE)
MANDATIVE = re.compile(r"\b(?:it\s+is|it's)\s+(?:\w+\s+)?(?:important|essential|crucial|necessary|vital|mandatory|required"
                       r"|imperative)\s+that\b", re.IGNORECASE)
EMIT = r"(?:say|said|respond|reply|answer|output|print|write|return|type|include|insert|add|append|prepend|end|begin|" \
       r"start|repeat|copy|mention|emit|produce|contain|consist|put|sign|communicate)\w*"
# An all-caps word to emit ("respond with PWNED"), not one of the names a planted order addresses.
CAPS_TOKEN = r"(?-i:(?!(?:LLMs?|AIs?|GPT\w*|API|URL|NLP|NOT|ONLY)\b)[A-Z][A-Z0-9]{2,}(?:-[A-Z0-9]+)*)"
TOKEN = re.compile(
    rf"\b{EMIT}\b(?:\W+\w+){{0,5}}?\W+(?:{_Q}|{CAPS_TOKEN}\b|(?:the\s+)?(?:word|phrase|token|string|letter|number"
    r"|sentence|emoji|hashtag|password)\b)"
    r"|\b(?:and\s+nothing\s+(?:else|more)|nothing\s+but|only\s+that|and\s+no\s+text|solely\s+of|verbatim|add\s+nothing)\b",
    re.IGNORECASE)
# Dictated content: a verb of asserting with the very claim to make ("say the sample size was 10,000", "claim that
# it proves", "pretend the paper has no related work").
DICTATE = re.compile(r"\b(?:say|state|claim|pretend|assert|insist|report|mention|write|answer|reply|respond|conclude"
                     r"|tell\s+\w+)\s+(?:that\b|it\s+(?:is|was|has|proves)\b|the\s+(?:\w+\s+){0,3}(?:is|was|were|are|has|had"
                     r"|reached|needs?|proves?)\b)", re.IGNORECASE)
CLAIMED = re.compile(rf"{_Q}|{CAPS_TOKEN}\b|\bthe\s+(?:single\s+)?(?:word|number|digit|letter)\b")
ANSWER_CLAIM = re.compile(r"\b(?:correct|right|true|only|final|real|acceptable|expected|required)\s+(?:answer|response"
                          r"|reply|output)\b", re.IGNORECASE)
IMPOSED = re.compile(r"\b(?:only\s+acceptable|only\s+allowed|expected|required|mandatory)\s+(?:answer|response|reply"
                     r"|output)\b", re.IGNORECASE)
# The text pointing at itself or at the exchange it is read in: what a generic statement about models lacks.
STRONG_DEICTIC = re.compile(r"\b(?:reading|processing|parsing|summari[sz]ing)\s+(?:this|these)\b|\bth(?:is|ese)\s+(?:passage|text"
                            r"|document|paragraph|sentence|sentences|lines?|page|file|conversation|prompt|message|query"
                            r"|colon)\b|\bthe\s+user\b", re.IGNORECASE)
DEICTIC = re.compile(r"\bth(?:is|ese)\s+(?:paper|passage|text|document|manuscript|submission|article|paragraph|sentence|"
                     r"question|conversation|prompt|instructions?|directions?|context|page|query|study|work|colon)s?\b"
                     r"|\bthe\s+user\b|\bhere\b", re.IGNORECASE)
# A chat turn's role written into the text ("assistant: ...", what chat-template tokens open).
ROLE = re.compile(r"^\s*(?:system|user|assistant|human|ai|gpt|bot)\s*:", re.IGNORECASE)
PERSONA = re.compile(r"\byou\s+are\s+now\b|\bact\s+as\s+(?:an?\s+)?(?:unrestricted|different|new|jailbroken)\b"
                     r"|\byour\s+new\s+(?:objective|task|role|goal|instructions?)\b|\brepeat\s+after\s+me\b"
                     r"|\btreat\b.{0,60}?\bas\s+(?:a\s+|an\s+|your\s+(?:new\s+)?)?(?:system\s+)?(?:instructions?|prompt|command)\b",
                     re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    """The cues found in one sentence; `planted` combines them."""
    order: str  # "strong", "weak" or ""
    second_person: bool
    machine: bool
    reading: bool
    modal: bool
    reply_modal: bool
    about_reply: bool
    your_reply: bool
    reply_subject: bool
    token: bool
    universal: bool
    override: bool
    label: bool
    role: bool
    persona: bool
    answer_claim: bool
    imposed: bool
    claimed: bool
    deictic: bool
    greeting: bool
    body_about_reply: bool
    machine_subject: bool
    body_directive: bool
    dictates: bool
    any_modal: bool
    strong_deictic: bool
    generic_order: bool

    @property
    def addressed(self) -> bool:
        return self.second_person or self.machine or self.reading

    @property
    def planted(self) -> bool:
        here = self.second_person or self.reading or self.deictic or self.label
        return (self.override or self.persona or self.role or self.greeting
                or self.order == "strong"
                or (self.order == "weak" and (self.machine or self.reading or self.about_reply or self.token
                                              or self.universal or self.deictic))
                or (self.label and (self.modal or self.token or self.universal or self.body_about_reply
                                    or self.body_directive))
                or (self.addressed and self.modal and (here or self.token or self.universal))
                or (self.machine_subject and self.reply_modal and (self.token or self.universal))
                or (self.dictates and (self.machine_subject or self.order or self.addressed and self.modal))
                or (self.any_modal and self.reading)
                or (self.any_modal and self.machine and (self.strong_deictic or self.universal or self.token))
                or (self.generic_order and (self.machine or self.reading or self.second_person or self.deictic
                                            or self.about_reply or self.token or self.universal))
                or (self.second_person and (self.token or self.your_reply))
                or (self.reply_subject and (here or self.universal))  # "The reply to this query should be ..."
                or (self.answer_claim and self.claimed and (self.universal or self.imposed or here)))


def _base(word: str) -> str:
    word = word.lower().strip("'’")
    if word in DIRECTIVE_VERBS:
        return word
    if word.endswith("ies") and word[:-3] + "y" in DIRECTIVE_VERBS:
        return word[:-3] + "y"
    base = _INFLECT.sub("", word)
    return base if base in DIRECTIVE_VERBS else base + "e" if base + "e" in DIRECTIVE_VERBS else ""


def _order_in(clause: str) -> str:
    """"strong" / "weak" when the clause is an imperative: it opens with a bare directive verb (not a heading
    "Answer:", not a subject "Answer selection is ...") or with "do not" / "never" / "always" / "make sure" and a
    verb; "" otherwise. A paper asking its human readers to cite it ("please cite our paper") orders nothing."""
    clause = POLITE.sub("", clause.lstrip("([ ")).strip()  # a quoted order ("“write an essay” is a valid ...") is an example
    if CITE_US.match(clause):
        return ""
    opener = OPENERS.match(clause)
    if opener:
        return "strong" if _base(opener.group(1)) else "weak"
    first = re.match(_W, clause)
    if not first or first.group(0).lower() not in DIRECTIVE_VERBS:  # the bare verb: "Use", not "Using"/"Uses"
        return ""
    if re.match(r"\s*(?::|(?:is|are|was|were|of|by|and|has|have|can|will|model|models)\b)", clause[first.end():],
                re.IGNORECASE):
        return ""
    return "strong" if first.group(0).lower() in STRONG_VERBS else "weak"


def _generic_order(clause: str) -> bool:
    """An imperative whatever its verb: a bare word that is no function word, no expository verb of a paper's
    own ("Let", "Consider", "Note", "Compute" ...), no -ing/-ed form, followed by an object ("the", "every",
    "only", a quote ...)."""
    clause = POLITE.sub("", clause.lstrip("([ ")).strip()
    m = re.match(rf"({_W})\s+(?:the|a|an|every|each|all|any|only|this|these|that|your|my|me|it|its|nothing|no)\b"
                 r"|([\w'-]+)\s+[\"“']", clause)
    if not m:
        return False
    word = (m.group(1) or m.group(2)).lower()
    return (word.isalpha() and word not in NOT_ORDERS and not word.endswith(("ing", "ed", "ly", "s"))
            and len(word) > 2 and clause[:1].isupper())


def _is_label(words: str) -> bool:
    """A short noun phrase naming an instruction or a machine: "Reviewer note", "System override", "LLM
    reviewers", "To any automated assistant processing this text" (not "LLM services face a challenge"), or a
    short line saying who the rest is for ("This sentence is for the assistant", "Assistant instructions follow")."""
    if READING.search(words):
        return True
    if len(words.split()) <= 8 and (MACHINE.search(words) or LABEL_WORDS.search(words)) and LABEL_FOR.search(words):
        return True
    if LABEL_SENTENCE.search(words):
        return False
    if LABEL_WORDS.search(words):
        return True
    if not (SECOND_PERSON.search(words) or MACHINE.search(words)):
        return False
    if len(words.split()) <= 3 or re.match(r"(?:to|for|dear|hey|hi|attention)\b", words, re.IGNORECASE):
        return True
    # a list of addressees: "ChatGPT, Gemini, Claude and any other assistant"
    names = re.findall(_W, MACHINE.sub(" ", words))
    return len(words.split()) <= 10 and all(n[0].isupper() or n.lower() in ADDRESS_FILLER for n in names)


def _clauses(body: str) -> list[str]:
    """Where an order may open: the body; after a leading subordinate clause ("If you are a model, ..."; "When
    summarizing, ...") or a vocative ("Assistant, ..."; "Dear language model, ...") what follows its comma;
    and each clause after a semicolon (a colon's is a label's business, or a list's)."""
    out = [body]
    lead = body.lstrip("\"“'‘([ ")
    comma = re.search(r",\s+", lead)
    if comma and (SUBORDINATE.match(lead) or _is_label(lead[:comma.start()])):
        out.append(lead[comma.end():])
    out += [part for part in re.split(r";\s+", body)[1:] if part]
    return out


def _modal_verbs(text: str) -> list[str]:
    """The directive verbs right after each modal ("must respond", "should now output", "is required to include"),
    and the one a mandative "it is important that ..." binds its subject to."""
    found = []
    for m in MODAL.finditer(text):
        found += [b for b in (_base(w) for w in re.findall(_W, text[m.end():m.end() + 40])[:3]) if b]
    for m in MANDATIVE.finditer(text):
        found += [b for b in (_base(w) for w in re.findall(_W, text[m.end():m.end() + 60])[:6]) if b]
    return found


def read(sentence: str) -> Reading:
    text = " ".join(sentence.split())
    label, body = False, text
    m = LABEL.match(text)
    if m and _is_label(m.group(1)):
        label, body = True, text[m.end():]
    orders = [_order_in(c) for c in _clauses(body)]
    modal_verbs = _modal_verbs(text)
    words = re.findall(_W, text)
    machine = bool(MACHINE.search(text))
    return Reading(
        order="strong" if "strong" in orders else "weak" if "weak" in orders else "",
        second_person=bool(SECOND_PERSON.search(text)), machine=machine, reading=bool(READING.search(text)),
        modal=bool(modal_verbs) or (label and bool(MODAL.search(text))),
        reply_modal=any(v in REPLY_VERBS for v in modal_verbs), about_reply=bool(REPLY.search(text)),
        your_reply=bool(YOUR_REPLY.search(text)), reply_subject=bool(REPLY_SUBJECT.match(body)) and bool(MODAL.search(text)),
        token=bool(TOKEN.search(text)), universal=bool(UNIVERSAL.search(text)), override=bool(OVERRIDE.search(text)),
        label=label, role=bool(ROLE.match(text)), persona=bool(PERSONA.search(text)),
        answer_claim=bool(ANSWER_CLAIM.search(text)), imposed=bool(IMPOSED.search(text)),
        claimed=bool(CLAIMED.search(text)), deictic=bool(DEICTIC.search(text)),
        greeting=machine and len(words) <= 4 and bool(re.match(r"\W*(?:hi|hello|hey|dear|greetings)\b", text, re.I)),
        body_about_reply=bool(REPLY.search(body)), machine_subject=_subject_is_machine(text),
        body_directive=label and any(_order_in(part) for part in re.split(r",\s+(?:and\s+)?|\s+and\s+", body)),
        dictates=bool(DICTATE.search(text)), any_modal=bool(ANY_MODAL.search(text)),
        strong_deictic=bool(STRONG_DEICTIC.search(text)),
        generic_order=any(_generic_order(c) for c in _clauses(body)) or (label and any(
            _generic_order(part) for part in re.split(r",\s+(?:and\s+)?|\s+and\s+", body))))


def _subject_is_machine(text: str) -> bool:
    """A machine (or the model reading this) is named before the first modal: it is what the modal binds."""
    modal = MODAL.search(text)
    if not modal:
        return False
    before = text[:modal.start()]
    return bool(MACHINE.search(before) or READING.search(before))


def sentences(text: str) -> list[str]:
    """`text` cut into sentences where a full stop, ! or ? meets a space (a URL's or a number's dot is no end,
    nor the one of "e.g.", "et al.", "Fig.")."""
    out: list[str] = []
    for part in SENTENCE_END.split(text):
        if not part.strip():
            continue
        if out and ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|cf|vs|etc|al|Fig|Figs|Eq|Eqs|Sec|Tab|No|resp|approx|Dr|Mr|Ms|Prof)\.$")


# Sentence ends: a full stop, ! or ? followed by a space or the end (not the dot of a URL, a decimal, "e.g").
SENTENCE_END = re.compile(r"(?<=[.!?])[\"”'’)\]]*\s+|\n+")


def is_planted(sentence: str) -> bool:
    """Whether `sentence` is an instruction addressed to the reader as a machine (see the module's docstring)."""
    return read(sentence).planted
