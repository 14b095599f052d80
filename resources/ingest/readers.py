"""Readers: one per source format, each streaming ``Item``s from one file.

A reader never raises on bad content: a line, row or file that cannot become a record is
yielded as an Item with a reason, so the caller can count it and drop it in the ledger.
Memory stays bounded: lines are read with a length cap, Parquet in row batches, and a file
read whole (txt, image) only after its size was checked.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from resources.core.reasons import Reason
from resources.core.records import IMAGE, TEXT

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Item:
    """One item read from a source: content, or the reason it has none."""

    source_key: str
    kind: str = TEXT
    text: str | None = None
    image_path: str | None = None
    content: bytes | None = None
    reason: Reason | None = None
    detail: str | None = None
    size_bytes: int = 0


@dataclass(frozen=True)
class ReadSpec:
    """What a reader needs to know about its source."""

    text_field: str = "text"
    id_field: str | None = None
    max_record_bytes: int = 1_000_000
    batch_rows: int = 10_000


class SourceSchemaError(ValueError):
    """A file lacks a column the source declares (its text or id field)."""


def reject(source_key: str, reason: Reason, detail: str, size: int = 0) -> Item:
    return Item(source_key, reason=reason, detail=detail, size_bytes=size)


def text_item(source_key: str, value: object, size: int) -> Item:
    """An item from a field value: text, or a reject saying why the value is not usable text."""
    if not isinstance(value, str):
        kind = "missing" if value is None else type(value).__name__
        return reject(source_key, Reason.MALFORMED, f"text field is {kind}", size)
    if not value.strip():
        return reject(source_key, Reason.EMPTY, "text is empty", size)
    return Item(source_key, text=value, size_bytes=size)


def _key(name: str, position: int, value: object, spec: ReadSpec) -> str:
    """The item's source key: its declared id when it has one, else file and position."""
    if spec.id_field is not None and value is not None and value != "":
        return str(value)
    return f"{name}:{position}"


# -- line-oriented: JSONL ---------------------------------------------------------------


