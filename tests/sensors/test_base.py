from sensors.base import changes


def test_changes_names_new_removed_and_changed_files():
    old = {"a.csv": "1", "b.csv": "2", "c.txt": "3"}
    new = {"a.csv": "1", "b.csv": "9", "d.txt": "4"}
    assert changes(old, new) == {"new": ["d.txt"], "removed": ["c.txt"], "changed": ["b.csv"]}
    assert not any(changes(new, dict(new)).values())


def test_changes_compares_only_the_content_it_is_told_to():
    old = {"a": [10, 111, "sha-1"]}
    moved = {"a": [10, 222, "sha-1"]}  # touched, same content
    assert not any(changes(old, moved, content=lambda entry: entry[2]).values())
    assert changes(old, moved)["changed"] == ["a"]
