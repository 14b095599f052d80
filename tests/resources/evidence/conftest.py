import os
import shutil

import pytest

from tests.resources.evidence.browser import find_chromium, install_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: found on PATH, else installed with apt-get (as root), else a failure:
    the page must be checked in a real browser, so a missing one is no pass."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log = install_chromium()
        found = find_chromium()
        if found:
            return found
        pytest.fail(f"NO BROWSER: `apt-get install chromium` did not give a chromium:\n{log}")
    pytest.fail("NO BROWSER: chromium is not installed and apt-get cannot run as this user")
