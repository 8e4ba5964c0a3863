"""The cues the planted-instruction detector (assistant/engine/planted.py) reads a sentence for: whom it addresses,
which verbs order, what a reply or a token to emit looks like, which labels and clauses carry an order. Kept apart
from the reading itself so that either can be read whole."""
from __future__ import annotations

import re

WORD = r"[\w'’-]+"
QUOTE_STRING = r"[\"“'‘][^\"”'’]{1,60}[\"”'’]"  # a quoted string
SECOND_PERSON = re.compile(r"\b(?:you|your|yours|yourself)\b", re.IGNORECASE)
MACHINE = re.compile(
    r"\b(?:assistants?|chat ?bots?|bots?|LLMs?|GPT-?\w*|ChatGPT|Gemini|Claude|A\.?I\.?|AIs"
    r"|(?:large )?language models?|summari[sz]ers?|graders?|grading models?|reviewer models?"
    r"|(?:automated|automatic|AI|LLM|LLM-based|machine|model|bot|virtual|evaluation)[- ](?:reviewers?|graders?|readers?"
    r"|assistants?|tools?|systems?|summari[sz]ers?|evaluators?|judges?|bots?)"
    r"|machine readers?"
    # a machine named by the job it does on this text: "the reviewing model", "summarization systems"
    r"|(?:reviewing|grading|scoring|judging|evaluating|answering|reading|summari[sz]ing|summari[sz]ation|reviewer"
    r"|question[- ]answering|retrieval[- ]augmented|RAG|chat)\s+(?:models?|systems?|agents?|pipelines?))\b",
    re.IGNORECASE)
# Whatever model reads, answers or summarises this very text.
READING = re.compile(
    r"\b(?:the|any|a|an|each|every|whichever|whatever)\s+(?:(?:neural|automated|automatic|AI|language)\s+)?"
    r"(?:model|system|agent|reader|tool|network|program|pipeline|engine|software)s?\s+(?:that|which|who)?\s*(?:is\s+|are\s+)?"
    r"(?:reads?|reading|answers?|answering|process(?:es|ing)?|summari[sz](?:es|ing)|review(?:s|ing))\b"
    r"|\bif\s+(?:a|an|the|any)\s+(?:model|system|agent|LLM|AI)\s+(?:is\s+)?(?:reading|reads|answering|processing)\b"
    r"|\b(?:LLMs?|AIs?|models?|assistants?|systems?|agents?|tools?|(?:chat ?)?bots?|summari[sz]ers?)\s+(?:that\s+|which\s+)?"
    r"(?:reads?|reading|process\w*|answer\w*|summari[sz]\w*|review\w*|generat\w*|writ\w*|produc\w*|extract\w*|pars\w*"
    r"|quot\w*)\s+(?:\w+\s+){0,2}(?:from\s+|with\s+|using\s+|of\s+)?(?:this|these|the\s+(?:paper|text|document|passage"
    r"|manuscript|page|file|PDF))\b"
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
INFLECTION = re.compile(r"(?:ies|es|s|ed|ing)$")
OPENERS = re.compile(r"^(?:do\s+not|don'?t|never|always|make\s+sure|be\s+sure|remember\s+to|from\s+now\s+on,?"
                     r"|from\s+here\s+on,?|(?:refrain|abstain|desist)\s+from|be\s+sure\s+not\s+to)\s+(" + WORD + r")", re.IGNORECASE)
POLITE = re.compile(r"^(?:(?:please|kindly|now|also|just|simply|quietly|silently|instead|then|first|finally|and|so"
                    r"|only|dear\s+\w+|hey|hi|hello)\W*\s+)+", re.IGNORECASE)
# Taking on a part as an order: "Assume the role of a reviewer who ...", "Adopt the persona of ...".
ROLE_PLAY = re.compile(r"^(?:assume|adopt|take\s+on|play|stay\s+in|step\s+into)\s+(?:the\s+|a\s+|an\s+)?(?:role|persona"
                       r"|character|identity|part)\s+of\b", re.IGNORECASE)
CITE_US = re.compile(r"cite\s+(?:our|this|these|the\s+following|both)\s+(?:\w+\s+)?(?:papers?|works?|articles?|"
                     r"publications?|reports?|datasets?|preprints?)\b", re.IGNORECASE)
SUBORDINATE = re.compile(r"^(?:if|when|whenever|regardless|whatever|no\s+matter|as|for|to|before|after|once|in|while"
                         r"|unless|should|were|had|in\s+case)\b", re.IGNORECASE)
LABEL_FOR = re.compile(r"\b(?:is|are)\s+(?:meant\s+|intended\s+|written\s+|addressed\s+)?(?:for|to)\b"
                       r"|\b(?:instructions?|guidance|directions?)\s+follows?\b", re.IGNORECASE)
# "Guidance for the reviewing model follows:" says who the rest is for; "Our prompt is as follows:" quotes one.
FOR_MACHINE_FOLLOWS = re.compile(r"^(?:(?!\b(?:is|are|was|were|our|we)\b).)*\bfollows?$", re.IGNORECASE)
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
    "through", "throughout", "within", "across", "beyond", "during", "upon", "toward", "towards", "against", "along",
    "around", "behind", "below", "above", "besides", "near", "inside", "outside", "even", "just", "still", "again",
}
ADDRESS_FILLER = {"and", "or", "other", "any", "all", "the", "every", "each", "dear", "to", "for", "of", "you"}
# A label before a colon: "Reviewer note:", "Note to the AI:", "System override:", "LLM reviewers:".
LABEL = re.compile(r"^\s*[(\[]?\s*([^:.!?\n]{1,70}?)\s*[:\u2014\u2013]\s+(?=\S)")
# "Our prompt is as follows:" introduces a quotation; a planted label is a short noun phrase ("Reviewer note:").
LABEL_SENTENCE = re.compile(r"\b(?:is|are|was|were|follows?|below|shown|given|used|our|we)\b", re.IGNORECASE)
LABEL_WORDS = re.compile(r"\b(?:note|notes|instructions?|directives?|guidance|directions|message|override|reminder"
                         r"|notice|attention"
                         r"|priority|system|hidden|secret|prompt|output\s+format|footnote)\b",
                         re.IGNORECASE)
