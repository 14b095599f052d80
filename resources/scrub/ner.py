"""PERSON and ADDRESS from the project's own NER model (resources.scrub.ner_model), as a recognizer.

Presidio runs it like any recognizer (``Detector.analyze_plain`` too). The detector's fast path
runs it only on windows around NER_TRIGGER's hits: a capitalized word inside a sentence, two
capitalized words in a row, a number beside a capitalized word (house numbers), or letters of
an uncased script (CJK, Arabic, Devanagari, ...). Prose with none of these holds no name the
model could find, so the model never reads it.
"""

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS
from thinc.api import use_ops

from resources.scrub import ner_model
from resources.scrub.person_names import gazetteer
from resources.scrub.recognizers import Trigger

SCORE = 0.41
"""spaCy's NER gives no confidence. Just over the threshold (0.4), under every pattern match that
passes it with some evidence (a valid phone, a checksum, a context word), so digits the model
reads as part of an address or a name stay the phone, card or IBAN they are."""

NER_WHOLE_TEXT_CHARS = 1000
"""A text this short is read whole: its windows would save little and cut the context the
model reads a name by (the residual re-scan reads every text whole). Longer ones are read in
windows: on 2-20 KB documents (bench.pii's long set, another seed) 4000 found the same names
and ran 10% slower."""
STOP_WORDS_CAPITALIZED = frozenset(w.capitalize() for w in STOP_WORDS)

NER_TRIGGER = Trigger(
    regex.compile(
        r"\p{Lu}(?<=[^\s.!?]\s+\p{Lu})"  # capitalized inside a sentence (the capital first:
        # a lookbehind tried at every character was a third of the trigger's time)
        r"|\p{Lu}\S*\s+\p{Lu}"  # two capitalized words in a row
        r"|\d\s+\p{Lu}|\d(?<=\p{L}\s\d)"  # house numbers: 1840 Kloof, Lindenallee 12 (the
        # digit first: a search tried at every letter was three quarters of the trigger's time;
        # its hit starts 2 characters after the letter, so the window reaches 2 further back)
        r"|\p{Lo}"  # an uncased script
    ),
    before=66,
    after=96,
)


_PARTICLES = frozenset(
    [
        "van",
        "von",
        "de",
        "der",
        "den",
        "da",
        "di",
        "del",
        "della",
        "du",
        "la",
        "le",
        "ten",
        "ter",
        "dos",
        "das",
        "do",
        "y",
        "zu",
        "bin",
        "ibn",
        "al",
        "el",
    ]
)
# Legal forms: a name right before one is a company's ("Harris Mining Limited", "Tveit ASA").
_LEGAL_FORMS = frozenset(
    [
        "Ltd",
        "Limited",
        "Inc",
        "Corp",
        "Corporation",
        "Company",
        "LLC",
        "LLP",
        "PLC",
        "GmbH",
        "AG",
        "KG",
        "SA",
        "SAS",
        "SARL",
        "SpA",
        "Srl",
        "BV",
        "NV",
        "VOF",
        "CV",
        "ASA",
        "AS",
        "ApS",
        "AB",
        "Oy",
        "Oyj",
        "Kft",
        "Zrt",
        "Bt",
        "Kht",
        "Nyrt",
        "s.r.o",
        "a.s",
        "k.s",
        "v.o.s",
        "d.o.o",
        "d.d",
        "Tbk",
        "TNHH",
        "Group",
        "Holdings",
        "Co",
    ]
)
_TITLES = frozenset(
    [
        "Mr",
        "Mrs",
        "Ms",
        "Miss",
        "Mx",
        "Dr",
        "Prof",
        "Sir",
        "Dame",
        "Herr",
        "Frau",
        "Mme",
        "Mlle",
        "Sr",
        "Sra",
        "Sig",
        "Dott",
        "Pan",
        "Pani",
    ]
)
_WORD = regex.compile(r"\S+")
# What the scrubber put in ("<PERSON>", "<EMAIL_ADDRESS:abc...>"); spaCy splits off the "<".
_PLACEHOLDER = regex.compile(r"<?[A-Z][A-Z_]+(?::[a-p]+)?>")
_CODE = regex.compile(r"[A-Z0-9]*\d[A-Z0-9]{6,}")  # IBANs, order and account numbers
# What follows a street and belongs to the address: ", [postcode] City [Name]".
_CITY_TAIL = regex.compile(
    r"\.?,[ ]?(?:\d{3,6}[ ])?\p{Lu}[\p{L}'’-]+(?:\.(?=[ ]\p{Lu}))?"  # "St. Gallen", "TP. Huế"
    r"(?:[ ](?:\p{Ll}{2,4}[ ])?\p{Lu}[\p{L}'’-]+(?:\.(?=[ ]\p{Lu}))?){0,3}"
    r"(?:[ ]\(\p{Lu}[\p{L}'’-]+(?:[ ]\p{Lu}[\p{L}'’-]+){0,2}\))?"  # " (District)"
    r"(?:,?[ ](?:[A-Z]{2}[ ])?\d{4,6}(?:-\d{4})?)?"  # ", IL 62704", " 8000"
)
# Capitalized words then a house number are a street, not a name ("Ida Ekmanin katu 685").
_HOUSE_NUMBER = regex.compile(
    r"\.?(?:[ ](\p{Ll}+)\.?)?(?:[ ]?(?:No|Nr|nr|no|N°)\.?)?[ ]\d{1,5}[a-zA-Z]?(?![\d.,/-]?\d)"
)
# Units after the house number: "Bl. 33  Sc. 79 Ap. 489", "Apt 4", "Suite 12".
_UNITS = regex.compile(r"(?:,?[ ]{1,2}(?:Bl|Sc|Ap|Apt|Et|Suite|Unit|Fl|Flat)\.?[ ]?\d+\w*)+")


