"""`assay sample`: rebuild the committed sample corpus under data/raw and the demo hash list.

Deterministic: one seeded RNG and fixed word lists, no Faker (whose output moves between
versions). Everything in it is made up: the PII is fake, and the "known-harmful" items are
harmless stand-ins whose hashes the demo list carries.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import shutil
from pathlib import Path

import imagehash
import polars as pl
from PIL import Image, ImageDraw

from resources.core.normalize import normalized_sha256

FIRST = [
    "Alice",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Fatima",
    "Gustav",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Leila",
    "Marta",
    "Nikhil",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST = [
    "Okafor",
    "Schmidt",
    "Nakamura",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Johansson",
    "Rossi",
    "Novak",
    "Fernandes",
    "Murphy",
    "Ivanova",
    "Singh",
    "Dubois",
    "Yilmaz",
    "Larsen",
]
STREETS = ["Elm Street", "Maple Avenue", "Harbour Road", "Kingsway", "Rue de la Paix", "Oak Lane"]
CITIES = [
    ("Springfield", "IL", "62704"),
    ("Portland", "OR", "97205"),
    ("Austin", "TX", "78701"),
    ("Madison", "WI", "53703"),
    ("Boulder", "CO", "80302"),
]
TOPICS = {
    "gardening": "soil compost seedlings tomatoes mulch watering pruning roots sunlight harvest "
    "beds trellis weeds perennials fertilizer",
    "cycling": "gears chain saddle climb descent cadence tyres brakes commute helmet route "
    "puncture frame wheels training",
    "cooking": "onions garlic simmer oven dough spices broth knife skillet recipe butter "
    "roast flavour pastry sauce",
    "astronomy": "telescope nebula orbit galaxy eclipse comet planets lens observatory "
    "stars constellation meteor horizon moon aperture",
    "databases": "index query transaction schema join replica partition commit table rows "
    "columns cache snapshot cluster latency",
    "birding": "warbler binoculars migration heron plumage nest marsh songbird feeder "
    "hawk estuary owl field guide",
}
FILLER = "the a of and to in with for on that this it was we our my their after before during"


def build_sample(root: Path, seed: int = 7) -> dict[str, int]:
    """Write the sample corpus under ``root`` (data/raw and data/hashlists); returns counts."""
    rng = random.Random(seed)
    raw, lists = root / "raw", root / "hashlists"
    for folder in (raw, lists):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    harmful = _harmful_texts()
    shared = [_doc(rng, topic) for topic in TOPICS for _ in range(3)]
    counts = {
        "forum": _write_forum(raw / "forum.jsonl", rng, shared, harmful),
        "tickets": _write_tickets(raw / "tickets.csv", rng),
        "wiki": _write_wiki(raw / "wiki.parquet", rng, shared),
        "essays": _write_essays(raw / "essays", rng, harmful),
        "scraped": _write_scraped(raw / "scraped.jsonl", rng, shared),
    }
    listed_images = _write_photos(raw / "photos", rng)
    counts["photos"] = len(list((raw / "photos").iterdir()))
    _write_hashlist(lists / "demo.csv", harmful, listed_images)
    return counts


# -- text generation ---------------------------------------------------------------------


def _doc(rng: random.Random, topic: str, words: int = 90) -> str:
    vocab = TOPICS[topic].split() + FILLER.split()
    sentences, count = [], 0
    while count < words:
        length = rng.randint(8, 16)
        sentence = " ".join(rng.choice(vocab) for _ in range(length))
        sentences.append(sentence.capitalize() + ".")
        count += length
    return " ".join(sentences)


def _near_copy(rng: random.Random, text: str, edits: int = 3) -> str:
    words = text.split()
    for _ in range(edits):
        words[rng.randrange(len(words))] = rng.choice(FILLER.split())
    return " ".join(words)


def _luhn(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return digits + str((10 - total % 10) % 10)


def _iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def _pii(rng: random.Random) -> dict[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, state, zip_code = rng.choice(CITIES)
    card_prefix = rng.choice(["4539", "2221", "5425", "3714"])
    card_len = 15 if card_prefix == "3714" else 16
    card = _luhn(card_prefix + "".join(str(rng.randint(0, 9)) for _ in range(card_len - 5)))
    return {
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@example.com",
        "phone": f"({rng.randint(201, 989)}) 555-{rng.randint(100, 9999):04d}",
        "card": " ".join(card[i : i + 4] for i in range(0, len(card), 4)),
        "ssn": f"{rng.randint(100, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999)}",
        "ip": f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
        f"{rng.randint(1, 254)}",
        "iban": _iban(rng.choice(["DE", "GB"]), _bban(rng)),
        "address": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}, {city}, {state} {zip_code}",
    }


def _bban(rng: random.Random) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(18))


def pii_sentence(rng: random.Random) -> str:
    p = _pii(rng)
    templates = [
        f"Please contact {p['name']} at {p['email']} or call {p['phone']}.",
        f"My card {p['card']} was charged twice, refund to IBAN {p['iban']} please.",
        f"{p['name']} lives at {p['address']} and her SSN is {p['ssn']}.",
        f"The login came from IP {p['ip']}; the account owner is {p['name']}.",
        f"Ship it to {p['name']}, {p['address']}, phone {p['phone']}.",
    ]
    return rng.choice(templates)


def _harmful_texts() -> list[str]:
    return [
        f"Stand-in for known-harmful text number {n}: this sentence is harmless and exists "
        f"only so that its hash can be listed."
        for n in range(1, 4)
    ]


# -- sources -----------------------------------------------------------------------------


def _write_forum(path: Path, rng: random.Random, shared: list[str], harmful: list[str]) -> int:
    lines = []
    topics = list(TOPICS)
    for n in range(240):
        text = _doc(rng, rng.choice(topics))
        if n % 4 == 0:
            text += " " + pii_sentence(rng)
        lines.append(json.dumps({"id": f"post-{n:04d}", "text": text}))
    for n, text in enumerate(shared[:9]):  # also in wiki: cross-source duplicates
        lines.append(json.dumps({"id": f"xpost-{n}", "text": text}))
    lines.append(json.dumps({"id": "post-dup-exact", "text": json.loads(lines[3])["text"]}))
    lines.append(json.dumps({"id": "post-dup-near", "text": _near_copy(rng, _text(lines[5]))}))
    lines.append(json.dumps({"id": "post-harm-1", "text": harmful[0]}))
    lines.append('{"id": "post-broken", "text": "this line was cut off')
    lines.append(json.dumps({"id": "post-empty", "text": "   "}))
    lines.append(json.dumps({"id": "post-no-text", "body": "the text field is missing"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _text(line: str) -> str:
    return json.loads(line)["text"]


def _write_tickets(path: Path, rng: random.Random) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["ticket_id", "subject", "body"])
    for n in range(120):
        body = f"{_doc(rng, 'databases', 40)} {pii_sentence(rng)} {pii_sentence(rng)}"
        writer.writerow([f"T-{n:04d}", "support request", body])
    writer.writerow(["T-short", "only two fields"])
    data = buffer.getvalue().encode("utf-8")
    data += b"T-latin1,encoding,Caf\xe9 au lait in Latin-1, not UTF-8\n"
    path.write_bytes(data)
    return 122


def _write_wiki(path: Path, rng: random.Random, shared: list[str]) -> int:
    texts = [_doc(rng, topic, 150) for topic in TOPICS for _ in range(12)]
    texts += shared
    texts.append(_near_copy(rng, shared[10], 2))
    ids = [f"wiki-{n:04d}" for n in range(len(texts))]
    pl.DataFrame({"page_id": ids, "content": texts}).write_parquet(path)
    return len(texts)


def _write_essays(folder: Path, rng: random.Random, harmful: list[str]) -> int:
    folder.mkdir()
    for n in range(24):
        text = "\n\n".join(_doc(rng, rng.choice(list(TOPICS)), 60) for _ in range(3))
        if n % 3 == 0:
            text += "\n\n" + pii_sentence(rng)
        (folder / f"essay-{n:02d}.txt").write_text(text + "\n", encoding="utf-8")
    (folder / "harm-2.txt").write_text(harmful[1], encoding="utf-8")
    # Listed by normalized-text hash: differs from the list's text only in case and spacing.
    (folder / "harm-3.txt").write_text("  " + harmful[2].upper().replace(" ", "   "), "utf-8")
    (folder / "latin1.txt").write_bytes("Na\xefve caf\xe9 notes in Latin-1.".encode("latin-1"))
    (folder / "escape.txt").symlink_to("../../../README.md")
    return 28


def _write_scraped(path: Path, rng: random.Random, shared: list[str]) -> int:
    lines = [
        json.dumps({"url": f"https://example.net/p/{n}", "text": _doc(rng, "cycling")})
        for n in range(40)
    ]
    lines.append(json.dumps({"url": "https://example.net/p/shared", "text": shared[0]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


# -- images ------------------------------------------------------------------------------


def _picture(rng: random.Random, size: int = 128) -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(4, 9)):
        box = (
            sorted(rng.randint(0, size) for _ in range(2)),
            sorted(rng.randint(0, size) for _ in range(2)),
        )
        xy = [box[0][0], box[1][0], box[0][1] + 8, box[1][1] + 8]
        color = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(xy, fill=color)
    return image


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _write_photos(folder: Path, rng: random.Random) -> list[tuple[bytes, Image.Image]]:
    """Photos with exact, pixel-exact and resized copies, a truncated file, and listed items."""
    folder.mkdir()
    pictures = [_picture(rng) for _ in range(16)]
    for n, picture in enumerate(pictures):
        (folder / f"photo-{n:02d}.png").write_bytes(_png(picture))
    (folder / "photo-00-copy.png").write_bytes(_png(pictures[0]))
    pictures[1].save(folder / "photo-01-bmp.bmp")  # same pixels, other bytes
    pictures[2].resize((96, 96)).save(folder / "photo-02-small.jpg", quality=80)
    (folder / "truncated.png").write_bytes(_png(pictures[3])[:400])
    listed = [_picture(rng) for _ in range(2)]
    (folder / "listed-exact.png").write_bytes(_png(listed[0]))
    listed[1].resize((80, 80)).save(folder / "listed-resized.jpg", quality=60)
    return [(_png(image), image) for image in listed]


def _write_hashlist(path: Path, texts: list[str], images: list[tuple[bytes, Image.Image]]) -> None:
    rows = [
        (hashlib.sha256(texts[0].encode()).hexdigest(), "sha256", "demo text 1"),
        (hashlib.md5(texts[1].encode()).hexdigest(), "md5", "demo text 2"),
        (normalized_sha256(texts[2]), "sha256_text", "demo text 3"),
        (hashlib.sha256(images[0][0]).hexdigest(), "sha256", "demo image 1"),
        (str(imagehash.phash(images[1][1])), "phash", "demo image 2"),
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["hash", "type", "label"])
        writer.writerows(rows)
