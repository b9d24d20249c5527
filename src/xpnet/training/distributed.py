"""Data-parallel training on a Dask cluster: each worker holds a shard of the training rows, loaded there
(`shards`); each step sends it the weights and its rows of the batch, and this process adds the shards' sums in
shard order and updates the weights: the steps of one process. Importing this module imports Dask."""

import contextlib
import functools
import logging
import signal
import socket
import struct
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Any

import numpy as np
from distributed import Client, Future, KilledWorker, LocalCluster, utils, wait
from distributed.comm import parse_address, parse_host_port
from distributed.comm.core import CommClosedError

from ..backend import Backend, parse_device
from ..data import Dataset
from ..errors import BackendError, DataError, XpnetError, one_line
from ..nn import OPTIMIZERS, add_penalty
from .loop import BatchStep
from .model import TrainConfig
from .shards import DataSource, Shard, fingerprint, load_shard, shard_info, shard_sums

CONNECT_SECONDS = 5  # an address that does not answer within this is a mistake, not a slow network
WORKERS_SECONDS = 60  # how long to wait for a first worker to join, or for any worker to come back
MAX_HANDSHAKE = 1 << 16  # a scheduler's handshake is a few hundred bytes: this much of it is enough
POLL_SECONDS = 2.0  # while a step runs: how often to ask whether any worker is left


class ClusterError(XpnetError):
    """The cluster cannot be started or reached."""


class StepFailed(XpnetError):
    """A step could not be computed (its workers were lost); `loop.train` stops with the state before it."""

    exit_status = 1


@dataclass
class Cluster(contextlib.AbstractContextManager):
    """A Dask client, and the `LocalCluster` it started when it started one; closing closes both."""

    client: Client
    local: Any = None
    log_level: int | None = None  # the ``distributed`` logger's level before `connect` silenced it

    def workers(self) -> list[str]:
        """The workers' addresses, sorted, as the scheduler knows them now."""
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def __str__(self) -> str:
        kind = "a local cluster" if self.local is not None else "the cluster"
        return f"{len(self.workers())} Dask workers in {kind} at {self.client.scheduler.address}"

    def close(self) -> None:
        self.client.close(timeout=CONNECT_SECONDS)
        if self.local is not None:
            self.local.close(timeout=CONNECT_SECONDS)
        if self.log_level is not None:
            logging.getLogger("distributed").setLevel(self.log_level)
        # Dask's one offload thread outlives every client: a new pool (its thread starts on first use) ends it.
        offload, utils._offload_executor = utils._offload_executor, ThreadPoolExecutor(1, "Dask-Offload")
        offload.shutdown()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_local(n_workers: int, device: str = "cpu") -> Cluster:
    """``n_workers`` processes of one thread on 127.0.0.1, pages on a free port, logs silenced; with ``device`` cuda,
    dask-cuda's (one worker per GPU, each its own)."""
    options = dict(dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL, threads_per_worker=1)
    make = functools.partial(LocalCluster, processes=True, host="127.0.0.1")
    if parse_device(device)[0] == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise BackendError("a local cluster on cuda needs dask-cuda: pip install dask-cuda") from None
        make = functools.partial(LocalCUDACluster, protocol="tcp", ip="127.0.0.1")
    # Ctrl-C is held back while the workers start (one interrupted in its start cannot be closed): blocked here, it
    # stays blocked in the threads and worker processes the cluster starts, for life, and the recording handler
    # takes it from other threads meanwhile. The resource tracker, which would unblock it here, starts first.
    hold = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    held: list[int] = []
    if hold:
        resource_tracker.ensure_running()
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        local = make(n_workers=n_workers, **options)
        cluster = Cluster(Client(local), local)
    finally:
        if hold:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # calls the recording handler for a pending one
            signal.signal(signal.SIGINT, previous)
    try:
        if held:  # now the caller's handler has it
            signal.raise_signal(signal.SIGINT)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _speaks_first(host_port: tuple[str, int], timeout: float) -> None:
    """Raise unless ``host_port`` sends a whole first message (8-byte length, then that many bytes) in ``timeout``."""
    deadline, data = time.monotonic() + timeout, b""
    with socket.create_connection(host_port, timeout=timeout) as s:
        while len(data) < 8 or len(data) < 8 + min(struct.unpack("Q", data[:8])[0], MAX_HANDSHAKE):
            s.settimeout(max(deadline - time.monotonic(), 1e-3))
            if not (chunk := s.recv(1 << 16)):
                raise ConnectionError("it closed the connection")
            data += chunk


