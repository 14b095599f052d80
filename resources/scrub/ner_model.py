"""The project's own PERSON/ADDRESS NER model: a small spaCy pipeline built from generated text.

No NER model may be downloaded, and none on the registry has a licence and origin we can state
as plainly as this: the training sentences are made here, from Faker's name and address
providers of every locale in TRAIN_LOCALES (plus names and streets composed from syllables, so
the model learns context and shape rather than a list), set in TRAIN_TEMPLATES. The locales in
HELD_OUT_LOCALES and the templates in bench/pii.py are never used here: they are the benchmark.

The build is bit-reproducible: it runs in a fresh Python process with a fixed string-hash seed
(BUILD_ENV; Faker draws some values from sets, such as it_IT's cities, whose order follows the
hash seed), seeded generation, spaCy's fixed seed and one thread. It is cached under
data/models/ner/<digest>/, where the digest covers this file, Faker's and spaCy's versions and
the build settings; a changed recipe builds a new model, an unchanged one is reused.

    python -m resources.scrub.ner_model      # build (or find) the model, print its path
"""

import ast
import hashlib
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "data" / "models" / "ner"
LABELS = ("PERSON", "ADDRESS")
# The environment of the build process: the string-hash order and the thread count are fixed.
BUILD_ENV = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# Whole locales kept out of training (and out of the gazetteer): bench/pii.py tests on them.
HELD_OUT_LOCALES = (
    "da_DK",
    "no_NO",
    "fi_FI",
    "cs_CZ",
    "hu_HU",
    "ro_RO",
    "hr_HR",
    "et_EE",
    "de_CH",
    "nl_BE",
    "id_ID",
    "vi_VN",
    "en_AU",
    "es_AR",
    "fil_PH",
    "sk_SK",
)


@dataclass(frozen=True)
class BuildSettings:
    sentences: int = 12000
    epochs: int = 6
    seed: int = 13
    width: int = 64
    depth: int = 3
    embed_size: int = 4000
    dropout: float = 0.15


SETTINGS = BuildSettings()


def train_locales() -> tuple[str, ...]:
    """Every Faker locale with its own person provider, minus the held-out ones."""
    import importlib.util

    from faker.config import AVAILABLE_LOCALES

    out = []
    for loc in sorted(AVAILABLE_LOCALES):
        if loc in HELD_OUT_LOCALES or loc.startswith(("dk_", "fr_QC")):
            continue  # dk_DK is da_DK under another name; fr_QC aliases fr_CA
        if importlib.util.find_spec(f"faker.providers.person.{loc}") is not None:
            out.append(loc)
    return tuple(out)


@cache
def street_words(kind: str) -> frozenset[str]:
    """Street-type words of the training locales' Faker address providers: kind "prefix"
    ("Calle", "Rue", "Strada") or "suffix" ("Drive", "Landing", "Allee")."""
    words: set[str] = set()
    for loc in train_locales():
        try:
            provider = importlib.import_module(f"faker.providers.address.{loc}").Provider
        except ModuleNotFoundError:
            continue
        for attr in dir(provider):
            if attr.startswith("street_") and kind in attr:
                values = getattr(provider, attr)
                if isinstance(values, (list, tuple, dict)):
                    words |= {str(v).strip().lower().rstrip(".") for v in values}
    return frozenset(w for w in words if len(w) > 2 and " " not in w and "{" not in w)