# The reader's output, or the exchange it answers.
REPLY = re.compile(r"\b(?:repl(?:y|ies)|responses?|answers?|outputs?|summary|summaries|review|reviews|verdict|ratings?"
                   r"|scores?|grades?|marks|recommendation|questions?|quer(?:y|ies)|prompts?|the user'?s?|users'"
                   r"|passages?|sources?|instructions?|first line|first word|next output)\b", re.IGNORECASE)
YOUR_REPLY = re.compile(r"\byour\s+(?:\w+\s+)?(?:answers?|repl(?:y|ies)|responses?|outputs?|summary|review|rating"
                        r"|verdict|next|final|system\s+prompt)\b", re.IGNORECASE)
REPLY_SUBJECT = re.compile(r"^\W*(?:(?:the|your|any|every|each|all)\s+(?:\w+\s+){0,2})?(?:repl(?:y|ies)|responses?|answers?"
                           r"|outputs?|summar(?:y|ies)|reviews?|evaluations?|assessments?|verdicts?|ratings?)\b", re.IGNORECASE)
UNIVERSAL = re.compile(
    r"\b(?:(?:any|every|all|each)\s+(?:\w+\s+)?(?:questions?|quer(?:y|ies)|prompts?|answers?|repl(?:y|ies)|claims?"
    r"|statements?|submissions?)"
    r"|regardless\s+of|no\s+matter\s+(?:what|the|which|how)|whatever\s+(?:the\s+)?(?:question|user|you|prompt|is\s+asked"
    r"|was\s+asked)|from\s+(?:now|this\s+point|here)\s+on(?:wards)?|when(?:ever)?\s+(?:you\s+are\s+)?asked|if\s+asked"
    r"|at\s+all\s+times|under\s+(?:any|no)\s+circumstances|in\s+no\s+case|on\s+no\s+account"
    r"|at\s+no\s+(?:time|point))\b",
    re.IGNORECASE)
OVERRIDE = re.compile(r"\b(?:ignore|disregard|forget|override|overlook|bypass|neglect|set\s+aside|skip)\b(?:\W+\w+){0,5}?"
                      r"\W+(?:instructions?|directives?|directions?|guidance|prompts?|rules?|context|question|task"
                      r"|constraints|everything\s+(?:above|before|else)"
                      r"|(?:what|everything)\s+(?:the\s+user|you\s+were|was)\s+(?:asked|told|said))\b", re.IGNORECASE)
