import hashlib
from pathlib import Path

import pytest

from resources.screen.hashlists import (
    HashListError,
    directory_fingerprint,
    load_list,
    load_lists,
)

SHA = "ab" * 32
MD5 = "cd" * 16
PHASH = "c2924c5532bddfc8"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_list_reads_types_labels_and_skips_comments(tmp_path):
    path = _write(
        tmp_path / "demo.csv",
        "hash,type,label\n"
        "# a comment\n"
        f"{SHA.upper()},SHA256,plain\n"
        "\n"
        f'{MD5},md5,"quoted, with comma"\n'
        f"{PHASH},phash\n",
    )
    hash_list = load_list(path)
    rows = hash_list.entries.to_dicts()
    assert [r["type"] for r in rows] == ["sha256", "md5", "phash"]
    assert rows[0]["hash"] == SHA
    assert [r["label"] for r in rows] == ["plain", "quoted, with comma", None]
    assert [r["line"] for r in rows] == [3, 5, 6]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert hash_list.sha256 == digest
    assert (hash_list.name, hash_list.provider) == ("demo", "unspecified")
    assert hash_list.version == f"sha256:{digest[:12]}"
    assert hash_list.describe()["entries_by_type"] == {"md5": 1, "phash": 1, "sha256": 1}


def test_sidecar_names_version_and_provider(tmp_path):
    path = _write(tmp_path / "demo.csv", f"hash,type,label\n{SHA},sha256,x\n")
    _write(tmp_path / "demo.meta.yaml", "name: ncmec-demo\nversion: 2024.1\nprovider: Example\n")
    hash_list = load_list(path)
    assert (hash_list.name, hash_list.version, hash_list.provider) == (
        "ncmec-demo",
        "2024.1",
        "Example",
    )


def test_plain_list_infers_type_from_length_or_takes_it_from_sidecar(tmp_path):
    md5_list = load_list(_write(tmp_path / "a.txt", f"# md5s\n{MD5}\n\n{MD5[::-1]}\n"))
    assert md5_list.entries["type"].to_list() == ["md5", "md5"]
    text_list = _write(tmp_path / "b.txt", f"{SHA}\n")
    assert load_list(text_list).entries["type"].to_list() == ["sha256"]
    _write(tmp_path / "b.meta.yaml", "type: sha256_text\n")
    assert load_list(text_list).entries["type"].to_list() == ["sha256_text"]
    dhash_list = _write(tmp_path / "c.txt", f"{PHASH}\n")
    _write(tmp_path / "c.meta.yaml", "type: dhash\n")
    assert load_list(dhash_list).entries["type"].to_list() == ["dhash"]


def test_duplicate_entries_are_kept_once(tmp_path):
    path = _write(tmp_path / "d.csv", f"hash,type\n{SHA},sha256\n{SHA},sha256\n{SHA},sha256_text\n")
    assert load_list(path).entries.height == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"hash,type\n{SHA},sha512\n", "unknown hash type"),
        (f"hash,type\n{SHA[:-1]},sha256\n", "not a sha256 hash"),
        (f"hash,type\n{'zz' * 8},phash\n", "not a phash hash"),
        (f"hash,type\n{PHASH},md5\n", "not a md5 hash"),
        (f"type,hash\n{SHA},sha256\n", "header"),
    ],
)
def test_malformed_lists_raise_with_the_line(tmp_path, text, message):
    with pytest.raises(HashListError, match=message):
        load_list(_write(tmp_path / "bad.csv", text))


def test_sidecar_with_unknown_key_raises(tmp_path):
    path = _write(tmp_path / "demo.csv", f"hash,type\n{SHA},sha256\n")
    _write(tmp_path / "demo.meta.yaml", "name: x\nthreshold: 3\n")
    with pytest.raises(HashListError, match="unknown keys"):
        load_list(path)


def test_plain_list_of_unknown_length_needs_a_sidecar(tmp_path):
    with pytest.raises(HashListError, match="hash type"):
        load_list(_write(tmp_path / "x.txt", "abcdef\n"))


def test_directory_loads_lists_in_order_and_rejects_clashing_names(tmp_path):
    _write(tmp_path / "b.csv", f"hash,type\n{SHA},sha256\n")
    _write(tmp_path / "a.txt", f"{MD5}\n")
    assert [h.name for h in load_lists(tmp_path)] == ["a", "b"]
    _write(tmp_path / "b.meta.yaml", "name: a\n")
    with pytest.raises(HashListError, match="more than one list"):
        load_lists(tmp_path)


def test_fingerprint_changes_with_the_list_or_its_sidecar(tmp_path):
    path = _write(tmp_path / "demo.csv", f"hash,type\n{SHA},sha256\n")
    first = directory_fingerprint(tmp_path)
    _write(tmp_path / "demo.meta.yaml", "version: '2'\n")
    second = directory_fingerprint(tmp_path)
    _write(path, f"hash,type\n{SHA},sha256\n{MD5},md5\n")
    third = directory_fingerprint(tmp_path)
    assert len({first["demo.csv"], second["demo.csv"], third["demo.csv"]}) == 3
    assert directory_fingerprint(tmp_path / "missing") == {}


def test_no_usable_list_fails_closed_unless_no_list_is_wanted(tmp_path):
    with pytest.raises(HashListError, match="does not exist"):
        load_lists(tmp_path / "missing")
    with pytest.raises(HashListError, match="no hash list"):
        load_lists(tmp_path)
    assert load_lists(tmp_path / "missing", required=False) == []
    assert load_lists(tmp_path, required=False) == []


def test_a_file_that_is_no_list_is_an_error_naming_it(tmp_path):
    # demo.CSV is not *.csv: a folder holding only it used to screen against nothing.
    _write(tmp_path / "demo.CSV", f"hash,type\n{SHA},sha256\n")
    with pytest.raises(HashListError, match=r"demo\.CSV"):
        load_lists(tmp_path)
    with pytest.raises(HashListError, match=r"demo\.CSV"):
        load_lists(tmp_path, required=False)
    _write(tmp_path / "ok.csv", f"hash,type\n{SHA},sha256\n")
    _write(tmp_path / "ok.meta.yaml", "version: '1'\n")
    _write(tmp_path / "notes.md", "not a list")
    with pytest.raises(HashListError, match=r"notes\.md"):
        load_lists(tmp_path)
