import numpy as np
import pyarrow as pa
import pytest

from resources.core.ledger_lookup import key_of, prefix_keys, prefix_range, text_hashes

VALUES = ["abcdef0123456789", "ab", "", "é€abcdefgh", "ab\x00", "zzzzzzzzz", None]


def test_prefix_keys_are_the_first_eight_bytes_big_endian():
    keys, valid = prefix_keys(pa.array(VALUES))
    for value, key, ok in zip(VALUES, keys, valid, strict=True):
        assert ok == (value is not None)
        if value is not None:
            expected = int.from_bytes(value.encode("utf-8")[:8].ljust(8, b"\0"), "big")
            assert int(key) == expected == key_of("lookup_record_id", value)


def test_prefix_keys_read_sliced_and_chunked_arrays_at_their_offset():
    array = pa.array(VALUES[:6])
    whole, _ = prefix_keys(array)
    sliced, _ = prefix_keys(array.slice(2, 3))
    assert sliced.tolist() == whole[2:5].tolist()
    chunked, _ = prefix_keys(pa.chunked_array([array.slice(0, 2), array.slice(2)]))
    assert chunked.tolist() == whole.tolist()


@pytest.mark.parametrize("prefix", ["abcd", "abcdef012345", "ab", "zzzzzzzzzz"])
def test_a_prefix_range_holds_exactly_the_ids_that_start_with_it(prefix):
    rng = np.random.default_rng(1)
    ids = [bytes(rng.choice(list(b"abcdef0123z"), 12)).decode() for _ in range(3000)]
    ids += [prefix + "0", prefix, prefix + "ffff", prefix[:-1]]
    keys, _ = prefix_keys(pa.array(ids))
    low, high = prefix_range(prefix)
    in_range = {i for i, k in zip(ids, keys, strict=True) if low <= int(k) <= high}
    starting = {i for i in ids if i.startswith(prefix)}
    assert starting <= in_range  # the lookup never misses one...
    if len(prefix) <= 8:  # ...and up to 8 bytes the range is exact
        assert in_range == starting


def test_text_hashes_are_fixed_values_independent_of_batching():
    # The definition is part of the ledger format: pinned, so a change is seen.
    assert key_of("lookup_source_key", "abc") == 14790025714645261829
    assert key_of("lookup_source_key", "f.jsonl:1") == 2429522249110647520
    values = [f"file-{i % 97:05d}.jsonl:{i}" for i in range(5000)] + ["", "é", None]
    whole, valid = text_hashes(pa.array(values))
    assert valid.tolist() == [v is not None for v in values]
    parts = [text_hashes(pa.array(values[i : i + 777]))[0] for i in range(0, len(values), 777)]
    assert np.concatenate(parts).tolist() == whole.tolist()
    picked = [*range(50), len(values) - 3, len(values) - 2]  # and "", "é"
    one_by_one = [key_of("lookup_source_key", values[i]) for i in picked]
    assert one_by_one == whole[picked].tolist()
    assert len(set(whole[:5000].tolist())) == 5000  # distinct keys, distinct k


def test_one_key_in_python_equals_the_compiled_loops_on_any_text():
    rng = np.random.default_rng(3)
    alphabet = list("abcXYZ019:.-_ \x00éß€中文😀")
    values = [
        "".join(rng.choice(alphabet, int(rng.integers(0, 3000 if i % 10 == 0 else 40))))
        for i in range(300)
    ]
    for lookup, derive in (("lookup_record_id", prefix_keys), ("lookup_source_key", text_hashes)):
        whole, _ = derive(pa.array(values))
        assert [key_of(lookup, v) for v in values] == whole.tolist(), lookup
