"""PII detection and scrubbing with Presidio's recognizers: offline, prefiltered, chunked, parallel.

Detection runs Presidio's own recognizers (regex + checksum validators, phonenumbers) but not its
orchestration loop: each recognizer runs only on windows around hits of a cheap trigger regex
(resources.scrub.recognizers.TRIGGERS), long inputs are cut into overlapping chunks, context words
in the preceding characters raise scores the way Presidio's context enhancer does, and
overlapping results are resolved so each character belongs to at most one entity. The plain
Presidio path (AnalyzerEngine.analyze over the whole text) stays available as
``Detector.analyze_plain`` for the more sensitive residual re-scan.

No model is downloaded: PERSON and ADDRESS come from the NER model the project builds itself
(resources.scrub.ner_model, run as the recognizer resources.scrub.ner.NerRecognizer on windows
around NER_TRIGGER's hits) and from the name gazetteer; the NLP engine is Presidio's no_op
engine unless params name a spaCy model that is already installed.
"""

import os

# tldextract reads this when it is first imported; empty means "bundled snapshot only".
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import bisect
import hashlib
import hmac
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import presidio_analyzer.predefined_recognizers as predefined
import regex
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    PatternRecognizer,
    RecognizerRegistry,
)
from presidio_analyzer.nlp_engine import NlpEngineProvider

from resources.core.engine import LOCAL, EngineConfig, map_batches, parallelism
from resources.scrub import ner_model
from resources.scrub.addresses import ADDRESS_TRIGGER, AddressPatternRecognizer
from resources.scrub.config import (
    DEFAULT_ENTITIES,
    DEV_SALT,
    CustomRecognizer,
    Operator,
    ScrubConfig,
)
from resources.scrub.ner import NER_TRIGGER, NER_WHOLE_TEXT_CHARS, NerRecognizer
from resources.scrub.person_names import PersonNameRecognizer
from resources.scrub.recognizers import (
    TRIGGERS,
    CardRecognizer,
    FastPhoneRecognizer,
    FastUrlRecognizer,
    IbanShapeRecognizer,
    OfflineEmailRecognizer,
    Trigger,
    UkNhsRecognizer,
    custom_recognizer,
)
from resources.scrub.salt import resolve_salt

__all__ = [
    "DEFAULT_ENTITIES",
    "DEV_SALT",
    "CustomRecognizer",
    "Detector",
    "Operator",
    "ScrubConfig",
    "ScrubResult",
    "Scrubber",
    "Span",
    "anonymize",
    "residual",
    "resolve",
    "scrub_texts",
]

log = logging.getLogger(__name__)

# Presidio's LemmaContextAwareEnhancer defaults: +0.35, and at least 0.4 once context is seen.
CONTEXT_BOOST = 0.35
CONTEXT_FLOOR = 0.4
CONTEXT_CHARS = 48
_SEPARATOR = "\n\x00\n"  # joins windows; no pattern or phone matcher crosses a NUL
_SNAP = 256  # how far a window edge may move outward to reach whitespace


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    entity_type: str
    score: float
    confirmed: bool = False
    """A context word stood before it; wins ties against unconfirmed spans."""


@dataclass
class ScrubResult:
    text: str
    counts: dict[str, int] = field(default_factory=dict)
    """Entities found per type (values are never kept)."""
    over_limit: bool = False
    spans: list[Span] = field(default_factory=list)
    """Where the entities were in the input (offsets and types only)."""

    @property
    def n_entities(self) -> int:
        return sum(self.counts.values())


# --------------------------------------------------------------------------- recognizers


