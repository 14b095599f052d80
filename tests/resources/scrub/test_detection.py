import itertools
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_socket import disable_socket, enable_socket

from resources.scrub import detection
from resources.scrub.addresses import ADDRESS_TRIGGER
from resources.scrub.config import ScrubConfig
from resources.scrub.detection import (
    DEFAULT_ENTITIES,
    DEV_SALT,
    Operator,
    Scrubber,
    Span,
    _snap_left,
    _snap_right,
    build_recognizers,
    chunks,
    prepare,
    residual,
    resolve,
    scrub_texts,
    windows,
)
from resources.scrub.ner import NER_TRIGGER
from resources.scrub.recognizers import Trigger, luhn_ok
from tests.conftest import REPO as ROOT

BTC = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
# One sentence per default entity type: (text, the value that must disappear).
SAMPLES = {
    "EMAIL_ADDRESS": ("Please write to jane.doe@example.org today.", "jane.doe@example.org"),
    "PHONE_NUMBER": ("You can call me at +44 20 7946 0958 tonight.", "+44 20 7946 0958"),
    "CREDIT_CARD": ("Charged to 4111 1111 1111 1111 yesterday.", "4111 1111 1111 1111"),
    "US_SSN": ("My SSN is 536-22-1234, keep it safe.", "536-22-1234"),
    "US_ITIN": ("Her ITIN is 912-70-1234 on file.", "912-70-1234"),
    "US_PASSPORT": ("My passport number is 912803456 now.", "912803456"),
    "US_BANK_NUMBER": ("The bank account number is 12345678901 there.", "12345678901"),
    "UK_NHS": ("His NHS number is 943 476 5919 today.", "943 476 5919"),
    "IP_ADDRESS": ("Requests came from 10.20.30.40 and 2001:db8::7 lately.", "10.20.30.40"),
    "IBAN_CODE": ("Transfer to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32"),
    "CRYPTO": (f"Send BTC to {BTC} now.", BTC),
    "MAC_ADDRESS": ("The device 00:1B:44:11:3A:B7 joined.", "00:1B:44:11:3A:B7"),
    "URL": ("Read more at https://example.com/about today.", "https://example.com/about"),
    "PERSON": ("The letter was signed by Maria Garcia last week.", "Maria Garcia"),
    "ADDRESS": (
        "Please ship it to 1840 Kloof St, Tamboerskloof soon.",
        "1840 Kloof St, Tamboerskloof",
    ),
}


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    return Scrubber(ScrubConfig())


def _types(scrubber: Scrubber, text: str) -> list[tuple[str, str]]:
    return [(s.entity_type, text[s.start : s.end]) for s in scrubber.detector.detect(text)]


def _card(prefix: str, length: int) -> str:
    """A Luhn-valid number with the given prefix and length."""
    body = prefix + "0" * (length - len(prefix) - 1)
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def test_samples_cover_every_default_entity():
    assert set(SAMPLES) == set(DEFAULT_ENTITIES)


@pytest.mark.parametrize("entity", DEFAULT_ENTITIES)
def test_every_default_entity_is_found_and_replaced(scrubber, entity):
    text, value = SAMPLES[entity]
    assert (entity, value) in _types(scrubber, text)
    out = scrubber.scrub(text)
    assert value not in out.text
    assert f"<{entity}>" in out.text
    assert out.counts.get(entity, 0) >= 1


@pytest.mark.parametrize(
    "number",
    [
        _card("2221", 16),  # Mastercard 2-series, missed by Presidio's 5[0-5] prefix
        _card("2720", 16),
        _card("4", 19),  # 19-digit Visa, longer than Presidio's pattern allows
        _card("6011", 19),
        _card("51", 16),
        _card("34", 15),
    ],
)
def test_card_ranges_presidio_misses_are_found(scrubber, number):
    text = f"Paid with {number} on Monday."
    assert ("CREDIT_CARD", number) in _types(scrubber, text)


def test_card_with_bad_checksum_or_issuer_is_not_a_card(scrubber):
    bad_luhn = _card("4111", 16)[:-1] + str((int(_card("4111", 16)[-1]) + 1) % 10)
    no_issuer = _card("9111", 16)
    for number in (bad_luhn, no_issuer):
        assert "CREDIT_CARD" not in {t for t, _ in _types(scrubber, f"ref {number} ok")}


def test_url_inside_email_is_not_reported(scrubber):
    text = "Mail john.smith@example.com for details."
    assert _types(scrubber, text) == [("EMAIL_ADDRESS", "john.smith@example.com")]


def test_nhs_number_is_not_also_a_phone(scrubber):
    text = "His NHS number is 943 476 5919 today."
    assert _types(scrubber, text) == [("UK_NHS", "943 476 5919")]


