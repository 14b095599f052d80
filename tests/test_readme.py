"""The README documents every reason code and every ledger table the code defines."""

from resources.core.ledger_tables import TABLES
from resources.core.reasons import Reason, describe
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_reason_code_is_in_the_readme_table_with_its_meaning():
    for reason in Reason:
        assert f"| `{reason}` | {describe(reason)} |" in README, reason


def test_every_ledger_table_is_in_the_readme():
    for table in ["chain", *TABLES]:
        assert f"| `{table}` |" in README, table


def test_the_two_commands_are_shown():
    assert "make run" in README and "make test" in README