def _predefined(config: ScrubConfig) -> dict[str, EntityRecognizer]:
    """Presidio's pattern recognizers for the configured entities and countries."""
    fixed: dict[str, EntityRecognizer] = {
        "CREDIT_CARD": CardRecognizer(),
        "EMAIL_ADDRESS": OfflineEmailRecognizer(),
        "UK_NHS": UkNhsRecognizer(),
        "URL": FastUrlRecognizer(),
        "PHONE_NUMBER": FastPhoneRecognizer(tuple(config.phone_regions)),
    }
    wanted = set(config.entities)
    out: dict[str, EntityRecognizer] = {}
    countries = {c.lower() for c in config.countries}
    for name in predefined.__all__:
        cls = getattr(predefined, name)
        if not (isinstance(cls, type) and issubclass(cls, PatternRecognizer)):
            continue
        country = getattr(cls, "COUNTRY_CODE", None)
        if country is not None and country.lower() not in countries:
            continue
        rec = cls()
        entity = rec.supported_entities[0]
        if entity in wanted and entity not in out:
            out[entity] = fixed.get(entity, rec)
    if "PHONE_NUMBER" in wanted:
        out["PHONE_NUMBER"] = fixed["PHONE_NUMBER"]
    return out


def build_recognizers(config: ScrubConfig) -> list[EntityRecognizer]:
    """Every recognizer the config asks for, each loaded and set to English."""
    recs = list(_predefined(config).values())
    if "IBAN_CODE" in config.entities:
        recs.append(IbanShapeRecognizer())
    if "PERSON" in config.entities and not config.spacy_model:
        recs.append(PersonNameRecognizer())
    ner_entities = tuple(e for e in ner_model.LABELS if e in config.entities)
    if config.ner and ner_entities:
        recs.append(NerRecognizer(str(ner_model.ensure_model()), ner_entities))
        if "ADDRESS" in ner_entities:
            recs.append(AddressPatternRecognizer())
    for spec in config.custom_recognizers:
        recs.append(custom_recognizer(spec.entity, spec.patterns, spec.deny_list, spec.context))
    missing = set(config.entities) - {e for r in recs for e in r.supported_entities}
    if config.spacy_model:
        missing -= {"PERSON", "LOCATION", "ORGANIZATION", "NRP"}
    if missing:
        raise ValueError(f"no recognizer for entities {sorted(missing)} (countries?)")
    for rec in recs:
        rec.supported_language = "en"
        rec.load()
        rec.is_loaded = True
    return recs


def build_nlp_engine(spacy_model: str | None):
    """Presidio's no_op engine, or an installed spaCy model; never a download."""
    if spacy_model:
        import spacy.util

        if not spacy.util.is_package(spacy_model):
            raise RuntimeError(f"spaCy model {spacy_model!r} is not installed (not downloading)")
        conf = {
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": spacy_model}],
        }
    else:
        conf = {
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": "en", "model_name": "no_op"}],
        }
    return NlpEngineProvider(nlp_configuration=conf).create_engine()


# --------------------------------------------------------------------------- windows, chunks


def _snap_left(text: str, pos: int) -> int:
    if pos <= 0:
        return 0
    limit = max(0, pos - _SNAP)
    while pos > limit and not text[pos - 1].isspace():
        pos -= 1
    return pos


def _snap_right(text: str, pos: int) -> int:
    n = len(text)
    if pos >= n:
        return n
    limit = min(n, pos + _SNAP)
    while pos < limit and not text[pos].isspace():
        pos += 1
    return pos