# {P} person, {A} street address, {C} company, {T} city, {R} product, {D} day, {N} a number,
# {H} a phone number (not labelled here: phones are the pattern recognizers' job).
TRAIN_TEMPLATES = (
    "Please update the account of {P}, the address is now {A}.",
    "{P} called about order {N} and asked for a refund.",
    "Ship the package to {A} before {D}.",
    "My name is {P} and I live at {A}.",
    "Hi team, {P} from {C} reported that {R} keeps crashing.",
    "Could you add {P} as a second contact on the ticket?",
    "The invoice went to {A} instead of our office in {T}.",
    "Customer {P} says the {R} app will not sync since {D}.",
    "Forwarding on behalf of {P}: please change the delivery address to {A}.",
    "{P} ({C}) wants to cancel the subscription.",
    "Regards, {P}",
    "Thanks, {P}",
    "Dear {P}, your request {N} has been received.",
    "Assigned to {P}; escalated by {P2}.",
    "New billing address: {A}",
    "Address: {A}",
    "Contact person: {P}",
    "we spoke with {P} yesterday and she confirmed the move to {A}",
    "the courier could not find {A}, can you check with {P}?",
    "{P} is the new account owner, please remove {P2}.",
    "According to {P}, the {R} licence expired on {D}.",
    "Meeting with {P} and {P2} at the {C} office in {T} on {D}.",
    "Our warehouse moved from {A} to {A2}.",
    "I am writing for my mother, {P}, who lives at {A}.",
    "please send the replacement to {P}, {A}",
    "Signed: {P}",
    "From: {P} <support request {N}>",
    "{P} wrote: the {R} update broke printing in {T}.",
    "Our manager {P} approved the return of order {N}.",
    "The technician visited {A} but nobody was home.",
    "Pickup location changed to {A} per {P}.",
    "{C} in {T} asked about the {R} pricing on {D}.",
    "The {R} team in {T} closed ticket {N} on {D}.",
    "Can someone from {C} call me back about {R}?",
    "I moved to {T} last month and the {R} account still shows {C}.",
    "On {D} the {R} service was down for everyone at {C}.",
    "Please ask {P} whether {A} is the right address.",
    "the parcel for {P} was left at {A} on {D}",
    "Hello, this is {P}. I bought {R} from {C} in {T}.",
    "Beneficiary {P}, residing at {A}, {T}.",
    "{P} - account holder",
    "Reference {N}: {P} changed the shipping address to {A}.",
    "Our lawyer {P} will contact {C} about the contract.",
    "Welcome to {C}! Your {R} order {N} ships on {D}.",
    "Nothing changed since {D}; {R} still fails at {C}.",
    "call {P} on {H} about the {R} renewal",
    "my phone is {H} and my address {A}",
    "{P}, {H}, {A}",
)
# Half the examples are not templates: one or two slots among random filler_words(), so the
# model learns a name or an address by its own shape and by any context, not by a phrase.
TICKET_WORDS = (
    "please can could need account order ticket invoice request call send update add contact"
    " note customer client guardian partner holder owner manager user friend mother father"
    " colleague today tomorrow asap thanks hi hello dear regards kindly speaker named called"
    " wife husband son daughter tenant landlord driver patient doctor teacher student number"
    " line office mobile home via per ask ring email write tell meet visit pay refund"
    " ship deliver cancel transfer verify sign approve remove guest member lawyer"
    " agent nurse supervisor - : , ( ) ; / ok sure yes"
)


