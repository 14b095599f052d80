"""The README and docs/ stay true: every reason code, every ledger table, every path they name."""

import re

import pytest

from resources.core.ledger_tables import TABLES
from resources.core.reasons import Reason, describe
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = {"README.md": README} | {f"docs/{p.name}": p.read_text(encoding="utf-8") for p in DOCS}

CODE_ROOTS = ("resources", "assets", "pipelines", "sensors", "bench")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def doc(name: str) -> str:
    return PAGES[f"docs/{name}"]


def code_paths(text: str) -> set[str]:
    """Paths under the code folders written in inline backticks (fenced blocks left out)."""
    found = set()
    for span in SPAN.findall(FENCE.sub("", text)):
        for token in span.split():
            token = token.rstrip(".,:;)")
            if token.split("/")[0] in CODE_ROOTS and "/" in token and not set("<*") & set(token):
                found.add(token)
    return found


def test_every_reason_code_is_in_the_reasons_page_with_its_meaning():
    for reason in Reason:
        assert f"| `{reason}` | {describe(reason)} |" in doc("reasons.md"), reason


def test_every_ledger_table_is_in_the_ledger_page():
    for table in ["chain", *TABLES]:
        assert f"| `{table}` |" in doc("ledger.md"), table


def test_the_readme_links_every_docs_page():
    assert DOCS
    for page in DOCS:
        assert f"](docs/{page.name})" in README, page.name


def test_the_readme_is_short():
    assert len(README.splitlines()) < 200


def test_the_two_commands_are_shown():
    assert "make run" in README and "make test" in README


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_code_path_written_exists(page):
    missing = sorted(p for p in code_paths(PAGES[page]) if not (REPO / p).exists())
    assert not missing, f"{page} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_link_resolves(page):
    base = (REPO / page).parent
    broken = sorted(link for link in LINK.findall(PAGES[page]) if not (base / link).is_file())
    assert not broken, f"{page} links pages that do not exist: {broken}"
