"""The ingest section of params.yaml."""

from pydantic import Field

from resources.core.config import Section


class IngestConfig(Section):
    batch_size: int = Field(10_000, ge=1)
    max_record_bytes: int = Field(1_000_000, ge=1)
    """A text line, row or file longer than this is dropped as too_large."""
    max_image_bytes: int = Field(50_000_000, ge=1)
    """An image file larger than this is dropped as too_large (a 50 MB photo passes)."""
    max_image_pixels: int = Field(100_000_000, ge=1)
    """An image of more pixels than this is dropped before decoding (a 100-megapixel photo
    passes); it bounds the memory one decoded image takes."""
