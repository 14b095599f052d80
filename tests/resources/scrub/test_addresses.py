import pytest

from resources.scrub.addresses import AddressPatternRecognizer
from resources.scrub.detection import Span, resolve


@pytest.fixture(scope="module")
def recognizer():
    rec = AddressPatternRecognizer()
    rec.load()
    return rec


def found(recognizer, text: str) -> list[str]:
    return [text[r.start : r.end] for r in recognizer.analyze(text, ["ADDRESS"])]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("send it to Lindenallee 12, Worb", "Lindenallee 12, Worb"),  # a ", City" after it
        ("Rue des Tanneurs 31, Wavre", "Rue des Tanneurs 31, Wavre"),
        ("1840 Kloof St, Tamboerskloof", "1840 Kloof St, Tamboerskloof"),
        ("we moved to Hoher Weg 4 last May", "Hoher Weg 4"),  # a street word ("weg")
        ("Ship to Zelgmatt 7b/2", "Zelgmatt 7b/2"),  # a context word; "Ship to" is not in it
        ("Address: Calle Mayor No. 5", "Calle Mayor No. 5"),
        ("deliver it to Ladeira do Sol 12", "Ladeira do Sol 12"),  # "do" is a street's
        ("mail goes to 88 Via dei Fiori now", "88 Via dei Fiori"),
        # a street type written lowercase after the name; a stop word or a number ends it
        ("ship it to 14 Kaskede tänav, thanks", "14 Kaskede tänav"),
        ("the crew parked at 7 Linden tee allee on Monday", "7 Linden tee allee"),
        ("send it to 7 Linden park and call", "7 Linden park"),
        ("deliver to Kase 14 tomorrow", "Kase 14"),
        ("we moved to 12 Main Street today", "12 Main Street"),  # its type is written already
        ("ship it to 18 Kloof St, Gardens soon", "18 Kloof St, Gardens"),  # and a ", City"
    ],
)
def test_street_shapes_with_a_second_signal_are_addresses(recognizer, text, address):
    assert address in found(recognizer, text)


@pytest.mark.parametrize(
    "text",
    [
        "Windows 11 crashed again",  # a shape, but no second signal
        "my SSN 266-71-3840 is wrong",
        "since 3 March 2025 it fails",
        "Phone 4155550123 after five",
        "Ticket 4521 is closed",
        "paid 12.05.2024 by card",
        "Brown Ltd reports 3 bugs",  # "reports" ends like the suffix "ports", but in lowercase
    ],
)
def test_a_shape_alone_is_no_address(recognizer, text):
    assert found(recognizer, text) == []


def test_a_name_inside_an_address_is_the_streets():
    # "use 617 Lewis Landing, Worb"
    name = Span(8, 21, "PERSON", 0.85)  # a name list knows "Lewis Landing"
    street = Span(4, 27, "ADDRESS", 0.41)
    assert resolve([name, street]) == [street]
    alone = Span(0, 3, "PERSON", 0.85)
    assert resolve([alone, street]) == [alone, street]


def test_a_name_inside_an_address_that_holds_an_ssn_stays_a_name():
    text = "her SSN is 366-76-9891. Pablo Garcia lives at 7556 Kingsway, Portland"
    ssn = Span(11, 22, "US_SSN", 0.85)
    name = Span(24, 36, "PERSON", 0.85)
    not_a_street = Span(4, 36, "ADDRESS", 0.41)  # as a model once read it
    assert [text[s.start : s.end] for s in resolve([ssn, name, not_a_street], text)] == [
        "366-76-9891",
        "Pablo Garcia",
    ]