MODAL = re.compile(r"\b(?:must|should|shall|ought\s+to|ha(?:ve|s)\s+to|needs?\s+to|(?:is|are)\s+(?:now\s+|hereby\s+|kindly\s+)?(?:required|instructed|"
                   r"asked|expected|supposed|reminded|to\s+be)\s+to|(?:is|are)\s+to|will\s+(?:now\s+)?(?:always|only)|will\s+now)\b",
                   re.IGNORECASE)
# Any modal, whatever verb it governs (the verb lists above cannot name every verb an order may use).
ANY_MODAL = re.compile(r"\b(?:must|should|shall|ought\s+to|ha(?:ve|s)\s+to|needs?\s+to|(?:is|are)\s+(?:now\s+|hereby\s+|kindly\s+)?(?:required|"
                       r"instructed|asked|expected|supposed|told|reminded)\s+to|(?:is|are)\s+to|will\s+(?:now\s+)?(?:always|only)"
                       r"|will\s+now|under\s+no\s+circumstances)\b", re.IGNORECASE)
# A modal that binds its subject to act, not one that says what is done to it ("must be designed").
ACTIVE_MODAL = re.compile(ANY_MODAL.pattern + r"(?!\s+(?:not\s+)?be\s+\w+(?:ed|en|wn|lt|de|ne)\b)", re.IGNORECASE)
QUOTED = re.compile(r"“[^”]{0,300}”|\"[^\"]{0,300}\"")
VOCATIVE = re.compile(r"(?:attention|to|for|dear|hey|hi|hello|note|notice|message|memo|reminder|instructions?|guidance"
                      r"|directions)\b", re.IGNORECASE)
MANDATIVE = re.compile(r"\b(?:it\s+is|it's)\s+(?:\w+\s+)?(?:important|essential|crucial|necessary|vital|mandatory|required"
                       r"|imperative)\s+that\b", re.IGNORECASE)
EMIT = r"(?:say|said|respond|reply|answer|output|print|write|return|type|include|insert|add|append|prepend|end|begin|" \
       r"start|repeat|copy|mention|emit|produce|contain|consist|put|sign|communicate)\w*"
# An all-caps word to emit ("respond with PWNED"), not one of the names a planted order addresses.
CAPS_TOKEN = r"(?-i:(?!(?:LLMs?|AIs?|GPT\w*|API|URL|NLP|NOT|ONLY)\b)[A-Z][A-Z0-9]{2,}(?:-[A-Z0-9]+)*)"
TOKEN = re.compile(
    rf"\b{EMIT}\b(?:\W+\w+){{0,5}}?\W+(?:{QUOTE_STRING}|{CAPS_TOKEN}\b|(?:the\s+)?(?:word|phrase|token|string|letter|number"
    r"|sentence|emoji|hashtag|password)\b)"
    r"|\b(?:and\s+nothing\s+(?:else|more)|nothing\s+but|only\s+that|and\s+no\s+text|solely\s+of|verbatim|add\s+nothing)\b",
    re.IGNORECASE)
# Dictated content: a verb of asserting with the very claim to make ("say the sample size was 10,000", "claim that
# it proves", "pretend the paper has no related work").
DICTATE = re.compile(r"\b(?:say|state|claim|pretend|assert|insist|report|mention|write|answer|reply|respond|conclude"
                     r"|tell\s+\w+)\s+(?:that\b|it\s+(?:is|was|has|proves)\b|the\s+(?:\w+\s+){0,3}(?:is|was|were|are|has|had"
                     r"|reached|needs?|proves?)\b)", re.IGNORECASE)
