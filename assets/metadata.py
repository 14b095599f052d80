"""How assay's figures read in the Dagster UI: Markdown tables, three significant digits, and
descriptions whose ``<placeholder>`` words the Markdown renderer does not swallow as HTML tags.

The factory applies ``figures`` and ``escape_md`` to every stage's metadata, checks and
descriptions; an asset module builds its tables with ``table`` and ``counts``.
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

SIGNIFICANT = 3
"""Significant digits of every float the UI shows (the ledger keeps the full value)."""

PLACEHOLDER = re.compile(r"<([A-Za-z_][\w./:-]*)>")


def significant(value: float, digits: int = SIGNIFICANT) -> float:
    """A float rounded to ``digits`` significant digits: 498.3393 -> 498.0, 0.0123456 -> 0.0123."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _shown(value: object) -> str:
    """A table cell: floats rounded, None as a dash, pipes escaped."""
    if isinstance(value, float):
        value = significant(value)
    text = "–" if value is None else str(value)
    return escape_md(text).replace("|", "\\|").replace("\n", " ")


def escape_md(text: str) -> str:
    """``<source>`` -> ``\\<source\\>``: shown as written, not taken for an HTML tag."""
    return PLACEHOLDER.sub(r"\\<\1\\>", text)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> dg.MetadataValue:
    """A Markdown table; numeric columns (every cell a number) are right-aligned."""
    rows = [list(r) for r in rows]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(_shown(h) for h in headers) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_shown(c) for c in r) + " |" for r in rows]
    if not rows:
        lines.append("| " + " | ".join(["–"] * len(headers)) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def counts(mapping: Mapping[str, object], key: str, value: str) -> dg.MetadataValue:
    """A two-column table of a mapping, largest value first."""
    items = sorted(mapping.items(), key=lambda kv: (-_number(kv[1]), str(kv[0])))
    return table([key, value], items)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def listing(values: Iterable[object], limit: int = 20) -> str:
    """A short comma-separated list; the rest counted, not shown."""
    values = [str(v) for v in values]
    shown = ", ".join(values[:limit]) or "none"
    return shown if len(values) <= limit else f"{shown} (+{len(values) - limit} more)"


def figure(value: object) -> object:
    """A metadata value with its float rounded; anything else as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
        return dg.MetadataValue.float(significant(value.value))
    return value


def figures(metadata: Mapping[str, object]) -> dict[str, object]:
    return {name: figure(value) for name, value in metadata.items()}


def shown_check(result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """A check result as the UI shows it: rounded figures, escaped description."""
    return dg.AssetCheckResult(
        asset_key=result.asset_key,
        check_name=result.check_name,
        passed=result.passed,
        severity=result.severity,
        description=escape_md(result.description) if result.description else None,
        metadata=figures(result.metadata),
    )


def shown_spec(spec: dg.AssetCheckSpec) -> dg.AssetCheckSpec:
    return spec._replace(description=escape_md(spec.description or ""))
