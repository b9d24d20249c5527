"""The cost of a data-parallel step on a Dask `LocalCluster`, against the same step in one process.

For each batch size and worker count it times xpnet's own step functions on one fixed batch (the 784-256-128-10
relu model, Adam, float32 by default): ``local_steps`` (one process, no Dask) and
``training.distributed.DaskSteps`` (shards on N worker processes), and a bare round trip, the same tasks
returning gradient-sized arrays without computing, which is the price of the parameters out and the
gradients back. Medians of ``--repeats`` steps after two discarded ones. Fashion-MNIST's 60,000 training
images when Debian's package is installed, else scikit-learn's digits.

Run from the repository root: ``PYTHONPATH=src python scripts/bench_dask.py [--workers 1,2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from xpnet.backend import resolve_backend
from xpnet.data import load_dataset
from xpnet.data.load import SYSTEM_DIRS, find_idx_files
from xpnet.nn import layer_sizes
from xpnet.training.distributed import DaskSteps, start_local
from xpnet.training.loop import local_steps
from xpnet.training.model import TrainConfig, initial_state
from xpnet.training.shards import DataSource


def echo(shard, params, rows, batch_rows, activation):
    """A step's traffic without its arithmetic: gradient-sized arrays back for the parameters sent."""
    return np.zeros((), params[0].dtype), np.zeros((), np.int64), [np.zeros_like(p) for p in params]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(2):  # warm-up: first touches, first transfers
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default: 1,2)")
    p.add_argument("--batch-sizes", default="256,1024,4096,0", help="0: the whole training set (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args()

    name = "fashion-mnist" if find_idx_files(SYSTEM_DIRS["fashion-mnist"]) else "digits"
    data = load_dataset(name)
    backend = resolve_backend("cpu", "numpy")
    n = data.y_train.shape[0]
    rows_all = np.random.default_rng(0).permutation(n)
    batches = [int(b) or n for b in args.batch_sizes.split(",")]
    results = []

    def row(batch: int, kind: str, workers: int, seconds: float) -> None:
        results.append({"batch": batch, "kind": kind, "workers": workers, "ms_per_step": 1e3 * seconds})
        print(f"batch {batch:6d}  {kind:10s} workers {workers}  {1e3 * seconds:9.2f} ms/step", flush=True)

    def timed_step(steps, config) -> Callable[[], object]:
        sizes = layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes)
        state = initial_state(backend, sizes, config)
        step = steps(backend, data, config, sizes, True)
        rows = rows_all[: config.batch_size or n]
        return lambda: step(state.params, state.opt_state, rows, 1, 1e-3)

    for batch in batches:
        config = TrainConfig(batch_size=batch, dtype=args.dtype)
        row(batch, "one process", 0, median_seconds(timed_step(local_steps, config), args.repeats))
    for workers in (int(w) for w in args.workers.split(",")):
        with start_local(workers) as cluster:
            steps = DaskSteps(cluster, DataSource(name))
            for batch in batches:
                config = TrainConfig(batch_size=batch, dtype=args.dtype)
                row(batch, "dask step", workers, median_seconds(timed_step(steps, config), args.repeats))
                trip = round_trip(cluster, steps, config, data)
                row(batch, "round trip", workers, median_seconds(trip, args.repeats))
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "dataset": name, "dtype": args.dtype, "rows": n}
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


def round_trip(cluster, steps: DaskSteps, config: TrainConfig, data) -> Callable[[], object]:
    """Submit `echo` to each worker with the parameters and gather: the step's traffic, no arithmetic."""
    backend = resolve_backend("cpu", "numpy")
    sizes = layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes)
    params = [backend.to_numpy(p) for p in initial_state(backend, sizes, config).params]
    client, workers = cluster.client, cluster.workers()

    def go():
        futures = [client.submit(echo, None, params, None, 0, "", workers=[w], pure=False) for w in workers]
        return steps._gather(futures, 0)

    return go


if __name__ == "__main__":
    main()