def connect(address: str, timeout: float = CONNECT_SECONDS) -> Cluster:
    """A client of the scheduler at ``address``, with at least one worker; `ClusterError` when it does not answer."""
    # Silenced until the cluster closes: its reconnection attempts log tracebacks, where our one line says enough.
    logger = logging.getLogger("distributed")
    with contextlib.ExitStack() as undo:
        undo.callback(logger.setLevel, level := logger.level)
        logger.setLevel(logging.CRITICAL)
        try:
            scheme, location = parse_address(address)
            if scheme == "tcp":
                _speaks_first(parse_host_port(location), timeout)  # Dask waits for ever on a handshake cut short
            cluster = undo.enter_context(Cluster(Client(address, timeout=timeout), log_level=level))
        except Exception as e:  # whatever answers there (nothing, a web server, a typo) is not a Dask scheduler
            raise ClusterError(
                f"cannot reach a Dask scheduler at {address} ({one_line(e)}): give the address `dask scheduler` "
                "prints, like tcp://10.0.0.5:8786, or a number of {name} for a cluster on this machine",
                parameter="workers",
            ) from None
        try:
            cluster.client.wait_for_workers(1, timeout=WORKERS_SECONDS)
        except TimeoutError:
            raise ClusterError(
                f"the Dask scheduler at {address} has no workers after {WORKERS_SECONDS} s: start some with "
                f"`dask worker {address}`"
            ) from None
        undo.pop_all()  # the cluster's to close now
    return cluster


def shard_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ranges covering rows ``0..n``, their sizes differing by at most one."""
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


class DaskSteps:
    """A `loop.StepSource`: gradients from the workers of ``cluster``, which load the training rows from ``source``
    (without one, each shard is sent from here: a shard lost with its worker then stops the run)."""

    def __init__(self, cluster: Cluster, source: DataSource | None = None, device="cpu", backend=None):
        self.cluster, self.source, self.device, self.backend = cluster, source, device, backend
        self.worker_backend, self.workers = "", None  # what the workers compute with, and how many: known once loaded

    def __call__(self, backend: Backend, data: Dataset, config: TrainConfig, sizes, fast) -> BatchStep:
        client, xp, workers = self.cluster.client, backend.xp, self.cluster.workers()
        bounds = shard_bounds(data.y_train.shape[0], len(workers))
        how = (self.device, self.backend, config.dtype, data.n_classes)
        shards = []
        for (lo, hi), worker in zip(bounds, workers):  # one shard per worker, free to move
            if self.source is None:
                shard = Shard(data.x_train[lo:hi], data.y_train[lo:hi], *how)
                shards.append(client.scatter(shard, workers=[worker], hash=False))
            else:
                where = dict(workers=[worker], allow_other_workers=True)
                shards.append(client.submit(load_shard, self.source, lo, hi, *how, **where))
        infos = self._gather([client.submit(shard_info, s, pure=False) for s in shards], 0)
        for (lo, hi), (mark, _) in zip(bounds, infos):
            if mark != fingerprint(data.x_train[lo:hi], data.y_train[lo:hi]):
                raise DataError(
                    f"a Dask worker read other training rows {lo}..{hi} of {data.name} than this process: give every "
                    "worker the same data files at the same path ({name})",
                    parameter="data_dir",
                )
        self.worker_backend = infos[0][1]
        self.workers = f"{self.worker_backend}, {len(workers)} Dask workers"
        update = OPTIMIZERS[config.optimizer].update
        sums = functools.partial(client.submit, shard_sums, activation=config.activation, pure=False)

        def batch_step(params, opt_state, rows, step, lr):
            rows, host = np.asarray(backend.to_numpy(rows)), [backend.to_numpy(p) for p in params]
            # Each shard's rows of the batch (a small batch may miss a shard), their sums added in shard order: the
            # same run whichever worker answers first.
            mine = [(shard, rows[(rows >= lo) & (rows < hi)] - lo) for (lo, hi), shard in zip(bounds, shards)]
            losses, counts, grads = zip(*self._gather([sums(s, host, r, len(rows)) for s, r in mine if r.size], step))
            grads = add_penalty(params, [backend.asarray(sum(g)) for g in zip(*grads)], config.alpha, rows.size)
            params, opt_state = update(xp, params, grads, opt_state, step, lr, config.recipe.hyper)
            return params, opt_state, backend.asarray(sum(losses) / rows.size), backend.asarray(sum(counts))

        return batch_step

    def _gather(self, futures: list[Future], step: int) -> list[Any]:
        """The futures' results; `StepFailed` when the cluster lost them or has had no worker for too long."""
        client, without = self.cluster.client, 0.0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    wait(futures, timeout=POLL_SECONDS)
                    break
                alive = False  # still running: fine, unless nobody is left to run it
                with contextlib.suppress(OSError):  # the scheduler is unreachable too: the client cancels soon
                    alive = bool(client.scheduler_info()["workers"])
                without = 0.0 if alive else without + POLL_SECONDS
                if without >= WORKERS_SECONDS:
                    raise StepFailed(f"no Dask worker left for {WORKERS_SECONDS} s at step {step}") from None
            return client.gather(futures)
        except (CancelledError, KilledWorker, CommClosedError) as e:  # gone for good (dropped, or killed workers)
            why = one_line(e, named=True, limit=160)
            if "scheduler-connection-lost" in str(e) or isinstance(e, CommClosedError):
                why = "the connection to the scheduler was lost"
            raise StepFailed(f"the Dask cluster lost step {step}: {why}") from None
