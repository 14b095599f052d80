"""A model factory for the crash test: it says it started, then never returns."""

import time
from pathlib import Path


def build(marker: str) -> None:
    Path(marker).write_text("training started\n")
    time.sleep(3600)