def filler_words() -> list[str]:
    """English stop words and support-ticket words, the random context of free examples."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return sorted(STOP_WORDS) + TICKET_WORDS.split()


# Other PII as unlabelled neighbours too ({I} an IBAN, {E} an email, {K} a card number): a name
# beside a code is still a name.
FREE_SLOTS = ("P", "P", "P", "A", "A", "C", "T", "R", "D", "N", "H", "I", "E", "K")


def _syllable_word(rng: random.Random, parts: int) -> str:
    onsets = [
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "j",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "w",
        "z",
        "br",
        "ch",
        "dr",
        "gr",
        "kh",
        "kr",
        "pl",
        "sh",
        "st",
        "th",
        "tr",
    ]
    vowels = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ei", "ou", "ia", "ie"]
    codas = ["", "", "", "n", "r", "s", "l", "k", "m", "nd", "rt", "sz", "v"]
    word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(parts))
    return (word + rng.choice(codas)).capitalize()


def _generator(seed: int):
    """A closure that yields one (text, entities) example at a time."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = []
    for loc in train_locales():
        f = Faker(loc)
        f.seed_instance(rng.randrange(2**32))
        fakers.append(f)
    en = Faker("en_US")
    en.seed_instance(seed)

    def person(f) -> str:
        r = rng.random()
        if r < 0.15:
            first, last = _syllable_word(rng, rng.randint(1, 3)), _syllable_word(rng, 2)
        else:
            first = _safe(f.first_name) or _syllable_word(rng, 2)
            last = _safe(f.last_name) or _syllable_word(rng, 2)
        if getattr(f, "first_romanized_name", None) and rng.random() < 0.5:
            first, last = _safe(f.first_romanized_name), _safe(f.last_romanized_name)
        r = rng.random()
        if r < 0.12:
            return f"{first} {_safe(f.first_name) or _syllable_word(rng, 2)} {last}"
        if r < 0.2:
            return f"{first[0]}. {last}"
        if r < 0.24:
            return f"{first} {last}".upper()
        if r < 0.28:
            return last
        return f"{first} {last}"

    suffixes = sorted(street_words("suffix"))
    prefixes = sorted(street_words("prefix"))

    def street_name(f) -> str:
        """What a street is named after: a made-up word, a surname, a person, a town."""
        r = rng.random()
        if r < 0.4:
            return _syllable_word(rng, rng.randint(1, 3))
        if r < 0.7:
            return _safe(f.last_name) or _syllable_word(rng, 2)
        if r < 0.8:
            return f"{_safe(f.first_name)} {_safe(f.last_name)}".strip() or _syllable_word(rng, 2)
        return _safe(f.city) or _syllable_word(rng, 2)

    def street(f) -> str:
        """A street of any locale's shape, from the training locales' street-type words."""
        name, r = street_name(f), rng.random()
        if r < 0.3 and " " not in name:
            return name + rng.choice(suffixes)  # "Lindenallee", "Storgatan"
        if r < 0.65:
            kind = rng.choice(suffixes)
            kind = kind if rng.random() < 0.3 else kind.capitalize()  # "Mlynské nivy"
            return f"{name} {kind}"
        return f"{rng.choice(prefixes).capitalize()} {name}"  # "Calle X", "Rue X"

    def house_number() -> str:
        n = rng.randint(1, 999) if rng.random() < 0.8 else rng.randint(1000, 99999)
        return rng.choice(
            (
                f"{n}",
                f"{n}",
                f"{n}{rng.choice('abcdAB')}",
                f"{n}/{rng.randint(1, 99)}",
                f"{rng.randint(1, 99)}/{n}",
                f"{rng.randint(1, 9)}/{rng.randint(1, 99)}/{n}",
                f"{n}-{n + rng.randint(1, 9)}",
                f"No. {n}",
                f"Nr. {n}",
                f"N° {n}",
                f"no {n}",
            )
        )

    def made_up_address(f) -> str:
        where, number = street(f), house_number()
        r = rng.random()
        if r < 0.1:
            return where  # no house number
        base = f"{where} {number}" if r < 0.55 else f"{number} {where}"
        if rng.random() < 0.12:
            unit = rng.choice(("Apt.", "Apt", "Unit", "Level", "Flat", "Suite", "Fl.", "Bl."))
            sep = rng.choice((" ", ", "))
            base = f"{unit} {rng.randint(1, 40)}{sep}{base}"
        return base

    def address(f) -> str:
        if rng.random() < 0.3:
            base = made_up_address(f)
        else:
            base = _safe(f.street_address) or f"{rng.randint(1, 99)} {_syllable_word(rng, 2)}"
        r = rng.random()
        town = _safe(f.city) or _syllable_word(rng, 2)
        if r < 0.45:
            base = f"{base}, {town}"
        elif r < 0.6:
            base = f"{base}, {_safe(f.postcode) or rng.randint(1000, 99999)} {town}"
        if rng.random() < 0.05:
            base += f" ({_syllable_word(rng, 2)})"
        return base

    filler = filler_words()

    def free_template() -> str:
        words = [rng.choice(filler) for _ in range(rng.randint(0, 6))]
        for _ in range(rng.randint(1, 2)):
            words.append("{" + rng.choice(FREE_SLOTS) + "}")
            words += [rng.choice(filler) for _ in range(rng.randint(0, 5))]
        text = " ".join(words).replace("{P} {P}", "{P} and {P}").replace("{A} {A}", "{A}")
        if rng.random() < 0.4:
            text = text[:1].upper() + text[1:]
        return text + rng.choice(("", "", ".", "?", "!"))

    def example() -> tuple[str, list[tuple[int, int, str]]]:
        f = rng.choice(fakers)
        template = rng.choice(TRAIN_TEMPLATES) if rng.random() < 0.5 else free_template()
        values = {
            "P": (person(f), "PERSON"),
            "P2": (person(rng.choice(fakers)), "PERSON"),
            "A": (address(f), "ADDRESS"),
            "A2": (address(rng.choice(fakers)), "ADDRESS"),
            "C": (_safe(f.company) or en.company(), None),
            "T": (_safe(f.city) or en.city(), None),
            "R": (rng.choice(PRODUCTS), None),
            "D": (rng.choice(DAYS), None),
            "N": (f"#{rng.randint(1000, 999999)}", None),
            "H": (_safe(f.phone_number) or en.phone_number(), None),
            "I": (_safe(f.iban) or en.iban(), None),
            "E": (_safe(f.email) or en.email(), None),
            "K": (en.credit_card_number(), None),
        }
        return fill(template, values)

    return example


