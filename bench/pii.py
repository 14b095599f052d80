"""PII scrubbing benchmark: assay's scrubber against a plain Presidio loop on the same docs.

A labelled evaluation set is made with Faker (several locales' formats, known spans), docs of
100 B to 20 KB (log-uniform). The baseline is the loop the issue names: AnalyzerEngine.analyze
+ AnonymizerEngine.anonymize with the no_op NLP engine and Presidio's defaults, one process.
Prints docs/s, MB/s and their ratio, and per-entity precision and recall for both.

A gold entity counts as found when predicted spans of its type cover >= 80% of its characters;
a predicted span is correct when it overlaps a gold span of its type.

    nice -n 10 .venv/bin/python -m bench.pii --docs 10000
"""

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import argparse
import hashlib
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass

from faker import Faker

from resources.scrub.config import ScrubConfig
from resources.scrub.detection import Span, scrub_texts

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
# Names from locales the gazetteer does not read: the honest recall of the name recognizer.
HELD_OUT_NAME_LOCALES = ("da_DK", "fi_FI", "cs_CZ", "ro_RO", "hu_HU", "no_NO")
TARGETS = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
)
CARD_TYPES = (
    "visa16",
    "visa19",
    "visa13",
    "mastercard",
    "amex",
    "discover",
    "diners",
    "jcb16",
)
CONTEXT = {
    "EMAIL_ADDRESS": ("Email:", "write to", "contact"),
    "PHONE_NUMBER": ("Call me at", "phone", "Tel."),
    "CREDIT_CARD": ("card number", "Visa", "paid with"),
    "US_SSN": ("SSN", "social security number"),
    "IP_ADDRESS": ("from IP", "server"),
    "IBAN_CODE": ("IBAN", "transfer to"),
    "PERSON": ("signed,", "from", "Dear"),
    "URL": ("see", "at"),
}


@dataclass
class Doc:
    text: str
    gold: list[Span]


def _value(fake: Faker, us: Faker, rng: random.Random, entity: str) -> str:
    if entity == "EMAIL_ADDRESS":
        return fake.email()
    if entity == "PHONE_NUMBER":
        return fake.phone_number()
    if entity == "CREDIT_CARD":
        number = us.credit_card_number(card_type=rng.choice(CARD_TYPES))
        if rng.random() < 0.4 and len(number) == 16:
            number = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return number
    if entity == "US_SSN":
        return us.ssn()
    if entity == "IP_ADDRESS":
        return fake.ipv4() if rng.random() < 0.7 else fake.ipv6()
    if entity == "IBAN_CODE":
        return fake.iban()
    if entity == "PERSON":
        return f"{fake.first_name()} {fake.last_name()}"
    return fake.url()


def make_eval_set(n_docs: int, seed: int = 0, locales: tuple[str, ...] = LOCALES) -> list[Doc]:
    """n_docs labelled docs of 100 B to 20 KB; about one entity per 400 bytes."""
    rng = random.Random(seed)
    fakers = {}
    for loc in locales:
        fakers[loc] = Faker(loc)
        fakers[loc].seed_instance(rng.randrange(2**32))
    us = fakers.get("en_US") or Faker("en_US")
    pools = {loc: [f.sentence(nb_words=12) for _ in range(1500)] for loc, f in fakers.items()}
    entities = list(CONTEXT)
    docs = []
    for _ in range(n_docs):
        loc = rng.choice(locales)
        fake, pool = fakers[loc], pools[loc]
        target = int(math.exp(rng.uniform(math.log(100), math.log(20_000))))
        parts: list[str] = []
        gold: list[Span] = []
        size = 0
        clean = rng.random() < 0.1  # some docs carry no PII at all
        while size < target:
            if not clean and (not gold or rng.random() < 0.15) and size + 60 < target:
                entity = rng.choice(entities)
                value = _value(fake, us, rng, entity)
                prefix = rng.choice(CONTEXT[entity]) + " " if rng.random() < 0.5 else ""
                chunk_start = size + len(prefix)
                gold.append(Span(chunk_start, chunk_start + len(value), entity, 1.0))
                piece = f"{prefix}{value}. "
            else:
                piece = rng.choice(pool) + " "
            parts.append(piece)
            size += len(piece)
        docs.append(Doc("".join(parts), gold))
    return docs


