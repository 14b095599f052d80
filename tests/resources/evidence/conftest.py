import os
import shutil

import pytest

from tests.resources.evidence.browser import find_chromium, install_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: found on PATH, else installed with apt-get (as root), else a loud skip."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log = install_chromium()
        found = find_chromium()
        if found:
            return found
        pytest.skip(f"NO BROWSER TEST: `apt-get install chromium` did not give a chromium:\n{log}")
    pytest.skip("NO BROWSER TEST: chromium is not installed and apt-get cannot run as this user")
