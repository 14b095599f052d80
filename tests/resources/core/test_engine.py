import os
import sys
from collections import Counter

import pytest
from pydantic import ValidationError

from resources.core.engine import LOCAL, EngineConfig, EngineError, batch_rows, map_batches

_inits: Counter = Counter()
"""init calls per process: tasks report it, so a test sees how often a worker was prepared."""
_offset = 0


def _prepare(offset: int) -> None:
    global _offset
    _offset = offset
    _inits[os.getpid()] += 1


def _shift(batch: list[int]) -> tuple[list[int], int, int]:
    return [x + _offset for x in batch], os.getpid(), _inits[os.getpid()]


BATCHES = [[i, i + 1] for i in range(0, 40, 2)]
SHIFTED = [[x + 100 for x in batch] for batch in BATCHES]


def test_inline_keeps_order_and_prepares_this_process_once():
    before = _inits[os.getpid()]
    done = map_batches(_shift, iter(BATCHES), init=_prepare, init_args=(100,))
    assert [values for values, _, _ in done] == SHIFTED
    assert {pid for _, pid, _ in done} == {os.getpid()}
    assert _inits[os.getpid()] == before + 1


def test_a_local_pool_keeps_order_and_prepares_each_worker_once():
    done = map_batches(_shift, BATCHES, init=_prepare, init_args=(100,), workers=2)
    assert [values for values, _, _ in done] == SHIFTED
    assert {pid for _, pid, _ in done} - {os.getpid()}
    assert {inits for _, _, inits in done} == {1}


def test_ray_without_ray_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(EngineError, match="ray package is not installed"):
        map_batches(_shift, BATCHES, EngineConfig(kind="ray"))


def test_num_cpus_is_refused_beside_an_address():
    with pytest.raises(ValidationError, match="num_cpus sizes a local Ray"):
        EngineConfig(kind="ray", address="ray://head:10001", num_cpus=2)


def test_ray_keeps_order_and_prepares_each_worker_process_once(ray_engine):
    done = map_batches(_shift, BATCHES, ray_engine, init=_prepare, init_args=(100,))
    assert [values for values, _, _ in done] == SHIFTED
    workers = {pid for _, pid, _ in done}
    assert os.getpid() not in workers and len(workers) < len(BATCHES)
    assert {inits for _, _, inits in done} == {1}


def test_local_batches_are_bounded_by_the_caller_ray_batches_by_the_cluster_too(ray_engine):
    assert batch_rows(10, LOCAL, most=4) == 4
    assert batch_rows(10, LOCAL, most=100) == 100  # one batch: this process runs them in turn
    assert batch_rows(10, ray_engine, most=100) == 5  # one per CPU of the 2-CPU local Ray
    assert batch_rows(10, ray_engine, most=3) == 3
    assert batch_rows(0, ray_engine, most=0) == 1


def _blas_threads(_: int) -> list[int]:
    import numpy  # noqa: F401  (its OpenBLAS is what a worker multiplies with)
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_local_pool_worker_multiplies_on_one_thread():
    threads = map_batches(_blas_threads, [0, 1], workers=2)
    assert all(threads) and all(n == [1] * len(n) for n in threads)
