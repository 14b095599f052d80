"""Reads back the Markdown tables assets/metadata.py writes, so tests check their figures."""

import dagster as dg


def rows(value: dg.MetadataValue) -> list[dict[str, str]]:
    """A Markdown table's body rows, as header -> cell text."""
    lines = [line.strip() for line in value.value.splitlines() if line.strip()]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    headers, body = cells[0], cells[2:]
    return [dict(zip(headers, row, strict=True)) for row in body if row != ["–"] * len(headers)]


def counts(value: dg.MetadataValue) -> dict[str, int]:
    """A two-column count table as key -> number."""
    out = {}
    for row in rows(value):
        key, number = row.values()
        out[key] = int(number)
    return out
