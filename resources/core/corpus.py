"""The corpus every stage works on: the declared sources, their policy, and where data lives.

A stage's ``run(config, ledger, run_id, corpus)`` takes its own params section as ``config``
and this shared context as ``corpus``; pipelines/params.py builds it from params.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from resources.core.config import Section
from resources.core.storage import stage_path

_SPDX = re.compile(r"^(LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.+-]*)$")


class Policy(Section):
    """Which sources may contribute records at all."""

    allowed_licenses: list[str] = ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "MIT", "Apache-2.0"]
    allowed_consent: list[str] = ["public_domain", "license_terms", "opt_in", "contract"]


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


class UnknownSourceError(KeyError):
    """A source id that params.yaml does not declare."""


@dataclass(frozen=True)
class Corpus:
    root: Path
    """The project root: relative paths in params.yaml are relative to it."""
    data_dir: Path
    sources: tuple[Source, ...]
    policy: Policy

    def resolve(self, path: str | Path) -> Path:
        return (self.root / path).resolve()

    @property
    def source_ids(self) -> list[str]:
        return [s.id for s in self.sources]

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise UnknownSourceError(f"no source {source_id!r} in params; known: {self.source_ids}")

    def output(self, stage: str, source_id: str) -> Path:
        """data/<stage>/<source_id>.parquet"""
        return stage_path(self.data_dir, stage, source_id)