def windows(text: str, trigger: Trigger) -> list[tuple[int, int]]:
    """Merged [start, end) windows around the trigger's hits, snapped outward to whitespace."""
    out: list[tuple[int, int]] = []
    n = len(text)
    for m in trigger.regex.finditer(text):
        start, end = m.start() - trigger.before, m.end() + trigger.after
        if out and start <= out[-1][1] and end <= out[-1][1]:
            last = out[-1][1]
            if last >= n or text[last].isspace():
                continue  # inside the last window, which ends at whitespace: snapping moves nothing
        start = _snap_left(text, start)
        end = _snap_right(text, end)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def chunks(text: str, size: int, overlap: int) -> Iterator[tuple[int, str]]:
    """(offset, piece) covering text; consecutive pieces share >= overlap characters.

    Any entity shorter than overlap lies wholly inside at least one piece. Cut points move
    back to whitespace when there is some nearby, so fewer entities are cut at all.
    """
    n = len(text)
    if n <= size:
        yield 0, text
        return
    start = 0
    while True:
        end = min(n, start + size)
        if end < n:
            ws = text.rfind(" ", start + size - overlap // 2, end)
            end = ws if ws > start + overlap else end
        yield start, text[start:end]
        if end >= n:
            return
        start = end - overlap


@dataclass
class _Compacted:
    """Windows of one text joined by a separator, with the map back to the text's offsets."""

    text: str
    starts: list[int]  # offset of each window in the compacted text
    origins: list[int]  # offset of each window in the original text

    def to_original(self, pos: int) -> int:
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.origins[i] + pos - self.starts[i]


def _compact(text: str, wins: list[tuple[int, int]]) -> _Compacted:
    if sum(e - s for s, e in wins) > 0.7 * len(text):
        return _Compacted(text, [0], [0])
    parts, starts, origins, pos = [], [], [], 0
    for s, e in wins:
        starts.append(pos)
        origins.append(s)
        parts.append(text[s:e])
        pos += e - s + len(_SEPARATOR)
    return _Compacted(_SEPARATOR.join(parts), starts, origins)


# --------------------------------------------------------------------------- resolution


def resolve(spans: Iterable[Span], text: str | None = None) -> list[Span]:
    """Non-overlapping spans: pieces of one type are united, then the best-scored span wins.

    Same-type overlaps come from chunk overlaps and from a recognizer's several patterns;
    their union is the entity. Across types, a validated email beats the URL inside it and a
    checksum-valid card beats a phone pattern, because higher score (then longer) goes first.
    """
    by_type: dict[str, list[Span]] = {}
    for s in sorted(spans):
        group = by_type.setdefault(s.entity_type, [])
        if group and s.start < group[-1].end:
            last = group[-1]
            group[-1] = Span(
                last.start,
                max(last.end, s.end),
                s.entity_type,
                max(last.score, s.score),
                last.confirmed or s.confirmed,
            )
        else:
            group.append(s)
    merged = [s for group in by_type.values() for s in group]
    patterns = [s for s in merged if s.entity_type not in ner_model.LABELS]
    streets = [(s.start, s.end) for s in by_type.get("ADDRESS", ()) if not _beaten(s, patterns)]
    merged = [s for s in merged if not _inside_a_street(s, streets)]
    merged.sort(key=lambda s: (-s.score, not s.confirmed, s.start - s.end, s.start))
    taken: list[tuple[int, int]] = []  # sorted, disjoint
    kept: list[Span] = []
    for s in merged:
        i = bisect.bisect_left(taken, (s.start, s.end))
        if (i > 0 and taken[i - 1][1] > s.start) or (i < len(taken) and taken[i][0] < s.end):
            if s.entity_type in ner_model.LABELS:  # "Ana, 12 Elm St, phone 555-..." keeps
                for start, end in _uncovered(s, taken):  # the street beside the phone
                    if text is not None and not _HOLDS[s.entity_type].search(text, start, end):
                        continue  # "SSN " of "SSN 600-51-0813" read as a street
                    bisect.insort(taken, (start, end))
                    kept.append(Span(start, end, s.entity_type, s.score, s.confirmed))
            continue
        taken.insert(i, (s.start, s.end))
        kept.append(s)
    return sorted(kept)


# What a piece of a name or an address left beside a better span must hold to stay one.
_HOLDS = {
    "PERSON": regex.compile(r"\p{Lu}\p{L}"),
    "ADDRESS": regex.compile(r"\d.*\p{L}{3}|\p{L}{3}.*\d"),
}


def _inside_a_street(span: Span, streets: list[tuple[int, int]]) -> bool:
    """A name inside an address is the street's ("617 Lewis Landing", "Diagonal Omar Nuñez
    N° 3526"), whatever a name list scores it; a name that is an address too is one."""
    return span.entity_type == "PERSON" and any(
        start <= span.start and span.end <= end for start, end in streets
    )


def _beaten(span: Span, others: list[Span]) -> bool:
    """Whether a better-scored span of another type overlaps span: the model's "SSN is
    366-76-9891. Pablo Garcia" is no street, and the name in it stays a name."""
    return any(o.start < span.end and span.start < o.end and o.score > span.score for o in others)


def _uncovered(span: Span, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The stretches of span that no taken span covers, at least 4 characters long."""
    out, pos = [], span.start
    for start, end in taken:
        if end <= pos or start >= span.end:
            continue
        if start - pos >= 4:
            out.append((pos, start))
        pos = max(pos, end)
    if span.end - pos >= 4:
        out.append((pos, span.end))
    return out


# --------------------------------------------------------------------------- detector


class Detector:
    """Finds PII spans in text with the configured recognizers."""

    def __init__(self, config: ScrubConfig) -> None:
        self.config = config
        self.recognizers = build_recognizers(config)
        self.nlp_engine = build_nlp_engine(config.spacy_model)
        registry = RecognizerRegistry(
            recognizers=list(self.recognizers), supported_languages=["en"]
        )
        if config.spacy_model:
            registry.add_nlp_recognizer(nlp_engine=self.nlp_engine)
        self.analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=self.nlp_engine, supported_languages=["en"]
        )
        self._empty = self.nlp_engine.process_text("", "en") if not config.spacy_model else None
        self._context = {id(r): _context_regex(r.context) for r in self.recognizers}
        self._plan = [(r, _trigger_for(r) if config.prefilter else None) for r in self.recognizers]
        self._patterns = {id(r): _own_patterns(r) for r in self.recognizers}
        # recognizers behind equal triggers share one view of a text; hashing a Trigger per
        # text and recognizer cost more than a short text's scan, so it is done once here
        slot_of: dict[Trigger | None, int] = {}
        self._slots = [slot_of.setdefault(t, len(slot_of)) for _, t in self._plan]
        self._ner_views: dict[str, _Compacted | None] = {}

    def prefetch(self, texts: Sequence[str]) -> None:
        """Let the NER model read the pieces detect() will give it for these texts in batches."""
        self._ner_views = {}  # kept for detect(); an earlier batch's are dropped
        for rec, trigger in self._plan:
            if isinstance(rec, NerRecognizer):
                pieces = []
                for text in texts:
                    view = self._ner_views[text] = _view(text, trigger)
                    if view is not None:
                        size, overlap = self.config.chunk_size, self.config.chunk_overlap
                        pieces += [p for _, p in chunks(view.text, size, overlap)]
                rec.prefetch(pieces)

    def detect(self, text: str) -> list[Span]:
        """Resolved, thresholded spans of the configured entities."""
        raw: list[Span] = []
        views: list[_Compacted | bool | None] = [False] * len(self._plan)  # False: not yet
        for (rec, trigger), slot in zip(self._plan, self._slots, strict=True):
            if views[slot] is False:
                views[slot] = self._view_of(rec, trigger, text)
            view = views[slot]
            if view is not None:
                raw.extend(self._run(rec, text, view))
        if self.config.spacy_model:
            raw.extend(self._ner_spans(text))
        return resolve(raw, text)

    def detect_ner(self, text: str) -> list[Span]:
        """detect() with the NER model alone."""
        raw: list[Span] = []
        for rec, trigger in self._plan:
            if not isinstance(rec, NerRecognizer):
                continue
            view = self._view_of(rec, trigger, text)
            if view is not None:
                raw.extend(self._run(rec, text, view))
        return resolve(raw, text)

    def forget(self) -> None:
        """Drop what prefetch() kept of a batch: the process holds no text it is done with."""
        self._ner_views = {}
        for rec, _ in self._plan:
            if isinstance(rec, NerRecognizer):
                rec.forget()

    def _view_of(
        self, rec: EntityRecognizer, trigger: Trigger | None, text: str
    ) -> "_Compacted | None":
        if isinstance(rec, NerRecognizer) and text in self._ner_views:
            return self._ner_views[text]  # prefetch() made it
        return _view(text, trigger)

    def analyze_plain(self, text: str) -> list[Span]:
        """Presidio's own AnalyzerEngine over the whole text (chunked), no prefilter."""
        raw = []
        for offset, piece in chunks(text, self.config.chunk_size, self.config.chunk_overlap):
            for r in self.analyzer.analyze(
                piece,
                language="en",
                entities=list(self.config.entities),
                score_threshold=self.config.score_threshold,
            ):
                raw.append(Span(offset + r.start, offset + r.end, r.entity_type, r.score))
        return resolve(raw, text)

    def _run(self, rec: EntityRecognizer, text: str, view: _Compacted) -> list[Span]:
        out = []
        threshold = self.config.score_threshold
        ctx = self._context[id(rec)]
        patterns = self._patterns[id(rec)]
        for offset, piece in chunks(view.text, self.config.chunk_size, self.config.chunk_overlap):
            if patterns is not None and not any(p.search(piece) for p in patterns):
                continue
            for r in rec.analyze(piece, rec.supported_entities, self._empty):
                start = view.to_original(offset + r.start)
                end = start + (r.end - r.start)
                score, confirmed = r.score, False
                if ctx is not None and score < 1.0:
                    before = text[max(0, start - CONTEXT_CHARS) : start].lower()
                    if ctx.search(before):
                        score = max(CONTEXT_FLOOR, min(1.0, score + CONTEXT_BOOST))
                        confirmed = True
                if score >= threshold and score > 0:
                    out.append(Span(start, end, r.entity_type, score, confirmed))
        return out

    def _ner_spans(self, text: str) -> list[Span]:
        ner = [r for r in self.analyzer.registry.recognizers if r not in self.recognizers]
        out = []
        for offset, piece in chunks(text, self.config.chunk_size, self.config.chunk_overlap):
            artifacts = self.nlp_engine.process_text(piece, "en")
            for rec in ner:
                for r in rec.analyze(piece, list(self.config.entities), artifacts):
                    if r.score >= self.config.score_threshold:
                        out.append(Span(offset + r.start, offset + r.end, r.entity_type, r.score))
        return out


def _view(text: str, trigger: Trigger | None) -> _Compacted | None:
    """What a recognizer behind this trigger reads of text: all, its windows, or nothing."""
    if trigger is None:
        return _Compacted(text, [0], [0])
    if trigger is NER_TRIGGER and len(text) <= NER_WHOLE_TEXT_CHARS:
        return _Compacted(text, [0], [0]) if trigger.regex.search(text) else None
    wins = windows(text, trigger)
    return _compact(text, wins) if wins else None


def _trigger_for(rec: EntityRecognizer) -> Trigger | None:
    """The prefilter of a recognizer; None (scan everything) for ones without a known trigger."""
    if isinstance(rec, NerRecognizer):
        return NER_TRIGGER
    if isinstance(rec, AddressPatternRecognizer):
        return ADDRESS_TRIGGER
    if type(rec).__module__.startswith("resources.scrub.person_names"):
        return None
    entity = rec.supported_entities[0]
    if rec.name.startswith("custom_"):
        return None
    return TRIGGERS.get(entity)


def _own_patterns(rec: EntityRecognizer) -> list[regex.Pattern] | None:
    """The compiled patterns of a recognizer whose results come from its patterns alone
    (PatternRecognizer's own analyze), else None.

    When none of them matches a text, Presidio's analyze finds nothing in it: searching first
    skips its per-pattern bookkeeping, which on short texts (a source_key, a window) was most
    of the time (ingest's key scan at 1M: about 70% of the stage).
    """
    if not isinstance(rec, PatternRecognizer) or type(rec).analyze is not PatternRecognizer.analyze:
        return None
    return [regex.compile(p.regex, flags=rec.global_regex_flags) for p in rec.patterns]


def _context_regex(words: Sequence[str] | None) -> re.Pattern[str] | None:
    words = [w.strip().lower() for w in words or () if w.strip()]
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")


# --------------------------------------------------------------------------- operators


_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def apply_operator(value: str, entity_type: str, op: Operator, salt: bytes) -> str:
    """The replacement text of one detected value."""
    if op.kind == "replace":
        return op.new_value if op.new_value is not None else f"<{entity_type}>"
    if op.kind == "redact":
        return ""
    if op.kind == "mask":
        n = len(value) if op.chars_to_mask is None else min(op.chars_to_mask, len(value))
        if op.from_end:
            return value[: len(value) - n] + op.masking_char * n
        return op.masking_char * n + value[n:]
    digest = hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"<{entity_type}:{digest[: op.digest_chars].translate(_HEX_TO_LETTERS)}>"


def anonymize(text: str, spans: Sequence[Span], config: ScrubConfig, salt: bytes) -> str:
    """text with every (non-overlapping) span replaced by its entity's operator."""
    parts, pos = [], 0
    for s in sorted(spans):
        op = config.operators.get(s.entity_type, config.default_operator)
        parts.append(text[pos : s.start])
        parts.append(apply_operator(text[s.start : s.end], s.entity_type, op, salt))
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)


# --------------------------------------------------------------------------- scrubber


def hash_salt(config: ScrubConfig) -> bytes:
    """The HMAC key of the hash operator; empty when no operator hashes."""
    ops = [config.default_operator, *config.operators.values()]
    return resolve_salt(config.salt_env) if any(o.kind == "hash" for o in ops) else b""


class Scrubber:
    """Detect and anonymize; the unit a worker process builds once."""

    def __init__(self, config: ScrubConfig, salt: bytes | None = None) -> None:
        self.config = config
        self.detector = Detector(config)
        self.salt = hash_salt(config) if salt is None else salt

    def scrub(self, text: str) -> ScrubResult:
        return self.scrub_many([text])[0]

    def scrub_many(self, texts: Sequence[str]) -> list[ScrubResult]:
        """Detect in all texts (the model reads them in batches), look again, anonymize."""
        try:
            self.detector.prefetch(texts)
            found = [self.detector.detect(t) for t in texts]
            if self.config.ner:
                self._second_look(texts, found)
        finally:
            self.detector.forget()
        return [self._result(text, spans) for text, spans in zip(texts, found, strict=True)]

    def _result(self, text: str, spans: list[Span]) -> ScrubResult:
        counts = dict(Counter(s.entity_type for s in spans))
        over = len(spans) > self.config.max_entities_per_doc
        return ScrubResult(anonymize(text, spans, self.config, self.salt), counts, over, spans)

    def _second_look(self, texts: Sequence[str], found: list[list[Span]]) -> None:
        """Names and addresses the model finds once what it found is replaced (in place).

        The model reads a name by its context: "Ship it to Sven Kowalski, 4234 Rue de la Paix"
        can yield only the address, and "Ship it to Sven Kowalski, <ADDRESS>" then the name.
        The residual re-scan reads the output, so the scrubber looks again first: only the
        model, only around the placeholders of what it found (SECOND_LOOK_CHARS each side),
        only where NER_TRIGGER still fires outside them, in one batch. Spans are mapped back
        to the input; one touching a placeholder is not kept.

        With the prefilter on, only texts the model read whole (NER_WHOLE_TEXT_CHARS) look
        again: on long documents the second look re-read half as much again as the first
        (every capitalized German noun is a trigger) and changed no name found (docs/pii.md).
        """
        looks: dict[int, tuple[_Masked, _Compacted]] = {}
        for i, spans in enumerate(found):
            if self.config.prefilter and len(texts[i]) > NER_WHOLE_TEXT_CHARS:
                continue
            if any(s.entity_type in ner_model.LABELS for s in spans):
                masked = _mask(texts[i], spans)
                view = _compact(masked.text, masked.windows)
                gate = _compact(masked.gate, masked.windows).text
                if not self.config.prefilter or NER_TRIGGER.regex.search(gate):
                    looks[i] = (masked, view)
        self.detector.prefetch([view.text for _, view in looks.values()])
        for i, (masked, view) in looks.items():
            again = []
            for sp in self.detector.detect_ner(view.text):
                start = view.to_original(sp.start)
                moved = Span(start, start + sp.end - sp.start, sp.entity_type, sp.score)
                again.append(masked.to_input(moved))
            found[i] = resolve(found[i] + [sp for sp in again if sp is not None], texts[i])


SECOND_LOOK_CHARS = 96
"""How far around a placeholder the second look reads: the context a name is read by."""


@dataclass
class _Masked:
    """A text with its spans replaced by placeholders, and the map back to the text."""

    text: str
    gate: str  # the same with lowercase placeholders of the same length, for the trigger
    kept: list[tuple[int, int, int]]  # (masked start, input start, length) of unmasked text
    windows: list[tuple[int, int]]  # around the placeholders of names and addresses

    def to_input(self, sp: Span) -> Span | None:
        for out_start, in_start, length in self.kept:
            if out_start <= sp.start and sp.end <= out_start + length:
                shift = in_start - out_start
                return Span(sp.start + shift, sp.end + shift, sp.entity_type, sp.score)
        return None


def _mask(text: str, spans: list[Span]) -> _Masked:
    parts, gate, kept, placed, pos, out_pos = [], [], [], [], 0, 0
    for sp in sorted(spans):
        kept.append((out_pos, pos, sp.start - pos))
        placeholder = f"<{sp.entity_type}>"
        parts += [text[pos : sp.start], placeholder]
        gate += [text[pos : sp.start], "<" + "x" * len(sp.entity_type) + ">"]
        out_pos += sp.start - pos
        if sp.entity_type in ner_model.LABELS:
            placed.append((out_pos, out_pos + len(placeholder)))
        out_pos += len(placeholder)
        pos = sp.end
    kept.append((out_pos, pos, len(text) - pos))
    parts.append(text[pos:])
    gate.append(text[pos:])
    masked = "".join(parts)
    wins: list[tuple[int, int]] = []
    for start, end in placed:
        start = _snap_left(masked, start - SECOND_LOOK_CHARS)
        end = _snap_right(masked, end + SECOND_LOOK_CHARS)
        if wins and start <= wins[-1][1]:
            wins[-1] = (wins[-1][0], max(wins[-1][1], end))
        else:
            wins.append((start, end))
    return _Masked(masked, "".join(gate), kept, wins)


_R = TypeVar("_R")
_built: dict[str, tuple[tuple, "Scrubber | Detector"]] = {}
"""What this process built once, by kind (the scrubber, the residual re-scan's detector), with
what it was built from: a call with the same arguments reuses it."""
BATCHES_PER_WORKER = 4
INLINE_BATCH = 256
"""Texts per batch in this process (no pool): the model reads 256 short texts at about 3x the
speed of one at a time."""
WARM_UP_TEXT = (
    "Ana Novak (ana.novak@example.com, +44 20 7946 0958, 192.0.2.7) of 12 Elm Street, Leeds"
    " paid with 4111 1111 1111 1111 from GB82WEST12345698765432; SSN 219-09-9999, see"
    " https://example.com/a on 2024-03-05."
)
"""One of each common entity: reading it loads what a first text would load lazily (the
suffix list, phone metadata, regex caches; 0.3-0.5 s), before workers fork from this process."""


RUN_ONLY_FIELDS = {"workers", "batch_size", "part_records", "start_method"}
"""ScrubConfig's fields of how texts are run, not of what is found in them."""


def _build_scrubber(config: ScrubConfig, salt: bytes) -> None:
    _build("scrub", (salt,), config, lambda: Scrubber(config, salt), _scrub_batch)


def _scrub_batch(texts: list[str]) -> list[ScrubResult]:
    scrubber = _built["scrub"][1]
    assert isinstance(scrubber, Scrubber)
    return scrubber.scrub_many(texts)


def _build_sensitive(config: ScrubConfig) -> None:
    _build("sensitive", (), config, lambda: Detector(config.sensitive()), _residual_batch)


def _build(
    kind: str,
    args: tuple,
    config: ScrubConfig,
    make: Callable[[], "Scrubber | Detector"],
    batch_fn: Callable[[list[str]], list],
) -> None:
    """What make() builds, kept as _built[kind] and warmed up by batch_fn on WARM_UP_TEXT;
    unless this process built it from the same args, detection settings of config and model
    already (a forked worker inherits its parent's). The NER model is built first if missing."""
    settings = config.model_dump(exclude=RUN_ONLY_FIELDS)
    args = (*args, settings, ner_model.ensure_model() if config.ner else None)
    if kind in _built and _built[kind][0] == args:
        return
    _built.pop(kind, None)  # a failed build below leaves nothing half made
    _built[kind] = (args, make())
    try:
        batch_fn([WARM_UP_TEXT])
    except BaseException:
        del _built[kind]
        raise


def _residual_batch(texts: list[str]) -> list[Counter[str]]:
    detector = _built["sensitive"][1]
    assert isinstance(detector, Detector)
    try:
        detector.prefetch(texts)  # the model reads the batch at once, not text by text
        return [Counter(s.entity_type for s in detector.detect(t)) for t in texts]
    finally:
        detector.forget()


def scrub_texts(
    texts: Sequence[str], config: ScrubConfig, engine: EngineConfig = LOCAL
) -> list[ScrubResult]:
    """Scrub many texts in order, on the engine's workers (each builds its Scrubber once).

    The local engine runs config.workers processes; Ray runs a task per batch.
    """
    salt = hash_salt(config)  # resolved here, so every worker keys its hashes the same
    return _map_texts(_scrub_batch, _build_scrubber, (config, salt), texts, config, engine)


def prepare(config: ScrubConfig) -> None:
    """Build and warm up this process's scrubber for config now rather than in the next
    scrub_texts call, which reuses it (as do the workers it forks)."""
    _build_scrubber(config, hash_salt(config))


def residual(
    texts: Sequence[str], config: ScrubConfig, engine: EngineConfig = LOCAL
) -> list[Counter[str]]:
    """Entities the sensitive configuration still finds in each scrubbed text, per type.

    No trigger windows here: every recognizer reads every character, at a lower threshold, so
    what the prefilter might have skipped is caught. It runs on the engine as scrubbing does.
    """
    return _map_texts(_residual_batch, _build_sensitive, (config,), texts, config, engine)


def _map_texts(
    batch_fn: Callable[[list[str]], list[_R]],
    init: Callable[..., None],
    init_args: tuple,
    texts: Sequence[str],
    config: ScrubConfig,
    engine: EngineConfig,
) -> list[_R]:
    """batch_fn's per-text results over texts in order, on config.workers local processes or
    on Ray. init(*init_args) builds what batch_fn reads: once in this process when it runs the
    batches itself or forks the workers (they inherit it), else once in each worker."""
    if not texts:
        return []
    local = engine.kind == "local"
    inline = local and (config.workers <= 1 or len(texts) < 2 * config.batch_size)
    if inline or (local and config.start_method == "fork"):
        init(*init_args)  # here, once: forked workers start with what it built and loaded
    elif config.ner:
        ner_model.ensure_model()  # built once here, not by each worker at once
    if inline:
        step = INLINE_BATCH
        batches = [list(texts[i : i + step]) for i in range(0, len(texts), step)]
        done = map_batches(batch_fn, batches, engine)  # init ran above, in this process
        return [r for batch in done for r in batch]
    # At least BATCHES_PER_WORKER batches each (150 long texts in batches of 64 kept one
    # worker idle).
    workers = parallelism(engine, config.workers)
    size = min(config.batch_size, -(-len(texts) // (workers * BATCHES_PER_WORKER)))
    batches = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
    # The largest batches go first, so that no worker is left with a large one at the end
    # while the others idle; the results are put back in the texts' order.
    order = sorted(range(len(batches)), key=lambda i: -sum(map(len, batches[i])))
    done = map_batches(
        batch_fn,
        [batches[i] for i in order],
        engine,
        init=init,
        init_args=init_args,
        workers=config.workers,
        start_method=config.start_method,
    )
    by_index = dict(zip(order, done, strict=True))
    return [r for i in range(len(batches)) for r in by_index[i]]
