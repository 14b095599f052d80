"""An offline PERSON recognizer: a gazetteer from Faker's name lists plus capitalization rules.

No NER model is installed on assay's machines, so names are found by shape: a capitalized word
that is a known first name, optionally a middle initial, then capitalized words that are known
surnames (or, at a lower score, any capitalized word that is not a stop word). A title
(Mr, Dr, Frau, ...) followed by a known first name or surname also counts. Recall on held-out
locales is measured in bench/pii.py and stated in docs/scrub.md.
"""

import importlib
import unicodedata
from functools import cache

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

# Locales whose (Latin or romanized) name lists feed the gazetteer; bench/pii.py holds out others.
GAZETTEER_LOCALES = (
    "en_US",
    "en_GB",
    "en_IE",
    "en_IN",
    "de_DE",
    "fr_FR",
    "es_ES",
    "es_MX",
    "it_IT",
    "nl_NL",
    "pt_BR",
    "pt_PT",
    "pl_PL",
    "sv_SE",
    "tr_TR",
    "en_NG",
    "en_KE",
    "en_PK",
    "zu_ZA",
    "ja_JP",
    "zh_CN",
)

SCORE_KNOWN_SURNAME = 0.85
SCORE_TITLE = 0.7
SCORE_CAPITALIZED = 0.2
"""First name + unknown capitalized word: under the threshold unless a context word lifts it
(German capitalizes every noun, so "Darin Sache" must not count on its own)."""
CONTEXT = [
    "name",
    "dear",
    "signed",
    "sincerely",
    "regards",
    "by",
    "from",
    "author",
    "contact",
]

_CAP = r"\p{Lu}\p{Ll}+(?:[-'’]\p{Lu}?\p{Ll}+)?"
_PARTICLE = r"(?i:van|von|de|der|den|da|di|del|della|du|la|le|ten|ter|dos|das|do|y|zu)"
_WORD = rf"(?:\p{{Lu}}\.|(?:{_PARTICLE} ){{0,2}}{_CAP})"
# Two to four name-shaped words joined by single spaces, not glued to other letters or digits.
_SEQUENCE = regex.compile(rf"(?<![\p{{L}}\p{{N}}]){_CAP}(?: {_WORD}){{1,3}}(?![\p{{L}}\p{{N}}])")
_TITLE = regex.compile(
    rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Herr|Frau|Mme|Mlle|Sr|Sra|Sig|Dott)\.? "
    rf"({_CAP}(?: {_CAP})?)(?![\p{{L}}\p{{N}}])"
)
_SPLIT = regex.compile(rf"{_PARTICLE} |\S+")


_FOLD = str.maketrans("ıłøđßæœ", "ilodsao")


def _ascii_fold(word: str) -> str:
    """Yılmaz -> Yilmaz, Müller -> Muller: names are often typed without their diacritics."""
    decomposed = unicodedata.normalize("NFKD", word.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _names(attr_values: object) -> set[str]:
    out: set[str] = set()
    for name in attr_values or ():
        for part in str(name).replace("-", " ").split():
            if len(part) > 1 and part[0].isupper():
                out.add(part)
                out.add(_ascii_fold(part))
    return out


@cache
def gazetteer(
    locales: tuple[str, ...] = GAZETTEER_LOCALES,
) -> tuple[frozenset, frozenset]:
    """(first names, surnames) from Faker's person providers of the given locales."""
    first: set[str] = set()
    last: set[str] = set()
    for loc in locales:
        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in (
            "first_names",
            "first_names_male",
            "first_names_female",
            "first_romanized_names",
        ):
            first |= _names(getattr(provider, attr, ()))
        for attr in ("last_names", "last_romanized_names"):
            last |= _names(getattr(provider, attr, ()))
    stop = {w.capitalize() for w in STOP_WORDS}
    return frozenset(first - stop), frozenset(last - stop)


class PersonNameRecognizer(EntityRecognizer):
    """PERSON by gazetteer and capitalization; see the module docstring."""

    def __init__(self, locales: tuple[str, ...] = GAZETTEER_LOCALES) -> None:
        self._locales = locales
        super().__init__(
            supported_entities=["PERSON"], name="PersonNameRecognizer", context=CONTEXT
        )

    def load(self) -> None:
        self.first, self.last = gazetteer(self._locales)
        self._stop = {w.capitalize() for w in STOP_WORDS}

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for m in _SEQUENCE.finditer(text):
            results.extend(self._from_sequence(m.group(), m.start()))
        for m in _TITLE.finditer(text):
            if any(w in self.first or w in self.last for w in m.group(1).split()):
                results.append(self._result(m.start(1), m.end(1), SCORE_TITLE))
        return results

    def _is_first(self, word: str) -> bool:
        return word in self.first or ("-" in word and all(p in self.first for p in word.split("-")))

    def _is_last(self, word: str) -> bool:
        return word in self.last or ("-" in word and any(p in self.last for p in word.split("-")))

    def _from_sequence(self, seq: str, offset: int) -> list[RecognizerResult]:
        words = [(w.start(), w.end(), w.group()) for w in _SPLIT.finditer(seq)]
        out = []
        i = 0
        while i < len(words) - 1:
            start, _, word = words[i]
            if not self._is_first(word):
                i += 1
                continue
            j = i + 1
            if regex.fullmatch(r"\p{Lu}\.", words[j][2]) and j + 1 < len(words):
                j += 1  # middle initial
            while j < len(words) - 1 and words[j][2].endswith(" "):
                j += 1  # particles: van, de, ...
            if words[j][2] in self._stop or not words[j][2][0].isupper():
                i += 1
                continue
            k = j  # more given names or surnames: Jose Antonio Cuervo, García López
            while k + 1 < len(words) and (
                words[k + 1][2].endswith(" ")
                or self._is_last(words[k + 1][2])
                or self._is_first(words[k + 1][2])
            ):
                k += 1
            while words[k][2].endswith(" "):
                k -= 1
            known = any(self._is_last(w[2]) for w in words[j : k + 1])
            score = SCORE_KNOWN_SURNAME if known else SCORE_CAPITALIZED
            out.append(self._result(offset + start, offset + words[k][1], score))
            i = k + 1
        return out

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult("PERSON", start, end, score)
