"""Where a stage's per-record work runs: in this process and its worker pool, or on Ray.

The engine section of params.yaml picks one; ``map_batches`` is the one way a stage hands out
batches. A stage passes the same batch function to either engine, so both give the same
results in the same order. Only the results come back: the driver, never a worker, writes
outputs and the ledger.

Ray is imported only when the engine is ``ray``; it is no runtime dependency of the project.
"""

import hashlib
import multiprocessing
import pickle
import signal
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator
from threadpoolctl import threadpool_limits

from resources.core.config import Section

T = TypeVar("T")
R = TypeVar("R")


class EngineConfig(Section):
    """The engine section of params.yaml."""

    kind: Literal["local", "ray"] = "local"
    """local: this process (and a stage's own worker pool, e.g. pii.workers); ray: Ray tasks."""
    address: str | None = None
    """The Ray cluster to join, as ray.init(address=...) takes it (e.g. ray://head:10001);
    unset: a local Ray is started for the run."""
    num_cpus: int | None = Field(None, ge=1)
    """CPUs of the local Ray started for the run; unset: all of this machine's."""

    @model_validator(mode="after")
    def _num_cpus_is_for_a_local_ray(self) -> "EngineConfig":
        if self.address is not None and self.num_cpus is not None:
            raise ValueError("num_cpus sizes a local Ray; a cluster at an address has its own")
        return self


LOCAL = EngineConfig()


class EngineError(RuntimeError):
    """The configured engine cannot run here (e.g. ray is not installed)."""


def map_batches(
    fn: Callable[[T], R],
    batches: Iterable[T],
    engine: EngineConfig = LOCAL,
    *,
    init: Callable[..., None] | None = None,
    init_args: tuple = (),
    workers: int = 1,
    start_method: str = "fork",
) -> list[R]:
    """fn applied to every batch, results in the batches' order.

    init(*init_args) prepares a worker process once (e.g. sets a module global that fn reads):
    on the local engine once in each of ``workers`` pool processes, or once in this process
    when workers <= 1; on Ray once per Ray worker process, however many tasks it runs.
    ``workers`` and ``start_method`` are the local pool's; Ray uses its cluster's CPUs.
    """
    if engine.kind == "ray":
        return _map_on_ray(fn, batches, engine, init, init_args)
    if workers <= 1:
        if init is not None:
            init(*init_args)
        return [fn(batch) for batch in batches]
    ctx = multiprocessing.get_context(start_method)
    pool = ctx.Pool(workers, initializer=_pool_initializer, initargs=(init, init_args))
    try:
        results = list(pool.imap(fn, batches))
        pool.close()  # let workers finish and exit on their own
        return results
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def parallelism(engine: EngineConfig, workers: int = 1) -> int:
    """How many batches run at once: the local pool's workers, or the Ray cluster's CPUs."""
    if engine.kind == "local":
        return max(1, workers)
    ray = connect(engine)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def batch_rows(rows: int, engine: EngineConfig, most: int) -> int:
    """Rows per batch for ``rows`` rows: at most ``most``, and on Ray few enough that every CPU
    of the cluster gets a batch. The local engine runs its batches one after another, so
    there only ``most`` bounds them."""
    if engine.kind == "local" or rows == 0:
        return max(1, most)
    return max(1, min(most, -(-rows // parallelism(engine))))


def _pool_initializer(init: Callable[..., None] | None, init_args: tuple) -> None:
    # A forked worker inherits the parent's handlers (Dagster's raise on SIGTERM/SIGINT).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # The pool has a worker per core; a worker's OpenBLAS must not start a thread per core too
    # (Ray's workers get OMP_NUM_THREADS=1 from Ray).
    threadpool_limits(1, user_api="blas")
    if init is not None:
        init(*init_args)


# --------------------------------------------------------------------------- ray


def connect(engine: EngineConfig) -> Any:
    """The ray module, connected to engine.address or to a local Ray started for this process.

    A process connects once; Ray shuts its local instance down when the process exits.
    """
    try:
        import ray
    except ImportError:
        raise EngineError(
            "engine.kind is 'ray' but the ray package is not installed "
            "(pip install ray, or the project's dev extra)"
        ) from None
    if ray.is_initialized():
        return ray
    if engine.address is not None:
        ray.init(address=engine.address)
        return ray
    ray.init(num_cpus=engine.num_cpus, include_dashboard=False)
    return ray


_prepared: str | None = None
"""The init (by key) this Ray worker process last ran; tasks with the same key reuse it."""


def _run_task(
    fn: Callable[[T], R], init: Callable[..., None] | None, init_args: tuple, key: str, batch: T
) -> R:
    global _prepared
    if init is not None and _prepared != key:
        init(*init_args)
        _prepared = key
    return fn(batch)


def _map_on_ray(
    fn: Callable[[T], R],
    batches: Iterable[T],
    engine: EngineConfig,
    init: Callable[..., None] | None,
    init_args: tuple,
) -> list[R]:
    ray = connect(engine)
    key = hashlib.sha256(pickle.dumps((init, init_args))).hexdigest()
    task = ray.remote(_run_task)
    args = ray.put(init_args)  # shipped to the cluster once, not with every task
    refs = [task.remote(fn, init, args, key, batch) for batch in batches]
    return ray.get(refs)