def held_out_names(n: int, seed: int = 1) -> list[Doc]:
    """Short docs each holding one name from a locale the gazetteer does not read."""
    rng = random.Random(seed)
    fakers = [Faker(loc) for loc in HELD_OUT_NAME_LOCALES]
    for f in fakers:
        f.seed_instance(rng.randrange(2**32))
    docs = []
    for _ in range(n):
        f = rng.choice(fakers)
        name = f"{f.first_name()} {f.last_name()}"
        prefix = "The report was written by "
        docs.append(
            Doc(
                f"{prefix}{name} last week.",
                [Span(len(prefix), len(prefix) + len(name), "PERSON", 1.0)],
            )
        )
    return docs


# --------------------------------------------------------------------------- scoring


def score(docs: list[Doc], predictions: list[list[Span]]) -> dict[str, dict[str, float]]:
    """Per entity type: support, precision, recall (see the module docstring)."""
    tp_gold: dict[str, int] = defaultdict(int)
    n_gold: dict[str, int] = defaultdict(int)
    tp_pred: dict[str, int] = defaultdict(int)
    n_pred: dict[str, int] = defaultdict(int)
    for doc, preds in zip(docs, predictions, strict=False):
        by_type: dict[str, list[Span]] = defaultdict(list)
        for p in preds:
            by_type[p.entity_type].append(p)
            n_pred[p.entity_type] += 1
            if any(
                g.entity_type == p.entity_type and g.start < p.end and p.start < g.end
                for g in doc.gold
            ):
                tp_pred[p.entity_type] += 1
        for g in doc.gold:
            n_gold[g.entity_type] += 1
            covered = set()
            for p in by_type[g.entity_type]:
                covered.update(range(max(g.start, p.start), min(g.end, p.end)))
            if len(covered) >= 0.8 * (g.end - g.start):
                tp_gold[g.entity_type] += 1
    out = {}
    for entity in sorted(set(n_gold) | set(n_pred)):
        out[entity] = {
            "support": n_gold[entity],
            "predicted": n_pred[entity],
            "precision": tp_pred[entity] / n_pred[entity] if n_pred[entity] else float("nan"),
            "recall": tp_gold[entity] / n_gold[entity] if n_gold[entity] else float("nan"),
        }
    return out


# --------------------------------------------------------------------------- runs


