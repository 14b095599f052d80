import io
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from resources.core.reasons import Reason
from resources.ingest.readers import (
    ReadSpec,
    SourceSchemaError,
    capped_lines,
    read_csv,
    read_image,
    read_jsonl,
    read_parquet,
    read_txt,
)

SPEC = ReadSpec(text_field="text", id_field="id", max_record_bytes=200)


def _reasons(items) -> list:
    return [i.reason for i in items]


def test_jsonl_good_bad_and_oversized_lines(tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "hello"}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"id": "b", "text": 5}),
        json.dumps({"id": "c", "text": "x" * 500}),
        "",
        json.dumps({"text": "no id"}),
    ]
    path = tmp_path / "s.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe broken\n")
    items = list(read_jsonl(path, "s.jsonl", SPEC))
    assert _reasons(items) == [
        None,
        Reason.MALFORMED,
        Reason.MALFORMED,
        Reason.MALFORMED,
        Reason.TOO_LARGE,
        None,
        Reason.ENCODING,
    ]
    assert items[0].source_key == "a" and items[0].text == "hello"
    assert items[5].source_key == "s.jsonl:7"  # no id: file and line


def test_capped_lines_never_holds_a_long_line():
    stream = io.BytesIO(b"short\n" + b"y" * 10_000 + b"\nlast")
    assert [(n, line, size) for n, line, size in capped_lines(stream, 100)] == [
        (1, b"short\n", 6),
        (2, None, 10_001),
        (3, b"last", 4),
    ]


def test_csv_rows_with_wrong_arity_and_bad_bytes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'id,text\n1,fine\n2\n3,caf\xe9\n4,"multi\nline"\n')
    items = list(read_csv(path, "t.csv", SPEC))
    assert _reasons(items) == [None, Reason.MALFORMED, Reason.ENCODING, None]
    assert items[3].text == "multi\nline"


def test_csv_without_the_text_column_names_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,body\n1,x\n")
    with pytest.raises(SourceSchemaError, match="'text'"):
        list(read_csv(path, "t.csv", SPEC))


def test_parquet_rows_and_nulls(tmp_path):
    path = tmp_path / "p.parquet"
    pl.DataFrame({"id": ["a", "b", "c"], "text": ["one", None, "x" * 300]}).write_parquet(path)
    items = list(read_parquet(path, "p.parquet", SPEC))
    assert _reasons(items) == [None, Reason.MALFORMED, Reason.TOO_LARGE]


def test_corrupt_parquet_is_one_unreadable_item(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"PAR1 not really")
    assert _reasons(read_parquet(path, "p.parquet", SPEC)) == [Reason.UNREADABLE]


def test_txt_encoding_size_and_empty(tmp_path):
    cases = {"ok.txt": b"words", "latin.txt": b"caf\xe9", "big.txt": b"z" * 300, "e.txt": b" \n"}
    reasons = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        reasons[name] = _reasons(read_txt(tmp_path / name, name, SPEC))
    assert reasons == {
        "ok.txt": [None],
        "latin.txt": [Reason.ENCODING],
        "big.txt": [Reason.TOO_LARGE],
        "e.txt": [Reason.EMPTY],
    }


def test_truncated_image_is_unreadable(tmp_path):
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(out, format="PNG")
    (tmp_path / "ok.png").write_bytes(out.getvalue())
    (tmp_path / "cut.png").write_bytes(out.getvalue()[:60])
    spec = ReadSpec(max_record_bytes=1_000_000)
    assert _reasons(read_image(tmp_path / "ok.png", "ok.png", spec)) == [None]
    assert _reasons(read_image(tmp_path / "cut.png", "cut.png", spec)) == [Reason.UNREADABLE]


READERS = {"jsonl": read_jsonl, "csv": read_csv, "txt": read_txt}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.binary(max_size=300), max_size=30))
def test_jsonl_reader_accounts_for_every_nonblank_line(tmp_path: Path, lines: list[bytes]):
    """Random bytes in, no crash out, and one item (record or reject) per non-blank line."""
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines))
    items = list(read_jsonl(path, "fuzz.jsonl", SPEC))
    assert len(items) == sum(1 for line in lines if line.strip())
    assert all(i.reason is not None or i.text for i in items)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2_000))
def test_every_reader_survives_arbitrary_bytes(tmp_path: Path, data: bytes):
    for fmt, reader in READERS.items():
        path = tmp_path / f"fuzz.{fmt}"
        path.write_bytes(b"id,text\n" + data if fmt == "csv" else data)
        for item in reader(path, path.name, SPEC):
            assert (item.reason is None) == (item.text is not None)
    for fmt, reader in {"parquet": read_parquet, "image": read_image}.items():
        path = tmp_path / f"fuzz.{fmt}"
        path.write_bytes(data)
        assert [i.reason for i in reader(path, path.name, SPEC)] in (
            [Reason.UNREADABLE],
            [Reason.TOO_LARGE],
        )