def test_spans_never_overlap(scrubber):
    text = " ".join(t for t, _ in SAMPLES.values())
    spans = scrubber.detector.detect(text)
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start


@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(1, 40), st.sampled_from("ABC"), st.floats(0, 1)),
        max_size=30,
    )
)
def test_resolve_returns_disjoint_spans_within_the_input(raw):
    spans = [Span(s, s + n, t, sc) for s, n, t, sc in raw]
    out = resolve(spans)
    for a, b in itertools.pairwise(out):
        assert a.end <= b.start
    for s in out:  # same-type overlaps are united, so only their union bounds a span
        same = [x for x in spans if x.entity_type == s.entity_type]
        assert all(any(x.start <= i < x.end for x in same) for i in range(s.start, s.end))


def test_recognizers_of_unconfigured_countries_are_off():
    recs = build_recognizers(ScrubConfig(countries=["us"], entities=["US_SSN", "EMAIL_ADDRESS"]))
    countries = {getattr(type(r), "COUNTRY_CODE", None) for r in recs}
    assert countries <= {None, "us"}
    uk = build_recognizers(ScrubConfig(countries=["uk"], entities=["UK_NHS"]))
    assert {getattr(type(r), "COUNTRY_CODE", None) for r in uk} == {"uk"}
    with pytest.raises(ValueError, match="UK_NHS"):
        build_recognizers(ScrubConfig(countries=["us"], entities=["UK_NHS"]))


# --------------------------------------------------------------------------- operators


def test_replace_operator_with_custom_value():
    config = ScrubConfig(operators={"EMAIL_ADDRESS": Operator(kind="replace", new_value="[mail]")})
    out = Scrubber(config).scrub("Write to jane.doe@example.org now.")
    assert out.text == "Write to [mail] now."


def test_mask_operator_all_and_partial():
    text = "Charged to 4111111111111111 yesterday."
    full = Scrubber(ScrubConfig(default_operator=Operator(kind="mask"))).scrub(text)
    assert full.text == "Charged to " + "*" * 16 + " yesterday."
    tail = Operator(kind="mask", masking_char="#", chars_to_mask=12, from_end=False)
    part = Scrubber(ScrubConfig(operators={"CREDIT_CARD": tail})).scrub(text)
    assert part.text == "Charged to " + "#" * 12 + "1111 yesterday."


def test_redact_operator_removes_the_value():
    out = Scrubber(ScrubConfig(default_operator=Operator(kind="redact"))).scrub("IP 10.1.2.3 here")
    assert out.text == "IP  here"


def test_hash_operator_links_equal_values_and_depends_on_the_salt(monkeypatch):
    config = ScrubConfig(default_operator=Operator(kind="hash"), salt_env="TEST_PII_SALT")
    monkeypatch.setenv("TEST_PII_SALT", "secret-one")
    one = Scrubber(config)
    a = one.scrub("From jane.doe@example.org.").text
    b = one.scrub("Reply to jane.doe@example.org please").text
    c = one.scrub("From john.roe@example.org.").text
    token = a.split()[1].rstrip(".")
    assert token.startswith("<EMAIL_ADDRESS:") and token in b and token not in c
    assert not any(ch.isdigit() for ch in token)  # a re-scan cannot read it as a number
    monkeypatch.setenv("TEST_PII_SALT", "secret-two")
    assert token not in Scrubber(config).scrub("From jane.doe@example.org.").text
    monkeypatch.delenv("TEST_PII_SALT")
    assert Scrubber(config).salt == DEV_SALT.encode()


def test_over_limit_is_flagged():
    text = "a@example.org b@example.org c@example.org"
    assert not Scrubber(ScrubConfig(max_entities_per_doc=3)).scrub(text).over_limit
    out = Scrubber(ScrubConfig(max_entities_per_doc=2)).scrub(text)
    assert out.over_limit and out.counts == {"EMAIL_ADDRESS": 3}


def test_custom_pattern_and_deny_list():
    config = ScrubConfig(
        entities=["EMPLOYEE_ID", "CODENAME"],
        custom_recognizers=[
            {"entity": "EMPLOYEE_ID", "patterns": [(r"\bEMP-\d{6}\b", 0.9)]},
            {"entity": "CODENAME", "deny_list": ["Bluebird", "Nightjar"]},
        ],
    )
    out = Scrubber(config).scrub("EMP-123456 runs Bluebird, not Sparrow.")
    assert out.text == "<EMPLOYEE_ID> runs <CODENAME>, not Sparrow."


# --------------------------------------------------------------------------- chunks, prefilter