def run_baseline(texts: list[str]) -> tuple[float, list[list[Span]]]:
    """The plain loop: Presidio defaults, no_op NLP engine, one process."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": "en", "model_name": "no_op"}],
        }
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp)
    anonymizer = AnonymizerEngine()
    preds = []
    start = time.perf_counter()
    for text in texts:
        results = analyzer.analyze(text, language="en")
        anonymizer.anonymize(text, results)
        preds.append([Span(r.start, r.end, r.entity_type, r.score) for r in results])
    return time.perf_counter() - start, preds


def run_assay(texts: list[str], workers: int) -> tuple[float, list[list[Span]]]:
    config = ScrubConfig(workers=workers)
    start = time.perf_counter()
    results = scrub_texts(texts, config)
    return time.perf_counter() - start, [r.spans for r in results]


def _fmt(x: float) -> str:
    return "  -  " if math.isnan(x) else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--held-out-names", type=int, default=2000)
    ap.add_argument("--ledger", help="append the figures to this ledger's detector_benchmarks")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    docs = make_eval_set(args.docs, args.seed)
    texts = [d.text for d in docs]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    sizes = sorted(len(t.encode()) for t in texts)
    print(
        f"eval set: {len(docs)} docs, {mb:.1f} MB, {sum(len(d.gold) for d in docs)} entities, "
        f"size min/median/max {sizes[0]}/{sizes[len(sizes) // 2]}/{sizes[-1]} B, "
        f"locales {','.join(LOCALES)} (built in {time.perf_counter() - t0:.1f}s)"
    )
    base_s, base_pred = run_baseline(texts)
    ours_s, ours_pred = run_assay(texts, args.workers)
    one_s, _ = run_assay(texts, 1)

    def line(name: str, secs: float) -> str:
        return f"{name:<34} {secs:8.1f} s {len(texts) / secs:9.1f} docs/s {mb / secs:7.2f} MB/s"

    print(line("presidio plain loop (1 process)", base_s))
    print(line(f"assay scrub ({args.workers} workers)", ours_s) + f"   x{base_s / ours_s:.1f}")
    print(line("assay scrub (1 worker)", one_s) + f"   x{base_s / one_s:.1f}")

    base_m, ours_m = score(docs, base_pred), score(docs, ours_pred)
    print(f"\n{'entity':<18}{'support':>8} | {'presidio P':>10} {'R':>6} | {'assay P':>8} {'R':>6}")
    for entity in sorted(set(base_m) | set(ours_m)):
        b = base_m.get(entity, {"precision": float("nan"), "recall": float("nan"), "support": 0})
        o = ours_m.get(entity, {"precision": float("nan"), "recall": float("nan"), "support": 0})
        support = max(b["support"], o["support"])
        print(
            f"{entity:<18}{support:>8} | {_fmt(b['precision']):>10} {_fmt(b['recall']):>6} |"
            f" {_fmt(o['precision']):>8} {_fmt(o['recall']):>6}"
        )
    misses = [e for e in TARGETS if ours_m.get(e, {}).get("recall", 0) < 0.95]
    print(
        f"\nrecall >= 0.95 on {', '.join(TARGETS)}: {'yes' if not misses else 'NO ' + str(misses)}"
    )

    eval_set = f"faker:{','.join(LOCALES)}:docs={len(docs)}:seed={args.seed}"
    rows = _rows("assay-scrub", ours_m, len(texts), mb, ours_s, eval_set)
    rows += _rows("presidio-plain-loop", base_m, len(texts), mb, base_s, eval_set)
    if args.held_out_names:
        held = held_out_names(args.held_out_names)
        _, held_pred = run_assay([d.text for d in held], 1)
        held_m = score(held, held_pred)
        print(
            f"PERSON recall on {len(held)} names from held-out locales "
            f"({','.join(HELD_OUT_NAME_LOCALES)}): {held_m['PERSON']['recall']:.3f}"
        )
        held_set = f"faker-held-out-names:{','.join(HELD_OUT_NAME_LOCALES)}:n={len(held)}"
        rows += _rows("assay-scrub", held_m, len(held), None, None, held_set)
    if args.ledger:
        from resources.core.ledger import Ledger

        run_id = f"bench-pii-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        Ledger(args.ledger).append("detector_benchmarks", rows, run_id)
        print(f"stored {len(rows)} rows in {args.ledger} (detector_benchmarks, run {run_id})")
    return 0


def _rows(
    detector: str,
    metrics: dict[str, dict[str, float]],
    docs: int,
    mb: float | None,
    seconds: float | None,
    eval_set: str,
) -> list[dict]:
    digest = hashlib.sha256(ScrubConfig().model_dump_json().encode()).hexdigest()
    out = []
    for entity, m in metrics.items():
        if not m["support"]:
            continue  # types the eval set does not contain: only false positives to report
        out.append(
            {
                "detector": detector,
                "entity_type": entity,
                "support": m["support"],
                "predicted": m["predicted"],
                "precision": None if math.isnan(m["precision"]) else m["precision"],
                "recall": m["recall"],
                "docs": docs,
                "mb": mb,
                "docs_per_s": docs / seconds if seconds else None,
                "mb_per_s": mb / seconds if seconds and mb else None,
                "eval_set": eval_set,
                "params_digest": digest,
            }
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
