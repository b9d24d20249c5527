"""``--workers`` and ``--scheduler``: train data-parallel on a Dask cluster (``xpnet.training.distributed``).

Dask is an optional extra, imported only when one of the flags (or ``$XPNET_SCHEDULER``) asks for a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..backend import Backend, parse_device, resolve_backend, spec
from ..data import Dataset
from ..errors import XpnetError
from ..training.loop import BatchStep, StepSource, local_steps, workers_of
from .common import positive_int

SCHEDULER_ENV = "XPNET_SCHEDULER"
INSTALL = 'pip install "xpnet[dask]"'


def worker_count(text: str) -> int:
    """``--workers N``: one process per worker, so at most one per CPU core of this machine."""
    n, cores = positive_int(text), os.cpu_count() or 1
    if n > cores:
        raise argparse.ArgumentTypeError(f"must be at most {cores}, the CPU cores of this machine, got {text}")
    return n


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=None,
        metavar="N",
        help="train data-parallel on a Dask cluster of N worker processes started on this machine "
        f"(needs {INSTALL}; see docs/distributed.md)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDR",
        help=f"train data-parallel on the Dask cluster whose scheduler is at ADDR, like tcp://10.0.0.5:8786 "
        f"(default: ${SCHEDULER_ENV}; needs {INSTALL})",
    )


def scheduler_address(args: argparse.Namespace) -> str | None:
    """The scheduler to use: ``--scheduler``, else ``$XPNET_SCHEDULER`` unless ``--workers`` asks for a local one."""
    if args.scheduler is not None and args.workers is not None:
        raise XpnetError("give --workers N (a cluster on this machine) or --scheduler ADDR (an existing one), not both")
    if args.scheduler is not None or args.workers is not None:
        return args.scheduler
    return os.environ.get(SCHEDULER_ENV) or None


def wanted(args: argparse.Namespace) -> bool:
    """Whether the run trains on a cluster (--workers with --scheduler is refused first, Dask or not)."""
    return scheduler_address(args) is not None or args.workers is not None


def client_backend(args: argparse.Namespace) -> Backend:
    """Where the updates happen: this process's ``--device``, or NumPy when Dask workers compute (they resolve
    the flags on their own machines: here only their spelling, and that Dask is installed, are checked)."""
    if not wanted(args):
        return resolve_backend(args.device, args.backend)
    try:
        import distributed  # noqa: F401  (only whether the extra is there; training.distributed imports it)
    except ImportError:
        raise XpnetError(f"--workers and --scheduler need Dask, which is not installed: {INSTALL}") from None
    parse_device(args.device)
    if args.backend is not None:
        spec(args.backend)
    return resolve_backend("cpu", "numpy")


@contextlib.contextmanager
def cluster_steps(
    args: argparse.Namespace, data: Dataset, val_split: int, ready: Callable[[str | None], None]
) -> Iterator[StepSource]:
    """The run's step source: `local_steps`, or steps on a Dask cluster that is open while this is entered.

    ``ready(workers)`` is called as soon as `loop.workers_of` the source is known: at once (None) in one
    process; on a cluster, once the workers have loaded their shards, before the first step.
    """
    if not wanted(args):
        ready(None)
        yield local_steps
        return
    from ..training import distributed as dist
    from ..training.shards import DataSource

    # Workers reload the rows from the same files: the folder this process read them from, made absolute.
    folder = str(Path(data.source).resolve()) if data.name != "digits" and data.source else None
    source = DataSource(data.name, folder, val_split, data.layout.side if data.layout is not None else None)
    address, device = scheduler_address(args), args.device
    if address is None and parse_device(device)[0] == "auto":
        # Local workers each resolving "auto" would all take GPU 0: decide here, once, as one process would,
        # and start one worker per GPU (dask-cuda) when that means CUDA.
        device = "cuda" if resolve_backend("auto", args.backend).device_name.startswith("cuda") else "cpu"
    with dist.connect(address) if address is not None else dist.start_local(args.workers, device) as cluster:
        steps = dist.DaskSteps(cluster, source, device, args.backend)

        def announced(*how: Any) -> BatchStep:
            step = steps(*how)  # loads the shards: now the workers' backend is known
            announced.workers = workers_of(steps)
            print(f"dask: {cluster}, each computing with {steps.worker_backend}; this process adds their "
                  "gradients and updates the weights", flush=True)  # fmt: skip
            ready(announced.workers)
            return step

        announced.workers = None
        yield announced