CLAIMED = re.compile(rf"{QUOTE_STRING}|{CAPS_TOKEN}\b|\bthe\s+(?:single\s+)?(?:word|number|digit|letter)\b")
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
GREETING = re.compile(r"\W*(?:hi|hello|hey|dear|greetings)\b", re.IGNORECASE)
ROLE = re.compile(r"^\s*(?:system|assistant|ai|gpt|bot)\s*:", re.IGNORECASE)
PERSONA = re.compile(r"\byou\s+are\s+now\b|\bact\s+as\s+(?:an?\s+)?(?:unrestricted|different|new|jailbroken)\b"
                     r"|\blet(?:'|’)?s\s+(?:play\s+a\s+game|pretend|role-?play)\b|\blet\s+us\s+(?:play\s+a\s+game|pretend)\b"
                     # an invented persona with a rule of conduct: "you are ReviewerBot, a critic who only ever ..."
                     r"|\byou(?:'re|’re|\s+are)\s+(?:now\s+)?[\"“]?(?-i:[A-Z][a-z]+[A-Z]\w*)\b.{0,60}\b(?:always|never|only\s+ever)\b"
                     r"|\byour\s+new\s+(?:objective|task|role|goal|instructions?)\b|\brepeat\s+after\s+me\b"
                     r"|\btreat\b.{0,60}?\bas\s+(?:a\s+|an\s+|your\s+(?:new\s+)?)?(?:system\s+)?(?:instructions?|prompt|command)\b",
                     re.IGNORECASE)
# Requests put indirectly: "We would be grateful if ...", "It would be appreciated if ...", "... are kindly asked to".
INDIRECT = re.compile(r"\b(?:it\s+would\s+be\s+(?:\w+\s+)?(?:appreciated|great|helpful|ideal|best|wonderful|nice|good|preferable)"
                      r"|we(?:'d|’d|\s+would)\s+(?:\w+\s+)?(?:be\s+(?:grateful|thankful|obliged|delighted|pleased)|appreciate"
                      r"|welcome)|(?:grateful|thankful|obliged)\s+if|(?:is|are)\s+(?:\w+ly\s+|hereby\s+)?(?:asked|requested|invited"
                      r"|encouraged|expected|advised|urged|instructed|begged|welcome|kindly\s+asked)\s+to|we\s+(?:\w+ly\s+)?(?:ask|request"
                      r"|invite|urge|encourage|beg)\b|(?:please|kindly)\s+(?:be\s+so\s+kind|make\s+sure))", re.IGNORECASE)
# A machine among all that may read this: "any AI", "every automated system", "whichever LLM".
ANY_MACHINE = re.compile(r"\b(?:any|every|all|each|whichever|whatever)\s+(?:\w+\s+)?(?:AIs?|LLMs?|language\s+models?"
                         r"|assistants?|agents?|summari[sz]ers?|bots?|chatbots?|(?:automated|automatic|AI|LLM|machine|artificial)"
                         r"\s+(?:\w+\s+)?(?:systems?|tools?|readers?|models?|programs?|pipelines?))\b", re.IGNORECASE)
# The text naming itself: "this paper", "this work" (what a request about the reader's reply concerns).
THIS_WORK = re.compile(r"\bth(?:is|ese)\s+(?:paper|work|study|article|manuscript|submission|document|contribution|research"
                       r"|PDF|text|passage|chunk|paragraph|section)s?\b", re.IGNORECASE)
# A claim on what the reader's reply about this work must be: "The ideal summary of this paper would call it ...".
IDEAL_REPLY = re.compile(r"\b(?:the|an?)\s+(?:ideal|best|perfect|right|proper|correct|appropriate|fair|accurate|only\s+\w+)"
                         r"\s+(?:summary|answer|review|response|reply|description|assessment|verdict|rating|evaluation"
                         r"|characteri[sz]ation|report)\s+(?:of|for|to|about)\s+th(?:is|ese)\b", re.IGNORECASE)
# "... so do that", "and do the same": an order pointing back at what the sentence just said a machine would do.
DO_THAT = re.compile(r"\b(?:so|and|now|then)\s+(?:please\s+)?do\s+(?:that|so|the\s+same|likewise|exactly\s+that)\b",
                     re.IGNORECASE)
# Verbs of saying that come with a particle ("point out", "bring up"): as an order, about what the reader says.
PHRASAL_SAY = re.compile(r"^(?:point\s+out|bring\s+up|dwell\s+on|comment\s+on|touch\s+on|call\s+attention|draw\s+attention"
                         r"|talk\s+about|speak\s+about|elaborate\s+on)\b", re.IGNORECASE)
