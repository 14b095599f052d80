"""params.yaml, the one configuration file: its model, loading and validation.

Relative paths in params.yaml are relative to the file's own directory (the project root).
Errors name the bad field, e.g. ``sources[2] 'forum'.license: SPDX id expected``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from resources.pii_config import PiiConfig

SOURCE_FORMATS = ("jsonl", "csv", "parquet", "txt", "image")
_SPDX = re.compile(r"^(LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.+-]*)$")


class ParamsError(ValueError):
    """params.yaml is missing, unparsable or invalid; the message names the bad field."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(Section):
    data_dir: str = "data"
    ledger: str = "data/ledger.duckdb"


class Policy(Section):
    """Which sources may contribute records at all."""

    allowed_licenses: list[str] = ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "MIT", "Apache-2.0"]
    allowed_consent: list[str] = ["public_domain", "license_terms", "opt_in", "contract"]


class Ingest(Section):
    batch_size: int = Field(10_000, ge=1)
    max_record_bytes: int = Field(1_000_000, ge=1)


class Dedup(Section):
    """Exact and near-duplicate removal across all sources (the dedup stage)."""

    threshold: float = Field(0.8, gt=0.0, le=1.0)
    """Jaccard similarity of two texts' shingle sets at or above which they are duplicates."""
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(5, ge=1, le=64)
    num_perm: int = Field(128, ge=16, le=1024)
    seed: int = 1
    min_recall: float = Field(0.95, gt=0.0, lt=1.0)
    """LSH bands are chosen so pairs exactly at the threshold become candidates this often."""
    verify: Literal["exact", "estimated"] = "exact"
    """Confirm candidates by the true Jaccard of their shingles, or by the MinHash estimate."""
    image_max_distance: int = Field(6, ge=1, le=31)
    """pHash Hamming distance (of 64 bits) at or below which two images are duplicates."""
    survivor_order: list[Literal["policy", "retrieved_at", "priority"]] = [
        "policy",
        "retrieved_at",
        "priority",
    ]
    incremental: bool = True
    """Dedup only new or changed sources against the accepted set when nothing else changed."""
    check_sample: int = Field(500, ge=1)
    """Kept records the no-duplicates-left check compares against all kept records."""
    batch_size: int = Field(5_000, ge=1)
    memory_limit: str = "1GB"
    """DuckDB's memory limit while grouping band keys; beyond it DuckDB spills to disk."""


class Train(Section):
    """DP-SGD training of a model on the curated corpus, and its privacy audit."""

    upstream: str = "screen"
    """The stage whose output is trained on: screen, the sanitized corpus."""
    model: str = Field("resources.byte_lm:build_byte_lm", pattern=r"^[\w.]+:\w+$")
    """'module:callable' returning (torch.nn.Module, Task); see resources/byte_lm.py."""
    model_kwargs: dict[str, int | float | str | bool] = {}
    privacy_unit: str = "record_id"
    """The column naming whose privacy is protected: record_id, or e.g. source_id."""
    target_epsilon: float = Field(8.0, gt=0)
    target_delta: float = Field(1e-5, gt=0, lt=1)
    epsilon_budget: float = Field(16.0, gt=0)
    """Most epsilon any one record may have spent on it, summed over the runs that train on it."""
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(64, ge=1)
    max_physical_batch_size: int = Field(64, ge=1)
    lr: float = Field(5e-3, gt=0)
    seed: int = 0
    accountant: Literal["prv", "rdp", "gdp"] = "prv"
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    max_examples_per_unit: int = Field(4, ge=1)
    reference: bool = True
    """Also train the same model without DP (never saved) to show what DP changed."""
    canaries: int = Field(4, ge=0)
    canary_digits: int = Field(3, ge=1, le=6)
    canary_insertions: int = Field(4, ge=1)
    mia_max_records: int = Field(2000, ge=10)
    max_mia_auc: float = Field(0.6, ge=0.5, le=1)
    """The privacy_audit check warns when the DP model's membership-inference AUC is above."""
    threads: int = Field(2, ge=1)


class Screen(Section):
    """Known-harmful hash screening: where the lists are, and how near an image hash must be."""

    hashlists_dir: str = "data/hashlists"
    # Hashes (never content) of every record ever screened, so a re-screen after a list
    # changes need not decode the corpus again, and covers records earlier outputs held.
    hash_cache: str = "data/cache/screen_hashes.parquet"
    phash_max_distance: int = Field(10, ge=0, le=31)
    dhash_max_distance: int = Field(8, ge=0, le=31)
    # A dhash entry with fewer ones (or zeros) than this says only "brighter on one side".
    dhash_min_minority_bits: int = Field(12, ge=0, le=32)


class Source(Section):
    """One corpus, declared by its owner's facts; ``path`` is a file or a folder."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    path: str
    glob: str | None = None
    format: Literal["jsonl", "csv", "parquet", "txt", "image"]
    text_field: str = "text"
    id_field: str | None = None
    license: str
    consent: str
    uri: str
    retrieved_at: datetime
    owner: str
    priority: int = 0

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str) -> str:
        if not _SPDX.match(value):
            raise ValueError(f"SPDX license id expected, got {value!r}")
        return value

    @field_validator("retrieved_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("retrieved_at needs a time zone, e.g. 2026-01-31T00:00:00Z")
        return value


class Params(Section):
    paths: Paths = Paths()
    policy: Policy = Policy()
    ingest: Ingest = Ingest()
    dedup: Dedup = Dedup()
    train: Train = Train()
    pii: PiiConfig = PiiConfig()
    screen: Screen = Screen()
    sources: list[Source]
    root: Path = Field(Path("."), exclude=True)

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, sources: list[Source]) -> list[Source]:
        ids = [s.id for s in sources]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"source ids must be unique; repeated: {repeated}")
        return sources

    def resolve(self, path: str) -> Path:
        """A params path made absolute against the project root."""
        return (self.root / path).resolve()

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.paths.data_dir)

    @property
    def ledger_path(self) -> Path:
        return self.resolve(self.paths.ledger)

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise ParamsError(f"no source {source_id!r} in params; known: {self.source_ids}")

    @property
    def source_ids(self) -> list[str]:
        return [s.id for s in self.sources]

    def digest(self, section: str | None = None) -> str:
        """sha256 of the canonical JSON of the params, or of one section of them."""
        data = self.model_dump(mode="json")
        if section is not None:
            data = data[section]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ParamsError naming the bad field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    try:
        return Params.model_validate({**raw, "root": path.resolve().parent})
    except ValidationError as err:
        raise ParamsError(_describe(path, raw, err)) from None


def _describe(path: Path, raw: dict, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} invalid field(s)"]
    for problem in err.errors():
        lines.append(f"  {_field_name(raw, problem['loc'])}: {problem['msg']}")
    return "\n".join(lines)


def _field_name(raw: dict, loc: tuple) -> str:
    parts: list[str] = []
    node: object = raw
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node) and isinstance(node[key], dict):
                label += f" {node[key].get('id', '')!r}" if "id" in node[key] else ""
                node = node[key]
            parts.append(label)
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts)
