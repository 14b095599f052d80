"""The pii section of params.yaml: what the scrubber looks for and what it puts instead.

Kept apart from resources.scrub.detection so that loading params does not import Presidio.
"""

from typing import Literal

from pydantic import Field, field_validator

from resources.core.config import Section

DEFAULT_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "UK_NHS",
    "IP_ADDRESS",
    "IBAN_CODE",
    "CRYPTO",
    "MAC_ADDRESS",
    "URL",
    "PERSON",
    "ADDRESS",
)
DEV_SALT = "assay-dev-salt-NOT-SECRET"
"""Used when the salt variable is unset, so dev runs work; hashes are then guessable."""


class Operator(Section):
    """What replaces a detected value: <TYPE>, a mask, a keyed hash, or nothing."""

    kind: Literal["replace", "mask", "hash", "redact"] = "replace"
    new_value: str | None = None
    """replace: the text put in; default <ENTITY_TYPE>."""
    masking_char: str = Field("*", min_length=1, max_length=1)
    chars_to_mask: int | None = None
    """mask: how many characters to mask; default all."""
    from_end: bool = False
    digest_chars: int = Field(16, ge=8, le=64)
    """hash: letters of the HMAC kept (hex mapped to a-p, so it never reads as a number)."""


class CustomRecognizer(Section):
    """A pattern and/or deny-list recognizer declared in params.yaml."""

    entity: str
    patterns: list[tuple[str, float]] = []
    deny_list: list[str] = []
    context: list[str] = []


class ScrubConfig(Section):
    """The pii section of params.yaml."""

    entities: list[str] = list(DEFAULT_ENTITIES)
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    countries: list[str] = ["us", "uk"]
    """Country-specific recognizers of other countries are switched off."""
    phone_regions: list[str] = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "IE"]
    default_operator: Operator = Operator()
    operators: dict[str, Operator] = {}
    salt_env: str = "ASSAY_PII_SALT"
    """Name of the environment variable holding the HMAC key of the hash operator."""
    custom_recognizers: list[CustomRecognizer] = []
    max_entities_per_doc: int = Field(100, ge=0)
    """A document with more entities than this is dropped (reason pii_over_limit)."""
    ner: bool = True
    """PERSON/ADDRESS from the project's own NER model (built once by `make model`, cached)."""
    spacy_model: str | None = None
    """An installed spaCy NER model for PERSON/LOCATION/ORGANIZATION; never downloaded."""
    prefilter: bool = True
    chunk_size: int = Field(8192, ge=64)
    chunk_overlap: int = Field(256, ge=16)
    workers: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)
    """Texts per worker task; the NER model reads a task's texts in one batch."""
    part_records: int = Field(50_000, ge=1)
    """Records the stage reads, scrubs and writes at a time, per source: its memory follows
    this, not the corpus (each part starts the workers anew, about 0.1 s)."""
    start_method: Literal["fork", "forkserver", "spawn"] = "fork"
    """fork starts workers in milliseconds; spawn re-imports Presidio (~3 s) in each."""
    sensitive_threshold: float = Field(0.25, ge=0.0, le=1.0)
    """Threshold of the residual re-scan, which runs every recognizer over every character."""
    max_residual_per_10k: float = Field(50.0, ge=0.0)
    """The residual check fails when more entities than this per 10k docs survive scrubbing
    (in the source where most do; the upper bound of that rate when it was sampled)."""
    residual_sample: int = Field(10_000, ge=0)
    """Texts per source the re-scan reads: a source with more is read on a sample of about
    this many, by record_id (resources/scrub/residual.py); 0 reads every text."""
    residual_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Confidence of a sampled rate's upper bound."""

    @field_validator("residual_sample")
    @classmethod
    def _sample_large_enough(cls, value: int) -> int:
        if 0 < value < 100:
            raise ValueError("residual_sample is 0 (every text) or at least 100 texts")
        return value

    def sensitive(self) -> "ScrubConfig":
        """The re-scan configuration: lower threshold, every recognizer over every character."""
        return self.model_copy(
            update={
                "score_threshold": self.sensitive_threshold,
                "prefilter": False,
            }
        )
