"""The ingest section of params.yaml."""

from pydantic import Field

from resources.core.config import Section


class IngestConfig(Section):
    batch_size: int = Field(10_000, ge=1)
    max_record_bytes: int = Field(1_000_000, ge=1)
