"""The residual re-scan: what the sensitive configuration still finds in the scrubbed output.

The re-scan measures a rate (entities left per 10k documents), and a rate is measured on a
sample as well as on the whole: a source of at most pii.residual_sample texts is read whole
and its rate is exact; a larger one is read on a sample of about that many texts, chosen by
record_id (a sha256, so the sample is uniform, and the same on every engine and every run),
and the check compares the rate's upper bound at pii.residual_confidence with its limit. The
model then reads a fixed number of texts per source, not the corpus, a second time.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from scipy.stats import chi2, norm

from resources.core.engine import LOCAL, EngineConfig
from resources.core.records import HAS_TEXT
from resources.core.storage import read_parts
from resources.scrub.config import ScrubConfig

_ID_DIGITS = 15
"""Leading hex digits of record_id that place a text in or out of the sample (60 bits)."""
_RECORD_ID = r"^[0-9a-f]{64}$"


@dataclass
class SourceResidual:
    """One source's re-scan: its texts, those read, and the entities found in them."""

    source_id: str
    docs: int
    confidence: float
    scanned: int = 0
    found: Counter = field(default_factory=Counter)
    sum_squares: int = 0
    """Sum over the texts read of (entities in the text) squared: the counts' spread."""

    @property
    def entities(self) -> int:
        return sum(self.found.values())

    @property
    def per_10k(self) -> float:
        return 10_000 * self.entities / self.scanned if self.scanned else 0.0

    @property
    def per_10k_upper(self) -> float:
        """The source's rate when every text was read; else a one-sided upper bound at
        confidence: the entities found, plus the texts not read at the sample's upper rate,
        over all texts (reading more of a source never loosens it). A source read on an empty
        sample is bounded by nothing: infinite, so the check fails."""
        n, docs = self.scanned, self.docs
        if n == docs:
            return self.per_10k
        if n == 0:
            return float("inf")
        unread = (docs - n) * self._upper_rate()
        return float(10_000 * (self.entities + unread) / docs)  # a float: Dagster takes no numpy

    def _upper_rate(self) -> float:
        """Entities per text, bounded above from the sample: the larger of the exact Poisson
        bound on the count (right when entities are rare and independent) and the normal bound
        with the per-text counts' own variance (wider when they cluster in a few texts). A
        heuristic where a few texts hold many: neither bound is exact then."""
        n, total = self.scanned, self.entities
        poisson = chi2.ppf(self.confidence, 2 * (total + 1)) / 2 / n
        mean = total / n
        variance = max(0.0, (self.sum_squares - n * mean * mean) / max(1, n - 1))
        return max(poisson, mean + norm.ppf(self.confidence) * (variance / n) ** 0.5)

    def add(self, per_text: list[Counter]) -> None:
        self.scanned += len(per_text)
        for counts in per_text:
            self.found.update(counts)
            self.sum_squares += sum(counts.values()) ** 2

    def row(self) -> dict:
        """Its pii_rescans row."""
        return {
            "source_id": self.source_id,
            "docs": self.docs,
            "scanned": self.scanned,
            "residual": self.entities,
            "per_10k": self.per_10k,
            "per_10k_upper": self.per_10k_upper,
            "confidence": self.confidence,
        }

    def type_rows(self) -> list[dict]:
        """pii_residuals rows: per entity type, over the texts read."""
        return [
            {
                "source_id": self.source_id,
                "entity_type": entity_type,
                "residual": n,
                "docs": self.scanned,
                "per_10k": 10_000 * n / self.scanned,
            }
            for entity_type, n in sorted(self.found.items())
        ]


@dataclass
class Residual:
    """Every source's re-scan."""

    sources: list[SourceResidual]

    @property
    def docs(self) -> int:
        return sum(s.docs for s in self.sources)

    @property
    def scanned(self) -> int:
        return sum(s.scanned for s in self.sources)

    @property
    def found(self) -> dict[str, int]:
        return dict(sum((s.found for s in self.sources), Counter()))

    @property
    def worst(self) -> SourceResidual | None:
        """The source whose rate's upper bound is highest (what the check and the gate read)."""
        return max(self.sources, key=lambda s: s.per_10k_upper, default=None)

    @property
    def per_10k_upper(self) -> float:
        """The worst source's bound: what the check compares with its limit."""
        return self.worst.per_10k_upper if self.worst else 0.0


def in_sample(record_ids: pl.Series, fraction: float) -> pl.Series:
    """Whether each record_id (sha256 hex) falls in a sample of about ``fraction`` of all ids."""
    if fraction >= 1.0:
        return pl.repeat(True, record_ids.len(), eager=True)
    if not record_ids.str.contains(_RECORD_ID).fill_null(False).all():
        raise ValueError("a record_id to sample is not a sha256 hex digest (or is null)")
    cut = int(fraction * 16**_ID_DIGITS)
    return record_ids.str.slice(0, _ID_DIGITS).str.to_integer(base=16) < cut


def rescan(outputs: dict[str, Path], config: ScrubConfig, engine: EngineConfig = LOCAL) -> Residual:
    """What the sensitive configuration still finds in each source's scrubbed output (source_id
    -> its file; a missing file is skipped), per type: every text of a source, or about
    config.residual_sample of them; read config.part_records at a time."""
    from resources.scrub.detection import residual

    sources = []
    for source_id, path in outputs.items():
        if not path.exists():
            continue
        docs = pl.scan_parquet(path).filter(HAS_TEXT).select(pl.len()).collect().item()
        source = SourceResidual(source_id, docs, config.residual_confidence)
        wanted = config.residual_sample or docs
        fraction = wanted / docs if docs else 1.0
        for part in read_parts(path, config.part_records, ["record_id", "kind", "text"]):
            part = part.filter(HAS_TEXT)
            sample = part.filter(in_sample(part["record_id"], fraction))["text"]
            source.add(residual(sample.to_list(), config, engine))
        sources.append(source)
    return Residual(sources)
