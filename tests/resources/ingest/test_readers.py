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


# -- faults mid-file ----------------------------------------------------------------------


def _corrupt_parquet(path, rows_per_group: int, groups: int) -> None:
    """A Parquet file whose second row group has garbage in the middle of its data pages."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = rows_per_group * groups
    table = pa.table(
        {"id": [f"r{i}" for i in range(n)], "text": [f"row {i} " * 8 for i in range(n)]}
    )
    pq.write_table(table, path, row_group_size=rows_per_group, compression="zstd")
    meta = pq.ParquetFile(path).metadata.row_group(1)
    column = meta.column(1)
    start = column.data_page_offset + 40
    data = bytearray(path.read_bytes())
    data[start : start + 400] = bytes(range(200)) * 2
    path.write_bytes(bytes(data))


def test_a_corrupt_parquet_page_keeps_what_was_read_and_counts_the_rest(tmp_path):
    path = tmp_path / "p.parquet"
    _corrupt_parquet(path, rows_per_group=1000, groups=3)
    items = list(read_parquet(path, "p.parquet", SPEC))
    kept = [i for i in items if i.reason is None]
    broken = [i for i in items if i.reason is not None]
    assert len(broken) == 1 and broken[0].reason == Reason.UNREADABLE
    assert broken[0].source_key == "p.parquet:row_group1"
    # row groups 0 and 2 are read whole; the broken group's rows are counted in the drop
    assert {i.source_key for i in kept} >= {f"r{i}" for i in range(1000)} | {"r2999"}
    unread = 3000 - len(kept)
    assert f"{unread} rows could not be read" in broken[0].detail


def test_an_oversized_quoted_csv_field_is_one_drop_and_the_reader_does_not_resync_inside(
    tmp_path,
):
    inner = ("x,y\n" * 200) + '""quoted""\n'  # looks like rows, but sits inside the quotes
    path = tmp_path / "t.csv"
    path.write_text(f'id,text\n1,before\n2,"{inner}"\n3,after\n')
    items = list(read_csv(path, "t.csv", SPEC))
    assert [(i.source_key, i.reason) for i in items] == [
        ("1", None),
        ("t.csv:3", Reason.TOO_LARGE),
        ("3", None),
    ]
    assert items[2].text == "after"


def test_an_unclosed_quote_is_a_drop_and_folds_no_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,text\n1,"never closed\n2,second\n3,third\n')
    items = list(read_csv(path, "t.csv", SPEC))
    assert [(i.source_key, i.reason, i.text) for i in items] == [
        ("t.csv:2", Reason.MALFORMED, None),
        ("2", None, "second"),
        ("3", None, "third"),
    ]
    assert "never closed" in items[0].detail


def test_csv_quoting_errors_are_drops_not_merged_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,text\n1,"closed"junk\n2,"a ""quoted"" word, and\na newline"\n3,ok\n')
    items = list(read_csv(path, "t.csv", SPEC))
    assert [(i.source_key, i.reason) for i in items] == [
        ("t.csv:2", Reason.MALFORMED),
        ("2", None),
        ("3", None),
    ]
    assert items[1].text == 'a "quoted" word, and\na newline'


def test_a_file_that_fails_to_open_is_one_drop_naming_it(tmp_path):
    import os

    from resources.ingest.readers import READERS

    os.mkfifo(tmp_path / "late.jsonl")  # as if swapped in after the listing
    items = list(READERS["jsonl"](tmp_path / "late.jsonl", "late.jsonl", SPEC))
    assert [(i.source_key, i.reason, i.detail) for i in items] == [
        ("late.jsonl", Reason.UNREADABLE, "cannot read: not a regular file (FIFO)")
    ]


# -- images --------------------------------------------------------------------------------


def _jpeg(size: tuple[int, int]) -> bytes:
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_an_ordinary_photo_passes_the_default_image_limits_though_over_max_record_bytes(
    tmp_path,
):
    from resources.ingest.config import IngestConfig

    photo = _jpeg((2400, 1600))  # a few MB of noise, 3.8 megapixels
    config = IngestConfig()
    assert len(photo) > config.max_record_bytes
    (tmp_path / "photo.jpg").write_bytes(photo)
    spec = ReadSpec(
        max_record_bytes=config.max_record_bytes,
        max_image_bytes=config.max_image_bytes,
        max_image_pixels=config.max_image_pixels,
    )
    assert _reasons(read_image(tmp_path / "photo.jpg", "photo.jpg", spec)) == [None]


def test_images_over_their_byte_or_pixel_limit_are_too_large(tmp_path):
    (tmp_path / "p.jpg").write_bytes(_jpeg((300, 200)))
    by_bytes = ReadSpec(max_image_bytes=1000)
    by_pixels = ReadSpec(max_image_pixels=300 * 200 - 1)
    [big] = read_image(tmp_path / "p.jpg", "p.jpg", by_bytes)
    [wide] = read_image(tmp_path / "p.jpg", "p.jpg", by_pixels)
    assert big.reason == wide.reason == Reason.TOO_LARGE
    assert "max_image_bytes" in big.detail and "300x200 pixels" in wide.detail


def test_image_drop_evidence_holds_no_object_reprs(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    [item] = read_image(tmp_path / "junk.png", "junk.png", ReadSpec())
    assert item.reason == Reason.UNREADABLE
    assert "0x" not in item.detail and "<_io" not in item.detail