PRODUCTS = (
    "Outlook",
    "Excel",
    "Windows 11",
    "iPhone",
    "Android",
    "Chrome",
    "Slack",
    "Zoom",
    "Teams",
    "PayPal",
    "Kindle",
    "Premium Plan",
    "Pro Suite",
    "Smart TV",
    "VPN",
    "Gmail",
    "Dropbox",
    "Office 365",
    "MacBook Air",
    "Galaxy S23",
)
DAYS = (
    "Monday",
    "Tuesday",
    "Friday",
    "Sunday",
    "March 3",
    "12 June",
    "last Tuesday",
    "New Year's Eve",
    "Christmas",
    "the 5th of May",
    "2024-02-11",
)


def _safe(method) -> str:
    """A Faker value, or "" for providers a locale lacks (Faker falls back or raises)."""
    try:
        return str(method()).replace("\n", ", ").strip()
    except (AttributeError, TypeError, ValueError):
        return ""


def fill(template: str, values: dict[str, tuple[str, str | None]]):
    """The template's text with slots filled, and the labelled (start, end, label) spans."""
    text, spans, pos = [], [], 0
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        slot, _, rest = after.partition("}")
        text.append(before)
        pos += len(before)
        value, label = values[slot]
        if label:
            spans.append((pos, pos + len(value), label))
        text.append(value)
        pos += len(value)
    text.append(rest)
    return "".join(text), spans


# --------------------------------------------------------------------------- build


def recipe_digest(settings: BuildSettings = SETTINGS) -> str:
    """What determines the model: this file's code, Faker's and spaCy's versions, the settings."""
    import faker
    import spacy

    h = hashlib.sha256()
    h.update(ast.dump(ast.parse(Path(__file__).read_text())).encode())  # not its comments
    h.update(f"faker={faker.VERSION};spacy={spacy.__version__}".encode())
    h.update(json.dumps(asdict(settings), sort_keys=True).encode())
    return h.hexdigest()


def model_dir(settings: BuildSettings = SETTINGS) -> Path:
    return MODELS_DIR / recipe_digest(settings)[:16]


def _config(settings: BuildSettings) -> dict:
    return {
        "model": {
            "@architectures": "spacy.TransitionBasedParser.v2",
            "state_type": "ner",
            "extra_state_tokens": False,
            "hidden_width": 64,
            "maxout_pieces": 2,
            "use_upper": True,
            "tok2vec": {
                "@architectures": "spacy.HashEmbedCNN.v2",
                "pretrained_vectors": None,
                "width": settings.width,
                "depth": settings.depth,
                "embed_size": settings.embed_size,
                "window_size": 1,
                "maxout_pieces": 3,
                "subword_features": True,
            },
        }
    }


