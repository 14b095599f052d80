"""Readers: one per source format, each streaming ``Item``s from one file.

A reader never raises on bad content: a line, row or file that cannot become a record is
yielded as an Item with a reason, so the caller can count it and drop it in the ledger.
Memory stays bounded: lines are read with a length cap, Parquet in row batches, and a file
read whole (txt, image) only after its size was checked.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
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
    max_image_bytes: int = 50_000_000
    max_image_pixels: int = 100_000_000


class SourceSchemaError(ValueError):
    """A file lacks a column the source declares (its text or id field)."""


class NotRegularFile(OSError):
    """A FIFO, device, socket or directory where a regular file was expected."""


def file_kind(mode: int) -> str:
    """What a stat mode is, in words: 'regular file', 'FIFO', 'socket', ..."""
    for test, kind in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "special file"


def open_regular(path: Path) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file, never blocking on open.

    O_NONBLOCK makes opening a FIFO return at once; fstat of the open descriptor then refuses
    it, so a file swapped for a FIFO after listing cannot stall the reader either.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"not a regular file ({file_kind(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
    with open_regular(path) as stream:
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
# Records are split here, quote-aware and with a length cap, and only then parsed by the csv
# module one record at a time: so an oversized quoted field is skipped to its closing quote
# (one too_large drop), never re-synchronized inside, and an unclosed quote is one malformed
# drop whose following lines are read again as rows, never folded into its text.

_QUOTE, _NEWLINE = ord('"'), b"\n"
_CSV_DEFAULT_FIELD_LIMIT = 131_072


@dataclass
class _CsvRecord:
    line: int
    """the record's first physical line"""
    data: bytes | None
    """its bytes, or None when longer than the cap"""
    size: int
    unclosed: bool = False


def _quote_state(chunk: bytes, quoted: bool, field_start: bool) -> tuple[bool, bool]:
    """(inside a quoted field, at a field's start) after ``chunk``, as the csv module reads.

    A quote opens a field only at the field's start; inside one, '""' is a literal quote.
    """
    i, n = 0, len(chunk)
    while i < n:
        if quoted:
            j = chunk.find(b'"', i)
            if j < 0:
                return True, False
            if j + 1 < n and chunk[j + 1] == _QUOTE:
                i = j + 2
                continue
            quoted, field_start, i = False, False, j + 1
        elif field_start and chunk[i] == _QUOTE:
            quoted, field_start, i = True, False, i + 1
        else:
            j = chunk.find(b",", i)
            if j < 0:
                return False, chunk.endswith(_NEWLINE)
            field_start, i = True, j + 1
    return quoted, field_start


def csv_records(stream: io.BufferedReader, cap: int) -> Iterator[_CsvRecord]:
    """The file's logical records; memory holds at most ``cap`` bytes of one."""
    line_no = 0
    while True:
        record = _CsvRecord(line_no + 1, None, 0)
        parts: list[bytes] | None = []
        quoted, field_start, resume = False, True, None
        while chunk := _chunk(stream):
            if chunk.endswith(_NEWLINE):
                line_no += 1
                resume = resume or stream.tell()
            record.size += len(chunk)
            if parts is not None:
                parts.append(chunk)
                parts = parts if record.size <= cap else None
            quoted, field_start = _quote_state(chunk, quoted, field_start)
            if chunk.endswith(_NEWLINE) and not quoted:
                break
        if record.size == 0:
            return
        if quoted:  # the file ended inside a quote: it was never closed
            record.unclosed = True
            yield record
            if resume is None:
                return
            stream.seek(resume)  # its following lines are rows of their own
            line_no = record.line
            continue
        record.data = b"".join(parts) if parts is not None else None
        yield record


def _chunk(stream: io.BufferedReader) -> bytes:
    """A line or a bounded piece of one; never ending in a quote whose next byte is unread,
    so a '""' split across two pieces is still seen as one escaped quote."""
    chunk = stream.readline(_CHUNK)
    while chunk.endswith(b'"') and (extra := stream.read(1)):
        chunk += extra
    return chunk


