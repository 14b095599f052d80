"""Street addresses by their shape: the pattern signal beside the NER model.

The model misses addresses of shapes it never saw ("Mlynské nivy 872", "K Otočce 6, Olomouc");
their shape is much the same in every language: a street of words with a house number after it
("<Street> 12", "<Street> No. 12", "<Street> 6b/7"), or a house number before capitalized words
("1840 Kloof St"). A shape alone is not enough ("Windows 11", "SSN 266-71-3840"), so a match is
kept only with one more signal:

- a ", City" after it (ner._address_end takes it),
- a street-type word of the training locales' Faker address providers in it ("Allee", "katu"),
  as a word or as the end of one ("Lindenallee"), or
- an address context word right before it (ADDRESS_CONTEXT, taken from the words before {A}
  in the NER model's TRAIN_TEMPLATES, not from the benchmark's).
"""

from functools import cache

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from resources.scrub.ner import SCORE, _address_end
from resources.scrub.ner_model import street_words
from resources.scrub.recognizers import Trigger

# The words before an address in resources.scrub.ner_model.TRAIN_TEMPLATES ("ship the package
# to {A}", "I live at {A}", "Address: {A}", "residing at {A}", "moved from {A}", "visited {A}").
ADDRESS_CONTEXT = regex.compile(
    r"(?:\b(?:to|at|from|address|addr|visited|residing|lives?|located|ship|send|deliver)"
    r"[:]?|\baddress:)[ ]+$",
    regex.IGNORECASE,
)
_NUMBER = r"\d{1,5}[a-zA-Z]?(?:[/-]\d{1,4}[a-zA-Z]?){0,2}"
_NO_MORE_DIGITS = r"(?![\d]|[.,:/-]\d)"
# "<Street words> [No.] 12": a capitalized word, then up to four words of any case.
STREET_THEN_NUMBER = regex.compile(
    r"(?<![\p{L}\d])(?P<street>\p{Lu}[\p{L}'’.-]*(?:[ ](?:\p{L}[\p{L}'’.-]*|[IVX]+\.)){0,4})"
    r",?[ ](?:(?:No|Nr|nr|no|N°|Nº|n°)\.?[ ]?)?"
    rf"(?P<number>{_NUMBER}){_NO_MORE_DIGITS}"
)
# "1840 Kloof St", "1175 Via degli Brentonico": a house number, then capitalized words (and
# short lowercase ones between them).
NUMBER_THEN_STREET = regex.compile(
    rf"(?<![\d.,/:#+-])(?P<number>{_NUMBER})[ ]"
    r"(?P<street>\p{Lu}[\p{L}'’-]*(?:[ ](?:\p{Ll}{1,5}[ ])?\p{Lu}[\p{L}'’.-]*){0,3})"
    r"(?![ ]\d{4}\b)"  # "3 March 2025" is a date
)
# Both halves start at a digit, checked by a lookbehind: a search tried at every letter took
# 14x as long. The digit is 2-4 characters after the letter of "St., 12", where the hit used
# to start, so the window reaches 4 further back (it holds the old one).
ADDRESS_TRIGGER = Trigger(
    regex.compile(r"\d(?<=\p{L}\.?,?[ ]\d)|\d[ ]\p{Lu}"), before=100, after=64
)


@cache
def _glued() -> tuple[str, ...]:
    """Suffixes written glued to the street's name in the training locales ("Lindenallee",
    "Storgatan", "Nørregade"): the street-type suffixes of four letters or more."""
    return tuple(sorted(w for w in street_words("suffix") if len(w) >= 4 and w.isalpha()))


def _has_street_word(street: str) -> bool:
    prefixes, suffixes = street_words("prefix"), street_words("suffix")
    for written in street.replace(".", " ").split():
        word, glued = written.lower(), written[0].isupper()  # "Lindenallee", not "reports"
        if word in prefixes or word in suffixes:
            return True
        if glued and any(word.endswith(s) and word != s for s in _glued()):
            return True
    return False


def _street_start(text: str, start: int, end: int) -> int | None:
    """Where the street of a STREET_THEN_NUMBER match starts: after its last stop word or
    context word ("Ship to Elm 4" -> "Elm 4"), at a capitalized word; None if none is left."""
    words = [(m.start() + start, m.group()) for m in _WORD.finditer(text[start:end])]
    cut = max((i + 1 for i, (_, w) in enumerate(words) if w.lower() in _NOT_A_STREET), default=0)
    for pos, word in words[cut:]:
        if word[0].isupper():
            return pos
    return None


_WORD = regex.compile(r"\S+")
# Where a street cannot start before: after an English stop word or a context word; not "do",
# which is inside streets too ("Rúa do Bispo Lorenzo", "Ladeira do Leme").
_NOT_A_STREET = (STOP_WORDS - {"do"}) | {"address", "addr", "visited", "residing", "located"}


class AddressPatternRecognizer(LocalRecognizer):
    """ADDRESS spans of STREET_THEN_NUMBER / NUMBER_THEN_STREET shape with a second signal."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["ADDRESS"], name="AddressPatternRecognizer")

    def load(self) -> None:
        _glued()

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in STREET_THEN_NUMBER.finditer(text):
            start = _street_start(text, m.start(), m.start("number"))
            if start is not None:
                out += self._kept(text, start, m.end(), text[start : m.start("number")], m)
        for m in NUMBER_THEN_STREET.finditer(text):
            out += self._kept(text, m.start(), m.end(), m.group("street"), m)
        return out

    def _kept(self, text: str, start: int, end: int, street: str, m) -> list[RecognizerResult]:
        if sum(c.isdigit() for c in m.group("number")) > 6:
            return []  # a phone, an SSN or an account number
        tail_end = _address_end(text, end)
        context = ADDRESS_CONTEXT.search(text[max(0, start - 24) : start])
        if tail_end > end or context or _has_street_word(street):
            return [RecognizerResult("ADDRESS", start, tail_end, SCORE)]
        return []