_SENTENCE_START = regex.compile(r"(?:^|[.!?:\n])\s*$")
_STREET_WORD = regex.compile(r"\p{L}{3}")
_MARKUP = regex.compile(r'["{}\[\]=_|\\]')  # JSON, code, identifiers: no name has these
_NUMBER_BEFORE = regex.compile(r"\d+[\w/]*[ ]$")


_NAME_THEN_STREET = regex.compile(r"([^\d,]+),[ ](?=\d)")


def tidy_all(text: str, label: str, start: int, end: int) -> list[tuple[str, int, int]]:
    """tidy() of the model's span; "Ana Novak, 12 Elm St, Austin" read as one address is a
    name and an address (else the name's better-scored gazetteer match would drop it all)."""
    head = _NAME_THEN_STREET.match(text, start, end) if label == "ADDRESS" else None
    parts = [(label, start, end)]
    if head:
        parts = [("PERSON", start, head.end(1)), ("ADDRESS", head.end(), end)]
    return [t for part in parts if (t := tidy(text, *part)) is not None]


def tidy(text: str, label: str, start: int, end: int) -> tuple[str, int, int] | None:
    """The model's span with the rules a name or an address always keeps.

    An identifier (an IBAN, an order number) is neither: what follows the last one is kept. A
    name has no lowercase word at its ends or inside ("reach Ana Novak" -> "Ana Novak";
    particles such as "van" aside) and is not followed by a legal form ("Király Kft"); a span
    without a digit is a name, capitalized words before a house number are a street; an
    address takes the ", City" that follows it.
    """
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]
    codes = [i for i, (s, e) in enumerate(words) if _not_a_name_or_street(text[s:e])]
    if codes:
        words = words[codes[-1] + 1 :]
    if not words:
        return None
    start = words[0][0]
    no_digit = not any(c.isdigit() for c in text[start:end])
    if label == "ADDRESS" and no_digit and not _names_a_street_type(text[start:end]):
        label = "PERSON"  # but "Pao Street, Alexander Ville" names a street: it stays
    if label == "PERSON":
        name = _name_words(text, words)
        while name and text[name[0][0] : name[0][1]].lower() in STOP_WORDS:
            name = name[1:]  # "His NHS number": a pronoun or article starts no name
        if not name or sum(c.isalpha() for c in text[name[0][0] : name[-1][1]]) < 2:
            return None
        start, end = name[0][0], name[-1][1]
        number_before = _NUMBER_BEFORE.search(text[max(0, start - 12) : start])
        first = text[name[0][0] : name[0][1]].lower()
        if len(name) > 1 and first in ner_model.street_words("prefix"):
            number = _HOUSE_NUMBER.match(text, end)  # "Strada Manole Nr. 19": a street
            return "ADDRESS", start, _address_end(text, number.end() if number else end)
        if number_before and text[name[-1][0] : end].lower() in ner_model.street_words("suffix"):
            start -= len(number_before.group())  # "617 Lewis Landing": a street
            return "ADDRESS", start, _address_end(text, end)
        after = _WORD.match(text, end + 1) if text[end : end + 1] == " " else None
        last = text[name[-1][0] : end].rstrip(",.;:")
        if last in _LEGAL_FORMS or (after and after.group().rstrip(",.;:") in _LEGAL_FORMS):
            return None
        number = _HOUSE_NUMBER.match(text, end)
        if not number or (number.group(1) or "") in STOP_WORDS:  # "Ana on 555 ..." is a name
            return label, start, end
        label, end = "ADDRESS", number.end()
    while words and words[-1][1] > start and _not_an_address_end(text[slice(*words[-1])]):
        end = words.pop()[0]  # "..., IL 62704, phone": the address ends before "phone"
        end = len(text[:end].rstrip(" ,;:"))
    if end <= start or not _STREET_WORD.search(text, start, end):
        return None  # "p 0" from a URL's path: an address names a street in letters
    if not _NAMED.search(text, start, end):
        return None  # "71 locales": a street's name has a capital or an uncased script
    return label, start, _address_end(text, end)


