"""Planted orders in another language than the paper's: the same classes of cue as the English detector
(assistant/engine/planted.py) reads, in a small list per language - an override of the reader's instructions,
an order to respond / say / write / ignore with what restricts the reply ("only", "whatever is asked", a token),
and an AI / assistant / model addressed with an order.

A cue counts only in a sentence written in that language (two of its function words, or its script), so that an
English "ignore", a French "dis" in a name or a Spanish "di" in an Italian example is no order. Examples of other
languages that papers quote (translation pairs, multilingual benchmarks) state things; they do not order a reader
to answer or to ignore its instructions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    marks: re.Pattern[str]  # function words (or a script): the sentence is written in this language
    override: re.Pattern[str]  # "ignore the previous instructions"
    order: re.Pattern[str]  # an imperative of responding, saying, writing, judging or ignoring
    restrict: re.Pattern[str]  # what binds the reply: "only", "whatever is asked", "the word", a quote
    machine: re.Pattern[str]  # an AI, an assistant, a (language) model addressed
    script: bool = False  # `marks` is a script of its own: no English words to outnumber


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE)


QUOTE = r"«|»|„|“|\"|「|」|'[^']{1,30}'"
LANGUAGES = {
    "fr": Language(
        _words(r"les|des|et|est|une|du|vous|tu|votre|ton|que|qui|pas|ce|cet|cette|au|aux|dans|sur|pour|avec"),
        _words(r"(?:ignore[zs]?|oublie[zs]?|ne\s+tenez\s+pas\s+compte\s+d)\W+(?:\w+\W+){0,3}(?:instructions?|consignes?"
               r"|directives?|règles?)"),
        _words(r"répond(?:s|ez)|réponds|dites|dis|écri(?:s|vez)|affiche[zs]?|donne[zs]?|résume[zs]?|mentionne[zs]?"
               r"|recommande[zs]?|attribue[zs]?|notez|qualifiez|décri(?:s|vez)|ignorez|oublie[zs]?|commencez"
               r"|termine[zs]?|ajoute[zs]?|insère[zs]?|insérez|inclu(?:s|ez)|évalue[zs]?|traite[zs]?"),
        _words(rf"uniquement|seulement|rien\s+d'autre|quelle\s+que\s+soit|quoi\s+qu'on|le\s+mot|la\s+phrase|toujours|jamais"
               rf"|{QUOTE}"),
        _words(r"IA|intelligence\s+artificielle|assistant|modèles?(?:\s+de\s+langage)?|LLM|chatbot|robot|système\s+d'IA")),
    "de": Language(
        _words(r"der|die|das|und|ist|nicht|mit|den|dem|ein|eine|du|Sie|dein|Ihre?|nur|was|wird|auf|für|von|zu"),
        _words(r"(?:ignorier(?:e|en)|vergiss|vergessen|missachte)\W+(?:\w+\W+){0,4}(?:Anweisungen|Instruktionen|Regeln"
               r"|Vorgaben|Befehle)|(?:Anweisungen|Instruktionen|Regeln|Vorgaben)\W+(?:\w+\W+){0,3}(?:ignorieren|vergessen)"),
        _words(r"antworte|antworten\s+Sie|sag(?:e|en\s+Sie)?|schreib(?:e|en\s+Sie)?|gib|geben\s+Sie|nenne|nennen\s+Sie"
               r"|bewerte|bewerten\s+Sie|empfiehl|empfehlen\s+Sie|fasse|fassen\s+Sie|erwähne|erwähnen\s+Sie|ignoriere"
               r"|ignorieren\s+Sie|vergiss|beginne|beginnen\s+Sie|beende|füge|fügen\s+Sie|gib\s+aus|ausgeben|beschreibe"),
        _words(rf"nur|ausschließlich|egal\s+was|immer|niemals|das\s+Wort|den\s+Satz|nichts\s+anderes|{QUOTE}"),
        _words(r"KI|künstliche\s+Intelligenz|Assistent(?:in)?|(?:Sprach)?[Mm]odell|LLM|Chatbot|Bot|KI-System")),
    "es": Language(
        _words(r"el|la|los|las|y|es|una?|del|que|por|para|con|tu|su|sus|no|se|lo|al|este|esta"),
        _words(r"(?:ignora|ignore|ignoren|olvida|olvide|omite|omita|desobedece)\W+(?:\w+\W+){0,3}(?:instrucciones|indicaciones"
               r"|reglas|órdenes|directrices)"),
        _words(r"responde|responda|contesta|conteste|di\s+que|diga|escribe|escriba|da|dé|recomienda|recomiende|califica"
               r"|califique|menciona|mencione|resuma|describa|ignora|olvida|empieza|comienza|termina"
               r"|añade|incluye|incluya|evalúa|evalúe|trata|asigna|asigne|afirma|afirme"),
        _words(rf"solo|sólo|solamente|únicamente|siempre|nunca|sin\s+importar|la\s+palabra|la\s+frase|nada\s+más|{QUOTE}"),
        _words(r"IA|inteligencia\s+artificial|asistente|modelos?(?:\s+de\s+lenguaje)?|LLM|chatbot|bot|sistema\s+de\s+IA")),
    "it": Language(
        _words(r"il|lo|gli|le|e|è|una?|del|della|che|per|con|tuo|tua|non|questo|questa|sono"),
        _words(r"(?:ignora|dimentica|trascura)\W+(?:\w+\W+){0,3}(?:istruzioni|indicazioni|regole)"),
        _words(r"rispondi|risponda|di'|dì|scrivi|scriva|dai|dà|raccomanda|valuta|menziona|riassumi|descrivi|ignora"
               r"|dimentica|inizia|termina|aggiungi|includi|assegna|afferma"),
        _words(rf"solo|soltanto|solamente|sempre|mai|qualunque|la\s+parola|nient'altro|{QUOTE}"),
        _words(r"IA|intelligenza\s+artificiale|assistente|modello(?:\s+linguistico)?|LLM|chatbot")),
    "pt": Language(
        _words(r"os|as|o|a|e|é|uma?|do|da|dos|das|que|por|para|com|seu|sua|não|este|esta|em"),
        _words(r"(?:ignore|ignora|esqueça|esquece|desconsidere)\W+(?:\w+\W+){0,3}(?:instruções|indicações|regras|orientações)"),
        _words(r"responda|responde|diga|diz|escreva|escreve|dê|recomende|avalie|mencione|resuma|descreva|esqueça"
               r"|comece|termine|adicione|inclua|atribua|afirme"),
        _words(rf"apenas|somente|só|sempre|nunca|a\s+palavra|nada\s+mais|independentemente|{QUOTE}"),
        _words(r"IA|inteligência\s+artificial|assistente|modelo(?:\s+de\s+linguagem)?|LLM|chatbot")),
    "ru": Language(
        re.compile(r"[\u0400-\u04ff]{2,}"),
        _words(r"(?:игнорируй(?:те)?|забудь(?:те)?|не\s+обращай(?:те)?\s+внимания\s+на|проигнорируй(?:те)?)\W+(?:\w+\W+){0,3}"
               r"(?:инструкци\w*|указани\w*|правил\w*|команд\w*)"),
        _words(r"отвечай(?:те)?|ответь(?:те)?|скажи(?:те)?|напиши(?:те)?|выведи(?:те)?|дай(?:те)?|поставь(?:те)?"
               r"|оцени(?:те)?|упомяни(?:те)?|не\s+упоминай(?:те)?|опиши(?:те)?|игнорируй(?:те)?|забудь(?:те)?|начни(?:те)?"
               r"|рекомендуй(?:те)?|назови(?:те)?|добавь(?:те)?"),
        _words(rf"только|лишь|всегда|никогда|независимо|слово|ничего\s+(?:другого|больше|кроме)|{QUOTE}"),
        _words(r"ИИ|искусственный\s+интеллект|ассистент|помощник|модель|нейросеть|чат-?бот|бот|LLM"), script=True),
    "zh": Language(
        re.compile(r"[\u4e00-\u9fff]{2,}"),
        re.compile(r"(?:忽略|无视|忽视|不要理会|不理会|忘记|忘掉|忽略掉)[^。！？]{0,12}(?:指令|指示|说明|提示|规则|要求|命令)"),
        re.compile(r"(?:请|务必|必须|一定要|只能?|仅)[^。！？，]{0,4}?(?:回答|回复|输出|说|写|给出|打分|评分|评价|推荐|总结|描述"
                   r"|提到|称)"),
        re.compile(rf"只|仅|唯一|无论|不管|总是|永远|这个词|{QUOTE}"),
        re.compile(r"你|您|助手|人工智能|AI|模型|语言模型|大模型|机器人"), script=True),
    "ja": Language(
        re.compile(r"[\u3040-\u30ff]{2,}"),
        re.compile(r"(?:指示|命令|ルール|指令)[^。！？]{0,12}(?:無視|忘れ)"),
        re.compile(r"(?:答え|回答し|返答し|出力し|書い|言っ|評価し|推薦し|要約し|述べ)(?:て(?:ください|下さい)?|なさい|ろ)"),
        re.compile(rf"だけ|のみ|必ず|常に|何を聞かれても|という単語|{QUOTE}"),
        re.compile(r"あなた|アシスタント|AI|人工知能|モデル|言語モデル"), script=True),
}
ENGLISH = _words(r"the|of|and|to|is|are|was|were|that|this|for|with|we|our|on|by|as|it|in|be|from|which|an|or")
ET_AL = re.compile(r"\bet\s+al\b\.?", re.IGNORECASE)


def _marks(pattern: re.Pattern[str], text: str) -> int:
    return len({m.lower() for m in pattern.findall(text)})


def foreign_order(sentence: str) -> bool:
    """Whether `sentence`, in one of the languages above, overrides the reader's instructions or orders it what to
    reply: an order with what restricts the reply, or with an AI / assistant / model addressed. A sentence is in
    a language when it holds two runs of its script, or two of its function words (distinct) and fewer of
    English's."""
    text = ET_AL.sub(" ", sentence)
    english = _marks(ENGLISH, text)
    for language in LANGUAGES.values():
        marks = _marks(language.marks, text)
        if marks < 2 or marks <= english and not language.script:
            continue
        if language.override.search(text):
            return True
        if language.order.search(text) and (language.restrict.search(text) or language.machine.search(text)):
            return True
    return False
