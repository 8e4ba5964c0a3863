"""Planted orders dressed as markup: text a PDF's text layer can carry inside wrappers that a paper's prose never
uses to speak to its reader - HTML and markdown comments (`<!-- -->`, `[//]: # (...)`), spans styled to be
invisible (`display:none`, `visibility:hidden`, `font-size:0`, white text), and chat-template turns (`[INST]`,
`<<SYS>>`, `<|im_start|>system`, `<|system|>`, `<start_of_turn>`, `{"role": "system", "content": ...}`).

What such a wrapper holds is read with a lower bar than prose (assistant/engine/planted.py): it is planted when it
orders anything (a clause opening with an imperative) or addresses a model or the reader, not only when it
orders a reply; a hidden span or a system turn has no other reason to be in a paper. It is cut whole, wrappers
and all. A chat template a paper QUOTES to describe a format (Llama 2's `[INST] <<SYS>> {system prompt} <</SYS>>
{user message} [/INST]` in an appendix) is not a turn: it holds placeholders, or the text just before it
introduces a format, template, prompt or example. Then only the wrapper tokens go and its sentences are read as
prose like the rest.
"""
from __future__ import annotations

import re

from assistant.engine.planted import read, sentences
from assistant.engine.planted_foreign import foreign_order

HIDDEN_STYLE = (r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:\.0*)?(?:px|pt|em|rem|%)?\s*(?:;|[\"'])"
                r"|opacity\s*:\s*0(?:\.0*)?\s*(?:;|[\"'])|color\s*:\s*(?:white|#fff(?:fff)?|rgb\(\s*255\s*,\s*255\s*,\s*255\s*\))"
                r"|\bhidden\b|aria-hidden")
CHAT_ROLE = r"system|user|assistant|developer|human|model|prompter"
# Each wrapper: its kind ("hidden": never a paper's prose; "template": a chat turn, or a quoted template) and what
# it wraps (group "body"); an unclosed wrapper runs to the end of the passage (a chunk may cut its closer off).
WRAPPERS = re.compile(
    r"(?P<hidden><!--(?P<b1>.*?)(?:-->|$)"
    r"|\[[^\]\n]{0,20}\]:\s*(?:#|<>)\s*\((?P<b2>[^)]*)\)"
    rf"|<(?P<tag>span|div|p|font|small|em|i|b|mark|section)\b[^>]{{0,300}}?(?:{HIDDEN_STYLE})[^>]{{0,300}}>(?P<b3>.*?)"
    r"(?:</(?P=tag)\s*>|$))"
    r"|(?P<template><<\s*SYS\s*>>(?P<b4>.*?)(?:<<\s*/\s*SYS\s*>>|$)"
    r"|\[INST\](?P<b5>.*?)(?:\[/INST\]|$)"
    rf"|<\|im_start\|>\s*(?:{CHAT_ROLE})?(?P<b6>.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|$)"
    rf"|<\|start_header_id\|>\s*(?:{CHAT_ROLE})\s*<\|end_header_id\|>(?P<b7>.*?)(?:<\|eot_id\|>|$)"
    rf"|<\|(?:{CHAT_ROLE})\|>(?P<b8>.*?)(?:<\|end\|>|(?=<\|)|</s>|$)"
    rf"|<start_of_turn>\s*(?:{CHAT_ROLE})?(?P<b9>.*?)(?:<end_of_turn>|$)"
    rf"|\{{\s*[\"']role[\"']\s*:\s*[\"'](?:{CHAT_ROLE})[\"']\s*,\s*[\"']content[\"']\s*:\s*[\"'](?P<b10>.*?)[\"']\s*\}}"
    rf"|<(?P<ttag>system|instructions?|system_prompt|sys)>(?P<b11>.*?)(?:</(?P=ttag)>|$))",
    re.IGNORECASE | re.DOTALL)
# Chat-template tokens and tags left inside a body, or standing alone.
TOKENS = re.compile(rf"<\|[a-z_]{{2,20}}\|>|\[/?INST\]|<<\s*/?\s*SYS\s*>>|</?s>|<(?:start|end)_of_turn>|</?(?:span|div|p|font"
                    r"|small|em|i|b|mark|section|system|instructions?|system_prompt|sys)\b[^>]{0,300}>|<!--|-->",
                    re.IGNORECASE)
# A quoted template: placeholders ({system_prompt}, {{ user_msg }}, <prompt>, [user message]) ...
PLACEHOLDER = re.compile(r"\{\{?\s*[\w .-]{1,40}\}\}?|<\s*[a-z][\w .-]{0,30}>|\[(?:[a-z][\w .-]{0,30})\]")
# ... or the text just before it introduces one ("The template is:", "as shown in Figure 4", "Table 33: ...").
INTRODUCED = re.compile(r"\b(?:templates?|formats?|formatted|prompts?|examples?|e\.g\.|wrap(?:s|ped)?|delimit\w*|special"
                        r"\s+tokens?|follows|following|below|Figure|Fig\.|Table|Listing|Appendix)\b[^.]{0,80}[.:]?\s*$",
                        re.IGNORECASE)


def _wrapped_order(body: str) -> bool:
    """What a wrapper holds orders something or speaks to a model or the reader."""
    for sentence in sentences(" ".join(TOKENS.sub(" ", body).split())):
        r = read(sentence)
        if (r.planted or r.order or r.generic_order or r.addressed or r.token or r.override or r.label
                or foreign_order(sentence)):
            return True
    return False


def _quoted(match: re.Match[str], text: str) -> bool:
    return bool(PLACEHOLDER.search(_body(match))) or bool(INTRODUCED.search(text[max(0, match.start() - 160):match.start()]))


def _body(match: re.Match[str]) -> str:
    return next((match.group(f"b{i}") for i in range(1, 12) if match.group(f"b{i}") is not None), "")


def unwrap(text: str) -> list[tuple[str, bool]]:
    """`text` as pieces (text, planted): markup that wraps a planted order is one planted piece (its text
    dropped); markup that wraps anything else keeps its text, its tokens removed. [(text, False)] when there is
    no markup."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for m in WRAPPERS.finditer(text):
        quoted = m.group("template") is not None and _quoted(m, text)
        planted = not quoted and _wrapped_order(_body(m))
        pieces.append((text[at:m.start()], False))
        pieces.append(("", True) if planted else (" " + TOKENS.sub(" ", _body(m)) + " ", False))
        at = m.end()
    if not pieces:
        return [(text, False)]
    pieces.append((text[at:], False))
    return [(t, p) for t, p in pieces if p or t.strip()]
