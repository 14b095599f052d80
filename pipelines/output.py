"""What the `assay` command prints: tables and JSON, on one console."""

import json
import sys

import click
import polars as pl
from rich.console import Console
from rich.table import Table

# Piped output (CI logs, README examples) is not wrapped at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


def emit(data: object, as_json: bool, table: pl.DataFrame | None = None, title: str = "") -> None:
    """One JSON document on stdout with --json; else a table (or the pretty JSON)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif table is not None:
        print_frame(table, title)
    else:
        console.print_json(json.dumps(data, default=str))


def print_frame(frame: pl.DataFrame, title: str = "") -> None:
    table = Table(title=title or None, show_lines=False)
    for column in frame.columns:
        table.add_column(column, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)