def read_csv(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    # A record is at most max_record_bytes before the csv module sees it; so may a field be.
    csv.field_size_limit(max(spec.max_record_bytes, _CSV_DEFAULT_FIELD_LIMIT))
    with open_regular(path) as stream:
        records = csv_records(stream, spec.max_record_bytes)
        header = next((r for r in records if r.data is None or r.data.strip()), None)
        if header is None:
            return
        if header.data is None:
            raise SourceSchemaError(f"{path}: CSV header is unreadable (unclosed or too long)")
        columns = _csv_columns(path, _parse_row(header.data), spec)
        for record in records:
            key = f"{name}:{record.line}"
            if record.unclosed:
                detail = f"CSV: quote opened on line {record.line} is never closed"
                yield reject(key, Reason.MALFORMED, detail, 0)
            elif record.data is None:
                yield reject(key, Reason.TOO_LARGE, f"CSV row of {record.size} bytes", record.size)
            elif record.data.strip():
                yield _csv_record_item(record, columns, name, spec)


def _parse_row(data: bytes) -> list[str]:
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    text = data.decode("utf-8", errors="surrogateescape")
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    if len(rows) != 1:
        raise csv.Error(f"{len(rows)} rows in one record")
    return rows[0]


def _csv_record_item(
    record: _CsvRecord, columns: tuple[int, int | None], name: str, spec: ReadSpec
) -> Item:
    key = f"{name}:{record.line}"
    try:
        row = _parse_row(record.data)
    except csv.Error as err:
        return reject(key, Reason.MALFORMED, f"CSV: {err}", record.size)
    return _csv_item(row, columns, key, name, record.line, spec)


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
    """Rows in batches, one row group at a time: a row group that breaks mid-way (a corrupt
    page) keeps the rows read before the fault and is one unreadable drop for the rest."""
    try:
        parquet = pq.ParquetFile(open_regular(path))
    except (pa.ArrowException, OSError) as err:
        yield reject(name, Reason.UNREADABLE, f"not a readable Parquet file: {_message(err)}")
        return
    with parquet:
        fields = parquet.schema_arrow.names
        wanted = [f for f in (spec.text_field, spec.id_field) if f is not None]
        missing = [f for f in wanted if f not in fields]
        if missing:
            raise SourceSchemaError(f"{path}: Parquet file has no column(s) {missing}")
        row = 0
        for group in range(parquet.num_row_groups):
            group_rows, done = parquet.metadata.row_group(group).num_rows, 0
            batches = parquet.iter_batches(spec.batch_rows, row_groups=[group], columns=wanted)
            try:
                for batch in batches:
                    yield from _parquet_items(batch, name, row + done, spec)
                    done += batch.num_rows
            except (pa.ArrowException, OSError) as err:
                detail = (
                    f"row group {group} broke after {done} of its {group_rows} rows:"
                    f" {_message(err)}; {group_rows - done} rows could not be read"
                )
                yield reject(f"{name}:row_group{group}", Reason.UNREADABLE, detail)
            row += group_rows


def _parquet_items(batch: pa.RecordBatch, name: str, first: int, spec: ReadSpec) -> Iterator[Item]:
    texts = batch.column(spec.text_field).to_pylist()
    ids = batch.column(spec.id_field).to_pylist() if spec.id_field else [None] * len(texts)
    for offset, (value, item_id) in enumerate(zip(texts, ids, strict=True)):
        size = len(value.encode("utf-8")) if isinstance(value, str) else 0
        key = _key(name, first + offset, item_id, spec)
        if size > spec.max_record_bytes:
            yield reject(key, Reason.TOO_LARGE, f"text of {size} bytes", size)
        else:
            yield text_item(key, value, size)


_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def _message(err: BaseException) -> str:
    """An error's text without object reprs (memory addresses), on one line."""
    text = _OBJECT_REPR.sub("the file", str(err) or type(err).__name__)
    return " ".join(text.split())


# -- whole files: txt and images ---------------------------------------------------------


def _whole_file(
    path: Path, name: str, limit: int, what: str
) -> tuple[bytes | None, Item | None, int]:
    """(content, None, size), or (None, the reject, size) when it is too large or unreadable."""
    try:
        with open_regular(path) as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > limit:
                detail = f"file of {size} bytes, over {what} ({limit})"
                return None, reject(name, Reason.TOO_LARGE, detail, size), size
            return stream.read(), None, size
    except OSError as err:
        return None, reject(name, Reason.UNREADABLE, f"cannot read: {_os_message(err)}"), 0


def _os_message(err: OSError) -> str:
    return err.strerror or _message(err)


def read_txt(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
    content, refused, size = _whole_file(path, name, spec.max_record_bytes, "max_record_bytes")
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
    """An image within ingest's image limits (bytes, then pixels, checked before decoding)."""
    content, refused, size = _whole_file(path, name, spec.max_image_bytes, "max_image_bytes")
    if refused:
        yield refused
        return
    try:
        with warnings.catch_warnings():
            # Our own pixel limit decides; Pillow's bomb warning below its error is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                pixels = image.width * image.height
                if pixels > spec.max_image_pixels:
                    detail = f"{image.width}x{image.height} pixels, over max_image_pixels"
                    yield reject(
                        name, Reason.TOO_LARGE, f"{detail} ({spec.max_image_pixels})", size
                    )
                    return
                image.load()  # decodes every pixel, so a truncated file fails here
    except Image.DecompressionBombError as err:
        yield reject(name, Reason.TOO_LARGE, _message(err), size)
        return
    except (OSError, SyntaxError, ValueError) as err:
        yield reject(name, Reason.UNREADABLE, f"not a decodable image: {_message(err)}", size)
        return
    yield Item(name, kind=IMAGE, image_path=str(path), content=content, size_bytes=size)


Reader = Callable[[Path, str, ReadSpec], Iterator[Item]]


def guarded(reader: Reader) -> Reader:
    """A reader whose file failing to open or read is one drop naming the file, not a failed
    source; items it yielded before the failure stay."""

    @functools.wraps(reader)
    def read(path: Path, name: str, spec: ReadSpec) -> Iterator[Item]:
        try:
            yield from reader(path, name, spec)
        except OSError as err:
            yield reject(name, Reason.UNREADABLE, f"cannot read: {_os_message(err)}")

    return read


READERS: dict[str, Reader] = {
    "jsonl": guarded(read_jsonl),
    "csv": guarded(read_csv),
    "parquet": guarded(read_parquet),
    "txt": guarded(read_txt),
    "image": guarded(read_image),
}
