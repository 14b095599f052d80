"""Presidio recognizers with assay's fixes, and the cheap triggers that gate each recognizer.

Import resources.scrub.detection (which sets the offline environment first) rather than this
module directly.
"""

import re
from dataclasses import dataclass

import phonenumbers
import tldextract
from presidio_analyzer import (
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    NhsRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer_ok(digits: str) -> bool:
    """Whether the IIN prefix and length belong to a real card scheme.

    Presidio's stock pattern stops at 5[0-5] and 17 digits, so Mastercard's 2221-2720 range and
    19-digit Visa/Discover/UnionPay/Maestro numbers were never found.
    """
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19
    if p4 in (2131, 1800):
        return n == 15  # JCB's 15-digit ranges
    if p2 == 35:  # JCB proper is 3528-3589; generators and test data use all of 35xx
        return 16 <= n <= 19
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925 or p2 == 62:
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 69:
        return 12 <= n <= 19
    return False


class CardRecognizer(CreditCardRecognizer):
    """Cards 12-19 digits long (incl. Mastercard 2-series, JCB 15), issuer and Luhn checked."""

    PATTERNS = [  # noqa: RUF012 (Presidio reads it as a class attribute)
        Pattern(
            "Card (issuer + Luhn)",
            r"(?<![\w-])[1-6]\d{3}(?:[ -]?\d){8,15}(?![\w-])",
            0.3,
        )
    ]

    def __init__(self) -> None:
        super().__init__(patterns=self.PATTERNS)

    def validate_result(self, pattern_text: str) -> bool:
        digits = re.sub(r"[ -]", "", pattern_text)
        return 12 <= len(digits) <= 19 and _issuer_ok(digits) and luhn_ok(digits)


# The snapshot bundled with tldextract: no fetch of the public suffix list, ever.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer validated against the bundled public suffix snapshot."""

    def validate_result(self, pattern_text: str) -> bool:
        return _OFFLINE_TLD(pattern_text).fqdn != ""


class UkNhsRecognizer(NhsRecognizer):
    """NHS numbers that keep their pattern score when the checksum holds.

    Stock Presidio lifts a valid checksum to 1.0; about one 10-digit phone number in eleven
    passes mod 11 by chance, so a US phone with 'call me' beside it lost to UK_NHS. Left at 0.5,
    context words decide: 'NHS' lifts this one, 'phone' lifts the phone recognizer.
    """

    def validate_result(self, pattern_text: str) -> bool | None:
        return None if super().validate_result(pattern_text) else False


# Digit groups joined by one separator: "-", "/", "(", ")" (spaces allowed around), a dot only
# between digits (". " ends a sentence), or one space; an optional extension at the end
# (x123, ext. 12, #4, ;ext=5), then an optional label glued on with a hyphen ("-Office"),
# which is part of what must go. Not after '#' (order numbers) or inside a word.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w@/.+#-])(\+?\(?\d+(?:(?:[ ]?[-/()]{1,2}[ ]?|\.|[ ])\d+){0,8}"
    r"(?:[ ]?(?:x|ext\.?|#|;ext=)[ ]?\d{1,6})?)(-[A-Za-z]{2,12})?(?![\w@])"
)
_IPV4_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE_SHAPE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|#|;ext=)")
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_PHONE_PUNCT = re.compile(r"^\+|^\(|^00|\d[ ().-]+\d")


# phonenumbers compiles its metadata's patterns on use; numbers of many countries cycle more
# of them than re's own cache keeps (512), and recompiling was 4% of a short text's scrub.
phonenumbers.enable_pattern_cache()