_NAMED = regex.compile(r"\p{Lu}|\p{Lo}")


def _not_an_address_end(word: str) -> bool:
    """A lowercase word ("phone") or one of punctuation alone ("(")."""
    return word[0].islower() or not any(c.isalnum() for c in word)


def _names_a_street_type(span: str) -> bool:
    """A capitalized word of the span, after its first capitalized one, is a street-type
    suffix of the training locales ("Pao Street, ...", "... Road"); the first may be a name
    ("Park Jimin", "Line Aune"), and a lowercase one is a word ("our Kukučínov branch")."""
    words = [w.rstrip(",.;:") for w in span.split()]
    while words and not words[0][:1].isupper():
        words = words[1:]
    suffixes = ner_model.street_words("suffix")
    return any(w[:1].isupper() and w.lower() in suffixes for w in words[1:])


def _address_end(text: str, end: int) -> int:
    """Where an address ending at end really ends: after the street-type words written
    lowercase after its name, its units and its ", City"."""
    end = _lowercase_street_type(text, end)
    units = _UNITS.match(text, end)
    end = units.end() if units else end
    tail = _CITY_TAIL.match(text, end)
    return tail.end() if tail else end


_SINCE_NUMBER = regex.compile(r"[^\d]*$")
_LOWER_WORD = regex.compile(r"[ ](\p{Ll}[\p{Ll}'’-]{1,11})(?=$|[ ,.;:!?)])")


def _lowercase_street_type(text: str, end: int) -> int:
    """After a street's capitalized name, up to two lowercase words that are no English stop
    word: many languages write the street type so ("558 Puhkekodu tee allee", "12 Valge park");
    a stop word ("on", "and", "please") ends the address."""
    last = text[text.rfind(" ", 0, end) + 1 : end]
    if (
        not last[:1].isupper()
        or last.lower().rstrip(".") in ner_model.street_words("suffix")  # "12 Main Street today"
        or "," in _SINCE_NUMBER.search(text, max(0, end - 48), end)[0]
    ):
        return end  # the street type is written, or it ends in a number or a ", City"
    for _ in range(2):
        word = _LOWER_WORD.match(text, end)
        if word is None or word.group(1) in STOP_WORDS:
            break
        end = word.end()
    return end