@given(st.text(alphabet="ab ", min_size=0, max_size=400), st.integers(64, 120))
@settings(max_examples=60)
def test_chunks_contain_every_short_span(text, size):
    overlap = 32
    pieces = list(chunks(text, size, overlap))
    assert "".join(p for _, p in pieces[:1]) == text[: len(pieces[0][1])]
    for start in range(len(text)):
        end = min(len(text), start + overlap)
        assert any(o <= start and end <= o + len(p) for o, p in pieces)


@pytest.mark.parametrize("prefilter", [True, False])
def test_entity_across_a_chunk_boundary_is_found(prefilter):
    config = ScrubConfig(chunk_size=64, chunk_overlap=40, prefilter=prefilter)
    email = "jane.doe@example.org"
    for k in range(2, len(email) - 1):
        # No whitespace, so the cut cannot move: it falls k characters into the email.
        text = "x" * (63 - k) + "," + email + "," + "z" * 200
        first_end = len(next(chunks(text, 64, 40))[1])
        start = text.index(email)
        assert start < first_end < start + len(email)
        out = Scrubber(config).scrub(text)
        assert email not in out.text and out.counts == {"EMAIL_ADDRESS": 1}


def test_prefilter_finds_what_the_full_scan_finds():
    # The pattern recognizers: exactly. (The NER model reads its windows with less context
    # around them; tests/resources/scrub/test_ner.py checks its windows at a rate.)
    from bench.pii import make_eval_set

    patterns = ScrubConfig(ner=False, entities=[e for e in DEFAULT_ENTITIES if e != "ADDRESS"])
    windowed = Scrubber(patterns)
    full = Scrubber(patterns.model_copy(update={"prefilter": False}))
    for doc in make_eval_set(40, seed=7):
        assert windowed.detector.detect(doc.text) == full.detector.detect(doc.text)


@given(st.text(alphabet="aB1 .", max_size=300), st.integers(0, 12), st.integers(0, 12))
@settings(max_examples=200)
def test_windows_are_the_merged_snapped_windows_of_every_hit(text, before, after):
    trigger = Trigger(re.compile(r"B|1 a"), before, after)
    expected: list[tuple[int, int]] = []  # the definition, hit by hit
    for m in trigger.regex.finditer(text):
        start = _snap_left(text, m.start() - before)
        end = _snap_right(text, m.end() + after)
        if expected and start <= expected[-1][1]:
            expected[-1] = (expected[-1][0], max(expected[-1][1], end))
        else:
            expected.append((start, end))
    assert windows(text, trigger) == expected


def test_a_prepared_scrubber_is_reused_and_a_new_config_builds_another(monkeypatch):
    built = []
    original = Scrubber.__init__

    def counting(self, *args, **kwargs):
        built.append(args[0])
        original(self, *args, **kwargs)

    monkeypatch.setattr(Scrubber, "__init__", counting)
    monkeypatch.setattr(detection, "_built", {})  # nothing an earlier test built
    config = ScrubConfig(workers=1, ner=False, entities=["EMAIL_ADDRESS"])
    prepare(config)
    first = scrub_texts(["mail jane.doe@example.org"], config)
    again = scrub_texts(["mail jane.doe@example.org"], config.model_copy(update={"workers": 2}))
    assert len(built) == 1 and first[0].text == again[0].text == "mail <EMAIL_ADDRESS>"
    scrub_texts(["x"], config.model_copy(update={"score_threshold": 0.5}))
    assert len(built) == 2
    assert not detection._built["scrub"][1].detector._ner_views  # no text kept once done


# The triggers before their searches started at the digit (resources/scrub/ner.py, addresses.py).
_OLD_TRIGGERS = {
    "ner": (
        NER_TRIGGER,
        r"\p{Lu}(?<=[^\s.!?]\s+\p{Lu})|\p{Lu}\S*\s+\p{Lu}|\d\s+\p{Lu}|\p{L}\s\d|\p{Lo}",
        64,
    ),
    "address": (ADDRESS_TRIGGER, r"\p{L}\.?,?[ ]\d|\d[ ]\p{Lu}", 96),
}


@pytest.mark.parametrize("name", sorted(_OLD_TRIGGERS))
@given(text=st.text(alphabet="aB1 .,é", max_size=400))
@settings(max_examples=300)
def test_a_trigger_searched_from_the_digit_holds_the_old_windows(name, text):
    new, old_pattern, old_before = _OLD_TRIGGERS[name]
    old = Trigger(regex.compile(old_pattern), old_before, new.after)
    assert bool(new.regex.search(text)) == bool(old.regex.search(text))
    for start, end in windows(text, old):
        assert any(s <= start and end <= e for s, e in windows(text, new))


