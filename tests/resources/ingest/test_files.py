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