def _name_words(text: str, words: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of name words (the last of equals): no lowercase word inside except
    particles, none at the ends. "their. Ship it to Sven Kowalski" -> "Sven Kowalski"."""
    while words and text[words[0][0] : words[0][1]].rstrip(".") in _TITLES:
        words = words[1:]  # "Dr. Garcia": the name is Garcia
    runs: list[list[tuple[int, int]]] = [[]]
    for s, e in words:
        if _lowercase(text[s:e]) and not (runs[-1] and text[s:e] in _PARTICLES):
            runs.append([])
            continue
        runs[-1].append((s, e))
    for run in runs:
        while run and _lowercase(text[run[-1][0] : run[-1][1]]):
            run.pop()
    return max(reversed(runs), key=len)


def _not_a_name_or_street(word: str) -> bool:
    """An identifier (IBAN, order number), markup, or a placeholder the scrubber wrote."""
    return bool(
        _CODE.fullmatch(word.rstrip(",.;:")) or _PLACEHOLDER.search(word) or _MARKUP.search(word)
    )


def _lowercase(word: str) -> bool:
    """Not a word a name or an address ends on: lowercase (particles aside) or no letter."""
    return (word[0].islower() or not any(c.isalpha() for c in word)) and word not in _PARTICLES


def preload(model_path: str):
    """Load what the recognizer reads (model, name lists, street words) into this process, so
    that workers forked from it share them instead of each reading them again (~2 s)."""
    ner_model.street_words("prefix")
    ner_model.street_words("suffix")
    with model_ops():
        nlp = ner_model.load(model_path)
    return nlp, gazetteer()


def model_ops():
    """The context the model is loaded in: its layers multiply through numpy's OpenBLAS, not
    thinc's default blis, whose wheel falls back to generic kernels on some CPUs (this AMD EPYC
    among them); numpy reads 1.3x the texts per second there, with the same entities (4,000
    texts compared). Here, not in ner_model: the build keeps blis, and the recipe digest
    covers that module's code."""
    return use_ops("numpy", use_blis=False)


class NerRecognizer(EntityRecognizer):
    """Entities of the spaCy pipeline at model_path (its labels are Presidio's entity names)."""

    def __init__(self, model_path: str, entities: tuple[str, ...] = ner_model.LABELS) -> None:
        self.model_path = model_path
        super().__init__(supported_entities=list(entities), name="NerRecognizer", context=[])

    def load(self) -> None:
        self.nlp, (self.first, self.last) = preload(self.model_path)
        self._ready: dict[str, list[tuple[str, int, int]]] = {}

    def prefetch(self, texts: list[str]) -> None:
        """Run the model over many texts at once (nlp.pipe batches them, ~3x faster on short
        texts); analyze() then takes each text's entities from here."""
        self._ready = {}  # what an earlier batch left is not asked for again
        for text, doc in zip(texts, self.nlp.pipe(texts, batch_size=256), strict=True):
            self._ready[text] = [(e.label_, e.start_char, e.end_char) for e in doc.ents]

    def forget(self) -> None:
        """Drop the entities prefetch() kept, and with them the texts they were keyed by."""
        self._ready = {}

    def _plausible(self, text: str, label: str, start: int, end: int) -> bool:
        """One word alone is a name only inside a sentence and if the gazetteer knows it (the
        model cannot tell "Her" or "Moon" at a sentence's start from a surname); two or more
        words need no list."""
        word = text[start:end]
        if label != "PERSON" or " " in word:
            return True
        if _SENTENCE_START.search(text[max(0, start - 4) : start]) or start == 0:
            return False  # "Moon stars observatory": any word is capitalized there
        return word.capitalize() not in STOP_WORDS_CAPITALIZED and (
            word in self.first or word in self.last
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        found = self._ready.get(text)  # a text twice in the batch: read once
        if found is None:
            found = [(e.label_, e.start_char, e.end_char) for e in self.nlp(text).ents]
        out = []
        for label, start, end in found:
            for kept in tidy_all(text, label, start, end):
                if kept[0] in entities and self._plausible(text, *kept):
                    out.append(RecognizerResult(kept[0], kept[1], kept[2], SCORE))
        return out