def capped_lines(stream: io.BufferedIOBase, cap: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when longer than ``cap``, length) without holding long lines."""
    number = 0
    while True:
        line = stream.readline(cap + 1)
        if not line:
            return
        number += 1
        if len(line) <= cap or (line.endswith(b"\n") and len(line) == cap + 1):
            yield number, line, len(line)
            continue
        length = len(line)
        while line and not line.endswith(b"\n"):
            line = stream.readline(_CHUNK)
            length += len(line)
        yield number, None, length


def read_jsonl(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    with path.open("rb") as stream:
        for number, line, size in capped_lines(stream, spec.max_record_bytes):
            key = f"{name}:{number}"
            if line is None:
                yield reject(key, Reason.TOO_LARGE, f"line of {size} bytes", size)
            elif line.strip():
                yield _jsonl_item(key, line, size, name, number, spec)


def _jsonl_item(key: str, line: bytes, size: int, name: str, number: int, spec: ReadSpec) -> Item:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        return reject(key, Reason.ENCODING, f"invalid UTF-8 at byte {err.start}", size)
    try:
        obj = orjson.loads(line.rstrip(b"\r\n"))
    except orjson.JSONDecodeError as err:
        return reject(key, Reason.MALFORMED, f"invalid JSON: {err.msg} at char {err.pos}", size)
    if not isinstance(obj, dict):
        return reject(key, Reason.MALFORMED, f"JSON {type(obj).__name__}, not an object", size)
    item_id = obj.get(spec.id_field) if spec.id_field else None
    return text_item(_key(name, number, item_id, spec), obj.get(spec.text_field), size)


# -- CSV ---------------------------------------------------------------------------------


def read_csv(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    csv.field_size_limit(min(sys.maxsize, spec.max_record_bytes))
    with path.open("rb") as raw:
        # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        rows = csv.reader(text)
        header = next(rows, None)
        if header is None:
            return
        columns = _csv_columns(path, header, spec)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as err:
                key = f"{name}:{rows.line_num}"
                yield reject(
                    key,
                    Reason.TOO_LARGE if "limit" in str(err) else Reason.MALFORMED,
                    f"CSV: {err}",
                )
                continue
            if row:
                yield _csv_item(row, columns, f"{name}:{rows.line_num}", name, rows.line_num, spec)


def _csv_columns(path: Path, header: list[str], spec: ReadSpec) -> tuple[int, int | None]:
    if spec.text_field not in header:
        raise SourceSchemaError(f"{path}: CSV header has no text field {spec.text_field!r}")
    if spec.id_field is not None and spec.id_field not in header:
        raise SourceSchemaError(f"{path}: CSV header has no id field {spec.id_field!r}")
    id_col = header.index(spec.id_field) if spec.id_field else None
    return header.index(spec.text_field), id_col


def _csv_item(
    row: list[str],
    columns: tuple[int, int | None],
    key: str,
    name: str,
    line: int,
    spec: ReadSpec,
) -> Item:
    size = sum(len(cell) for cell in row)
    text_col, id_col = columns
    if any(_has_surrogates(cell) for cell in row):
        return reject(key, Reason.ENCODING, "invalid UTF-8 in row", size)
    if len(row) <= max(text_col, id_col or 0):
        return reject(key, Reason.MALFORMED, f"row has {len(row)} fields", size)
    item_id = row[id_col] if id_col is not None else None
    return text_item(_key(name, line, item_id, spec), row[text_col], size)


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# -- Parquet -----------------------------------------------------------------------------


def read_parquet(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        yield reject(name, Reason.UNREADABLE, f"not a readable Parquet file: {err}")
        return
    fields = parquet.schema_arrow.names
    wanted = [f for f in (spec.text_field, spec.id_field) if f is not None]
    missing = [f for f in wanted if f not in fields]
    if missing:
        raise SourceSchemaError(f"{path}: Parquet file has no column(s) {missing}")
    row = 0
    for batch in parquet.iter_batches(batch_size=spec.batch_rows, columns=wanted):
        texts = batch.column(spec.text_field).to_pylist()
        ids = batch.column(spec.id_field).to_pylist() if spec.id_field else [None] * len(texts)
        for value, item_id in zip(texts, ids, strict=True):
            size = len(value.encode("utf-8")) if isinstance(value, str) else 0
            key = _key(name, row, item_id, spec)
            if size > spec.max_record_bytes:
                yield reject(key, Reason.TOO_LARGE, f"text of {size} bytes", size)
            else:
                yield text_item(key, value, size)
            row += 1


# -- whole files: txt and images ---------------------------------------------------------


def _whole_file(path: Path, name: str, spec: ReadSpec) -> tuple[bytes | None, Item | None, int]:
    """(content, None, size), or (None, the reject, size) when it is too large or unreadable."""
    size = path.stat().st_size
    if size > spec.max_record_bytes:
        return None, reject(name, Reason.TOO_LARGE, f"file of {size} bytes", size), size
    try:
        return path.read_bytes(), None, size
    except OSError as err:
        return None, reject(name, Reason.UNREADABLE, f"cannot read: {err.strerror}", size), size


def read_txt(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    content, refused, size = _whole_file(path, name, spec)
    if refused:
        yield refused
        return
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        yield reject(name, Reason.ENCODING, f"invalid UTF-8 at byte {err.start}", size)
        return
    yield text_item(name, text, size)


def read_image(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    content, refused, size = _whole_file(path, name, spec)
    if refused:
        yield refused
        return
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()  # decodes every pixel, so a truncated file fails here
    except Image.DecompressionBombError as err:
        yield reject(name, Reason.TOO_LARGE, str(err), size)
        return
    except (OSError, SyntaxError, ValueError) as err:
        yield reject(name, Reason.UNREADABLE, f"not a decodable image: {err}", size)
        return
    yield Item(name, kind=IMAGE, image_path=str(path), content=content, size_bytes=size)


READERS = {
    "jsonl": read_jsonl,
    "csv": read_csv,
    "parquet": read_parquet,
    "txt": read_txt,
    "image": read_image,
}
