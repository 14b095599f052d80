"""params.yaml, the one configuration file: its model, loading and validation.

Relative paths in params.yaml are relative to the file's own directory (the project root).
Errors name the bad field, e.g. ``sources[2] 'forum'.license: SPDX id expected``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator

from resources.core.config import LineageConfig, Section
from resources.core.corpus import Corpus, Policy, Source, UnknownSourceError
from resources.core.engine import EngineConfig
from resources.core.storage import json_sha256
from resources.dedup.config import DedupConfig
from resources.ingest.config import IngestConfig
from resources.release.config import ReleaseConfig
from resources.screen.config import ScreenConfig
from resources.scrub.config import ScrubConfig
from resources.train.config import TrainConfig


class ParamsError(ValueError):
    """params.yaml is missing, unparsable or invalid; the message names the bad field."""


class Paths(Section):
    data_dir: str = "data"
    ledger: str = "data/ledger.duckdb"


class Params(Section):
    paths: Paths = Paths()
    policy: Policy = Policy()
    engine: EngineConfig = EngineConfig()
    ingest: IngestConfig = IngestConfig()
    dedup: DedupConfig = DedupConfig()
    pii: ScrubConfig = ScrubConfig()
    screen: ScreenConfig = ScreenConfig()
    train: TrainConfig = TrainConfig()
    release: ReleaseConfig = ReleaseConfig()
    lineage: LineageConfig = LineageConfig()
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
        try:
            return self.corpus().source(source_id)
        except UnknownSourceError as err:
            raise ParamsError(err.args[0]) from None

    def corpus(self) -> Corpus:
        """What every stage shares: the sources, their policy, where data lives."""
        return Corpus(self.root, self.data_dir, tuple(self.sources), self.policy)

    @property
    def source_ids(self) -> list[str]:
        return [s.id for s in self.sources]

    def digest(self, section: str | None = None) -> str:
        """sha256 of the canonical JSON of the params, or of one section of them."""
        data = self.model_dump(mode="json")
        return json_sha256(data if section is None else data[section])


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