class FastPhoneRecognizer(LocalRecognizer):
    """Phone numbers: phonenumbers' parser on phone-shaped candidates, not its matcher.

    Presidio runs PhoneNumberMatcher once per region over the whole text; profiling showed it
    was most of the scan time. Here a regex picks phone-shaped digit runs and each is parsed
    with the configured regions. Written like a phone (leading + or 00, parentheses, grouped
    digits), a number valid in a region scores 0.5 and one merely of possible length 0.4, since
    many real numbers are not in libphonenumber's ranges. A bare valid digit run scores 0.4.
    A run too long for one number (two side by side) falls back to the matcher.
    """

    # "number" is left out: it stands beside passport, account and NHS numbers just as often.
    CONTEXT = [w for w in PhoneRecognizer.CONTEXT if w != "number"] + ["tel", "fax", "call"]
    SCORE_VALID = 0.5
    SCORE_POSSIBLE = 0.4
    SCORE_BARE = 0.4
    """A bare digit run valid somewhere; loses ties to context-confirmed entities."""

    def __init__(self, regions: tuple[str, ...]) -> None:
        self.regions = tuple(regions)
        super().__init__(
            supported_entities=["PHONE_NUMBER"],
            name="FastPhoneRecognizer",
            context=self.CONTEXT,
        )

    def load(self) -> None:
        """Nothing to load: the module compiles its patterns at import."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list:
        out = []
        for m in _PHONE_CANDIDATE.finditer(text):
            cand = m.group(1)
            digits = sum(c.isdigit() for c in _EXTENSION.split(cand, 1)[0])
            if digits < 7 or _DATE_SHAPE.fullmatch(cand) or _IPV4_SHAPE.fullmatch(cand):
                continue
            score = self._score(cand) if digits <= 15 else 0.0
            if score:
                end = m.end(2) if m.group(2) else m.end(1)
                out.append(RecognizerResult("PHONE_NUMBER", m.start(1), end, score))
            elif self._may_hold_several(cand):
                out.extend(self._matcher(cand, m.start(1)))
        return out

    @staticmethod
    def _may_hold_several(cand: str) -> bool:
        """Longer than any one number (E.164: 15 digits) and not a card number."""
        digits = re.sub(r"\D", "", cand)
        return len(digits) > 15 and not luhn_ok(digits)

    def _score(self, cand: str) -> float:
        if _SSN_SHAPE.fullmatch(cand):
            return 0.0  # 3-2-4 is how SSNs are written; phonenumbers accepts it for DE

        written_as_phone = _PHONE_PUNCT.search(cand) is not None
        possible = False
        regions = (None,) if cand.startswith("+") else self.regions
        for region in regions:
            try:
                num = phonenumbers.parse(cand, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(num):
                return self.SCORE_VALID if written_as_phone else self.SCORE_BARE
            possible = possible or phonenumbers.is_possible_number(num)
        return self.SCORE_POSSIBLE if possible and written_as_phone else 0.0

    def _matcher(self, cand: str, offset: int) -> list:
        out = []
        for region in self.regions:
            for match in phonenumbers.PhoneNumberMatcher(cand, region, leniency=1):
                if _SSN_SHAPE.fullmatch(match.raw_string):
                    continue
                out.append(
                    RecognizerResult(
                        "PHONE_NUMBER",
                        offset + match.start,
                        offset + match.end,
                        self.SCORE_VALID,
                    )
                )
        return out


_URL_CANDIDATE = re.compile(
    r"(?i)(?<![\w@.-])((https?://)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.([a-z]{2,24})(?![a-z0-9-])"
    r"(?::\d{2,5})?(?:/[^\s()<>\"']*)?)"
)


class FastUrlRecognizer(LocalRecognizer):
    """URLs: a linear candidate regex, then the bundled public suffix list.

    Presidio's non-schema pattern backtracks over up to 253 characters at every position (about
    1 MB/s) and has no boundary after the TLD, so 'john.sm' in 'john.smith@x.org' was a URL.
    Here a domain must end at a non-alphanumeric and may not follow '@' (an email's domain).
    """

    CONTEXT = UrlRecognizer.CONTEXT

    def __init__(self) -> None:
        super().__init__(supported_entities=["URL"], name="FastUrlRecognizer", context=self.CONTEXT)

    def load(self) -> None:
        """Nothing to load: the module compiles its patterns at import."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list:
        out = []
        for m in _URL_CANDIDATE.finditer(text):
            if _OFFLINE_TLD(m.group(1)).suffix:
                score = 0.6 if m.group(2) else 0.5
                out.append(RecognizerResult("URL", m.start(1), m.end(1), score))
        return out


class IbanShapeRecognizer(PatternRecognizer):
    """IBAN-shaped strings that fail Presidio's country format or checksum, next to 'IBAN'.

    Presidio's IbanRecognizer only reports valid IBANs, so a mistyped or made-up one (the
    sample corpus has several) stayed in the text. Alone this scores 0.1; a context word
    lifts it to 0.45, over the threshold.
    """

    def __init__(self) -> None:
        super().__init__(
            supported_entity="IBAN_CODE",
            name="IbanShapeRecognizer",
            patterns=[
                Pattern(
                    "IBAN shape (weak)",
                    r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b",
                    0.1,
                )
            ],
            context=["iban", "bank", "account", "transfer", "konto", "compte", "cuenta", "conto"],
            global_regex_flags=re.DOTALL | re.MULTILINE,
        )


@dataclass(frozen=True)
class Trigger:
    """A cheap regex every match of a recognizer contains, and how far around it to look.

    A recognizer runs only on windows [hit.start - before, hit.end + after] of its trigger's
    hits (snapped outward to whitespace), never on text where its pattern cannot match.
    """

    regex: re.Pattern[str]
    before: int = 24
    after: int = 24


_DIGIT_RUN = re.compile(r"\d(?:[\s().+/-]{0,3}\d){3,}")

# Each trigger starts with a character that is rare in prose (@ . : - or a digit), with the
# rest checked by a lookbehind, so re's first-character scan skips most of the text.
TRIGGERS: dict[str, Trigger] = {
    "EMAIL_ADDRESS": Trigger(re.compile(r"@(?<=\S@)\S")),
    "URL": Trigger(re.compile(r"[.:](?:(?<=[A-Za-z0-9-]\.)[A-Za-z]{2}|(?<=:)//)"), 8, 8),
    "IP_ADDRESS": Trigger(re.compile(r"[.:](?:(?<=\d\.)\d|(?<=:)[0-9A-Fa-f:])"), 48, 48),
    "MAC_ADDRESS": Trigger(re.compile(r"[:.-](?<=[0-9A-Fa-f]{2}[:.-])[0-9A-Fa-f]{2}"), 20, 20),
    "UUID": Trigger(re.compile(r"-(?<=[0-9A-Fa-f]{8}-)"), before=12, after=40),
    "CRYPTO": Trigger(re.compile(r"(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25}"), before=4, after=64),
    "IBAN_CODE": Trigger(re.compile(r"\d\d(?<=[A-Za-z]{2}\d\d)"), before=4, after=48),
    "DATE_TIME": Trigger(re.compile(r"\d"), before=40, after=40),
    "CREDIT_CARD": Trigger(_DIGIT_RUN),
    "PHONE_NUMBER": Trigger(_DIGIT_RUN, after=32),
    "US_SSN": Trigger(_DIGIT_RUN),
    "UK_NHS": Trigger(_DIGIT_RUN),
    "US_ITIN": Trigger(_DIGIT_RUN),
    "US_BANK_NUMBER": Trigger(_DIGIT_RUN),
    "US_PASSPORT": Trigger(_DIGIT_RUN),
    "US_DRIVER_LICENSE": Trigger(re.compile(r"\d(?:\d|(?<=[A-Za-z]\d))")),
    "MEDICAL_LICENSE": Trigger(_DIGIT_RUN),
}


def custom_recognizer(
    entity: str,
    patterns: list[tuple[str, float]],
    deny_list: list[str],
    context: list[str],
) -> EntityRecognizer:
    """A PatternRecognizer for params' custom patterns ((regex, score) pairs) and deny list."""
    return PatternRecognizer(
        supported_entity=entity,
        name=f"custom_{entity.lower()}",
        patterns=[Pattern(f"{entity}_{i}", rx, score) for i, (rx, score) in enumerate(patterns)]
        or None,
        deny_list=deny_list or None,
        context=context or None,
    )