def build(target: Path, settings: BuildSettings = SETTINGS, log=print) -> dict:
    """Generate the training text, train the pipeline, save it to target; the provenance.

    Only in a process started with BUILD_ENV (build_reproducibly starts one): under another
    hash seed the same recipe would give another model."""
    wrong = {k: os.environ.get(k) for k, v in BUILD_ENV.items() if os.environ.get(k) != v}
    if wrong:
        raise RuntimeError(f"not a reproducible build environment: {wrong}; use build_reproducibly")
    import spacy
    from spacy.training import Example
    from spacy.util import compounding, fix_random_seed, minibatch

    started = time.perf_counter()
    fix_random_seed(settings.seed)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner", config=_config(settings))
    for label in LABELS:
        ner.add_label(label)
    example = _generator(settings.seed)
    examples, skipped = [], 0
    for _ in range(settings.sentences):
        text, spans = example()
        doc = nlp.make_doc(text)
        ents = [doc.char_span(s, e, label=lab) for s, e, lab in spans]
        if any(ent is None for ent in ents):
            skipped += 1  # a value the tokenizer splits mid-token cannot be a label
            continue
        examples.append(Example.from_dict(doc, {"entities": list(spans)}))
    nlp.initialize(lambda: examples)
    rng = random.Random(settings.seed)
    for epoch in range(settings.epochs):
        rng.shuffle(examples)
        losses: dict = {}
        for batch in minibatch(examples, size=compounding(8.0, 64.0, 1.5)):
            nlp.update(batch, drop=settings.dropout, losses=losses)
        log(f"epoch {epoch + 1}/{settings.epochs}: ner loss {losses.get('ner', 0):.1f}")
    target.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)
    provenance = {
        "name": "assay-pii-ner",
        "recipe_digest": recipe_digest(settings),
        "model_sha256": tree_sha256(target),
        "labels": list(LABELS),
        "training_data": (
            f"{len(examples)} sentences generated from {len(TRAIN_TEMPLATES)} templates with "
            f"Faker names/addresses of {len(train_locales())} locales (held out: "
            f"{','.join(HELD_OUT_LOCALES)}) and syllable-composed names and streets"
        ),
        "train_locales": list(train_locales()),
        "skipped_misaligned": skipped,
        "settings": asdict(settings),
        "build_env": BUILD_ENV,
        "seconds": round(time.perf_counter() - started, 1),
        "license": "generated by assay from Faker (MIT) data; spaCy (MIT)",
    }
    (target / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True))
    return provenance


def tree_sha256(path: Path) -> str:
    """sha256 over a directory's files (relative names and bytes), provenance.json excluded."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "provenance.json"):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def ensure_model(settings: BuildSettings = SETTINGS) -> Path:
    """The cached model's directory, built first if this recipe has not been built yet."""
    target = model_dir(settings)
    if (target / "provenance.json").exists():
        return target
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=MODELS_DIR))
    try:
        build_reproducibly(staging / "model", settings)
        try:
            os.rename(staging / "model", target)  # atomic; a concurrent build may win
        except OSError:
            if not (target / "provenance.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_reproducibly(target: Path, settings: BuildSettings = SETTINGS) -> dict:
    """build() in a fresh process with BUILD_ENV (its log goes to stderr); the provenance."""
    env = {**os.environ, **BUILD_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "resources.scrub.ner_model", "--build", str(target)]
    cmd += ["--settings", json.dumps(asdict(settings))]
    subprocess.run(cmd, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return provenance(target)


def provenance(path: Path) -> dict:
    return json.loads((path / "provenance.json").read_text())


@cache
def load(path: str):
    """The spaCy pipeline at path (built by ensure_model), loaded once per process."""
    import spacy

    return spacy.load(path)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build (or find) the PII NER model.")
    ap.add_argument("--build", type=Path, help="build into this directory (in BUILD_ENV)")
    ap.add_argument("--settings", help="BuildSettings as JSON (with --build)")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.build:
        settings = BuildSettings(**json.loads(args.settings)) if args.settings else SETTINGS
        build(args.build, settings, log)
    else:
        print(ensure_model())


if __name__ == "__main__":
    main()
