import pytest

from resources.core.reasons import Reason
from resources.ingest.files import SourcePathError, content_digest, list_files


def test_symlink_out_of_root_is_rejected_not_followed(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    (root / "in.txt").write_text("inside")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    files, escaped = list_files(root, "txt")
    assert [f.name for f in files] == ["in.txt"]
    assert [(e.source_key, e.reason) for e in escaped] == [("link.txt", Reason.OUTSIDE_ROOT)]


def test_missing_source_path_is_a_clear_error(tmp_path):
    with pytest.raises(SourcePathError, match="does not exist"):
        list_files(tmp_path / "nowhere", "jsonl")


def test_content_digest_depends_on_names_and_hashes_not_order():
    a = content_digest({"x.txt": "1", "y.txt": "2"})
    assert a == content_digest({"y.txt": "2", "x.txt": "1"})
    assert a != content_digest({"x.txt": "2", "y.txt": "1"})


def test_fifo_socket_and_device_are_dropped_naming_them_and_never_opened(tmp_path):
    import os
    import socket

    root = tmp_path / "src"
    root.mkdir()
    (root / "ok.jsonl").write_text('{"text": "fine"}\n')
    os.mkfifo(root / "pipe.jsonl")  # opening it for reading would block forever
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "sock.jsonl"))
    (root / "null.jsonl").symlink_to("/dev/null")
    try:
        files, refused = list_files(root, "jsonl")
    finally:
        listener.close()
    assert [f.name for f in files] == ["ok.jsonl"]
    got = {(r.source_key, r.reason): r.detail for r in refused}
    assert got[("pipe.jsonl", Reason.UNREADABLE)] == "not a regular file (FIFO)"
    assert got[("sock.jsonl", Reason.UNREADABLE)] == "not a regular file (socket)"
    # /dev/null is outside the root, so that is said first
    assert ("null.jsonl", Reason.OUTSIDE_ROOT) in got


def test_a_fifo_as_the_source_path_is_a_drop_not_a_hang(tmp_path):
    import os

    os.mkfifo(tmp_path / "one.jsonl")
    files, refused = list_files(tmp_path / "one.jsonl", "jsonl")
    assert files == [] and refused[0].detail == "not a regular file (FIFO)"


def test_a_symlink_loop_and_a_non_utf8_name_are_dropped_and_the_rest_read(tmp_path):
    import os

    root = tmp_path / "src"
    root.mkdir()
    (root / "good.txt").write_text("kept")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    (root / "a.txt").symlink_to(root / "b.txt")
    (root / "b.txt").symlink_to(root / "a.txt")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as out:
        out.write(b"latin-1 name")
    files, refused = list_files(root, "txt")
    assert [f.name for f in files] == ["good.txt"]
    reasons = {r.source_key: r.reason for r in refused}
    assert reasons == {
        "a.txt": Reason.UNREADABLE,
        "b.txt": Reason.UNREADABLE,
        "loop.txt": Reason.UNREADABLE,
        "caf\\xe9.txt": Reason.ENCODING,
    }
    assert all(r.source_key.encode("utf-8") for r in refused)  # names the ledger can hold
