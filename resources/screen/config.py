"""The screen section of params.yaml: where the hash lists are, how near an image hash must be."""

from pydantic import Field

from resources.core.config import Section
from resources.screen.hashlists import DHASH, PHASH


class ScreenConfig(Section):
    hashlists_dir: str = "data/hashlists"
    hash_cache: str = "data/cache/screen_hashes.parquet"
    """Hashes (never content) of every record ever screened, so a re-screen after a list
    changes need not decode the corpus again, and covers records earlier outputs held."""
    require_lists: bool = True
    """Screening with no usable list is an error (a missing or empty folder, or one whose
    files are not lists, would let every harmful item pass). Set False only to say
    explicitly that no list is wanted."""
    quarantine_dir: str | None = None
    """When set, a matched item that is a whole source file (an image, a .txt) is moved out of
    its source folder into <quarantine_dir>/<source_id>/ (mode 0700), and the move is
    recorded in the ledger. Off by default: the sources are the user's."""
    phash_max_distance: int = Field(10, ge=0, le=31)
    dhash_max_distance: int = Field(8, ge=0, le=31)
    dhash_min_minority_bits: int = Field(12, ge=0, le=32)
    """A dhash is 64 "is the next pixel brighter" bits. An image lit brighter on one side gives
    nearly all zeros or all ones in some orientation, and such a hash says only "brightness
    rises left to right": it matches thousands of unrelated images. An entry whose rarer bit
    value occurs fewer times than this is not matched by distance (it is still counted and
    reported, see Screener.low_information). phash thresholds at the median of its
    coefficients, so its hashes are always about half ones."""

    @property
    def max_distance(self) -> dict[str, int]:
        return {PHASH: self.phash_max_distance, DHASH: self.dhash_max_distance}

    @property
    def min_minority_bits(self) -> dict[str, int]:
        return {PHASH: 0, DHASH: self.dhash_min_minority_bits}
