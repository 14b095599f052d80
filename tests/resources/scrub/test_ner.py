import pytest
from pytest_socket import disable_socket, enable_socket

from bench.pii import make_held_out_set, score
from resources.scrub.config import ScrubConfig
from resources.scrub.detection import Scrubber
from resources.scrub.ner import NER_WHOLE_TEXT_CHARS, tidy, tidy_all


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("reach Ana Novak soon", ("PERSON", 0, 15), ("PERSON", 6, 15)),
        ("Ana Novak wrote", ("PERSON", 0, 15), ("PERSON", 0, 9)),
        ("met Jan van Dijk", ("PERSON", 4, 16), ("PERSON", 4, 16)),
        ("ask Ana Novak", ("ADDRESS", 0, 13), ("PERSON", 4, 13)),  # no digit: a name
        ("to Lindenallee 12, Worb now", ("ADDRESS", 3, 17), ("ADDRESS", 3, 23)),
        ("to Rue X 3, 1300 Wavre", ("ADDRESS", 3, 10), ("ADDRESS", 3, 22)),
    ],
)
def test_tidy(text, span, expected):
    assert tidy(text, *span) == expected


def test_a_name_then_a_street_read_as_one_address_is_split():
    text = "to Ana Novak, 12 Elm Street, Austin, TX 78701, phone"
    assert tidy_all(text, "ADDRESS", 3, len(text)) == [
        ("PERSON", 3, 12),
        ("ADDRESS", 14, 45),
    ]


def test_tidy_drops_a_name_of_lowercase_words_only():
    assert tidy("please call soon", "PERSON", 0, 11) is None


# (recall, precision) floors about three standard errors (60-150 spans each in 250 texts) below
# what bench/pii.py measures on its 3,000 + 1,500 held-out texts for the model this machine
# builds (run bench-pii-20261202T210547Z, docs/pii.md): Faker PERSON 0.951/0.945, ADDRESS
# 0.934/0.877, PHONE_NUMBER 0.993/1.000; mimesis PERSON 0.938/0.935, ADDRESS 0.900/0.878,
# PHONE_NUMBER 0.987/1.000. A regression check, not issue 13's target (0.95/0.9), which these
# figures do not all meet.
FLOORS = {
    "faker": {"PERSON": (0.89, 0.88), "ADDRESS": (0.86, 0.80), "PHONE_NUMBER": (0.95, 0.95)},
    "mimesis": {"PERSON": (0.87, 0.87), "ADDRESS": (0.80, 0.78), "PHONE_NUMBER": (0.95, 0.95)},
}


@pytest.mark.parametrize(("source", "seed"), [("faker", 4242), ("mimesis", 4343)])
def test_the_model_finds_held_out_names_and_addresses_with_sockets_disabled(source, seed):
    """A sample of a held-out set (locales, name lists and templates never trained on). A
    statistical check: rates against floors below what bench/pii.py measures, not zero."""
    docs = make_held_out_set(250, seed=seed, source=source)
    disable_socket()
    try:
        scrubber = Scrubber(ScrubConfig(workers=1))
        predictions = [r.spans for r in scrubber.scrub_many([d.text for d in docs])]
    finally:
        enable_socket()
    metrics = score(docs, predictions)
    for entity, (recall, precision) in FLOORS[source].items():
        assert metrics[entity]["recall"] >= recall, (entity, metrics[entity])
        assert metrics[entity]["precision"] >= precision, (entity, metrics[entity])


def test_issue_examples_are_scrubbed():
    scrubber = Scrubber(ScrubConfig(workers=1))
    cases = {
        "we need to add Ingrid Solvang as guardian": "Ingrid Solvang",
        "send it to Lindenallee 12, Worb": "Lindenallee 12",
        "Call 612.555.0142-Office or 303.555.0199x4410": "612.555.0142-Office",
        "Phone: 4155550123": "4155550123",
    }
    for text, value in cases.items():
        assert value not in scrubber.scrub(text).text, text


def test_the_model_on_trigger_windows_finds_what_it_finds_on_whole_texts():
    docs = make_held_out_set(150, seed=77)
    windowed = Scrubber(ScrubConfig(workers=1))
    full = Scrubber(ScrubConfig(workers=1, prefilter=False))
    ner = {"PERSON", "ADDRESS"}
    found = [
        {(s.start, s.end) for s in windowed.detector.detect(d.text) if s.entity_type in ner}
        for d in docs
    ]
    whole = [
        {(s.start, s.end) for s in full.detector.detect(d.text) if s.entity_type in ner}
        for d in docs
    ]
    agree = sum(len(a & b) for a, b in zip(found, whole, strict=True))
    assert agree >= 0.95 * sum(map(len, whole))


def test_a_batch_is_scrubbed_as_its_texts_are_one_by_one():
    """The model reads a batch, and the second look its placeholders' windows, in one pipe."""
    texts = [d.text for d in make_held_out_set(80, seed=99, source="mimesis")]
    scrubber = Scrubber(ScrubConfig(workers=1))
    assert [r.text for r in scrubber.scrub_many(texts)] == [scrubber.scrub(t).text for t in texts]


def test_only_texts_the_model_reads_whole_look_again(monkeypatch):
    scrubber = Scrubber(ScrubConfig(workers=1))
    looked: list[str] = []
    detect_ner = scrubber.detector.detect_ner
    monkeypatch.setattr(
        scrubber.detector, "detect_ner", lambda t: looked.append(t) or detect_ner(t)
    )
    short = "Ana Novak met the Board on Monday."  # "Board" still triggers once she is masked
    long = short + " It rained all week and nothing else happened." * 30
    assert len(short) <= NER_WHOLE_TEXT_CHARS < len(long)
    results = scrubber.scrub_many([short, long])
    assert [r.counts.get("PERSON") for r in results] == [1, 1]  # both had a name to look around
    assert looked == ["<PERSON> met the Board on Monday."]