def test_two_workers_give_the_same_results_in_order():
    # The last batch is the largest: it runs first, and its results still come last.
    texts = [t for t, _ in SAMPLES.values()] * 2 + ["word " * 3000 + "mail a@example.org"] * 3
    config = ScrubConfig(workers=2, batch_size=3)
    parallel = scrub_texts(texts, config)
    serial = scrub_texts(texts, config.model_copy(update={"workers": 1}))
    assert [r.text for r in parallel] == [r.text for r in serial]
    assert [r.counts for r in parallel] == [r.counts for r in serial]


def test_ray_workers_hash_with_the_salt_this_process_read(ray_engine, monkeypatch):
    # Ray started (the fixture) before the salt is set: its workers never saw the variable.
    monkeypatch.setenv("ASSAY_PII_SALT", "known-to-this-process-only")
    texts = [t for t, _ in SAMPLES.values()] * 2
    config = ScrubConfig(
        ner=False,
        entities=["EMAIL_ADDRESS", "PHONE_NUMBER"],
        default_operator=Operator(kind="hash"),
        batch_size=3,
    )
    on_ray = [r.text for r in scrub_texts(texts, config, ray_engine)]
    assert on_ray == [r.text for r in scrub_texts(texts, config)]
    assert on_ray != [Scrubber(config, DEV_SALT.encode()).scrub(t).text for t in texts]


def test_residual_rescan_finds_nothing_in_scrubbed_text():
    texts = [t for t, _ in SAMPLES.values()]
    config = ScrubConfig()
    found = residual(texts, config)
    assert len(found) == len(texts) and all(sum(c.values()) >= 1 for c in found)
    scrubbed = [r.text for r in scrub_texts(texts, config)]
    assert sum(residual(scrubbed, config), Counter()) == Counter()


def test_missing_spacy_model_is_an_error_not_a_download():
    with pytest.raises(RuntimeError, match="not installed"):
        Scrubber(ScrubConfig(spacy_model="en_core_web_lg"))


# --------------------------------------------------------------------------- offline


def test_scrubbing_opens_no_socket():
    disable_socket()
    try:
        scrubber = Scrubber(ScrubConfig())
        for text, value in SAMPLES.values():
            assert value not in scrubber.scrub(text).text
    finally:
        enable_socket()


def test_import_and_first_scrub_open_no_socket():
    """A fresh interpreter: tldextract and Presidio must not fetch anything at import either."""
    code = (
        "import socket\n"
        "def guard(*a, **k): raise RuntimeError('network access attempted')\n"
        "class Guarded(socket.socket):\n"
        "    connect = connect_ex = sendto = guard\n"
        "socket.socket = Guarded; socket.create_connection = guard; socket.getaddrinfo = guard\n"
        "from resources.scrub.config import ScrubConfig\n"
        "from resources.scrub.detection import Scrubber\n"
        "out = Scrubber(ScrubConfig()).scrub('Mail jane@example.org or see www.example.co.uk')\n"
        "assert out.counts == {'EMAIL_ADDRESS': 1, 'URL': 1}, out.counts\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


# --------------------------------------------------------------------------- names


def test_person_rules():
    # The gazetteer's rules alone (it is the NER model's fallback; test_ner.py tests the model).
    gazetteer_only = Scrubber(
        ScrubConfig(ner=False, entities=[e for e in DEFAULT_ENTITIES if e != "ADDRESS"])
    )

    def persons(text: str) -> list[str]:
        return [v for t, v in _types(gazetteer_only, text) if t == "PERSON"]

    assert persons("Ship it to Olga Yilmaz today.") == ["Olga Yilmaz"]  # ASCII-folded Yılmaz
    assert persons("Report by Jose Antonio Cuervo, Madrid.") == ["Jose Antonio Cuervo"]
    assert persons("Yesterday Dr. Garcia called.") == ["Garcia"]
    # A first name before an unknown capitalized word counts only with a context word.
    assert persons("Darin Sache jetzt alle.") == []
    assert persons("Dear Darin Sache, thanks.") == ["Darin Sache"]
    # German capitalizes nouns: a title before an unknown noun is no name.
    assert persons("Die Frau Mutter kam.") == []


def test_presidio_analyzer_engine_path_uses_the_same_recognizers(scrubber):
    # Without trigger windows or context boosts, through AnalyzerEngine.analyze itself.
    for entity in ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "PERSON"):
        text, value = SAMPLES[entity]
        plain = scrubber.detector.analyze_plain(text)
        assert (entity, value) in [(s.entity_type, text[s.start : s.end]) for s in plain]


def test_the_residual_rescan_on_workers_counts_what_it_counts_in_process():
    texts = [t for t, _ in SAMPLES.values()] * 3 + ["nothing to see here"]
    alone = residual(texts, ScrubConfig(workers=1))
    assert residual(texts, ScrubConfig(workers=2, batch_size=2)) == alone
    assert alone[-1] == Counter() and all(alone[:-1])
