"""A library call leaves no trace (issue 31): training on a local Dask cluster, whether the run returns, raises
or is stopped by Ctrl-C, leaves the caller's process with the threads and signal handlers it had."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from helpers import Hooks
from xpnet.backend import resolve_backend
from xpnet.errors import DataError
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig

DEADLINE = 30  # generous: Dask's own shutdown takes a second or two


def handlers() -> dict[signal.Signals, object]:
    return {s: signal.getsignal(s) for s in signal.valid_signals()}


def ctrl_c(epoch: int, rows: int, loss) -> None:
    signal.raise_signal(signal.SIGINT)  # as a terminal's Ctrl-C reaches the caller: KeyboardInterrupt


@pytest.mark.parametrize(
    ("how", "raises"),
    [
        ("returns", None),
        pytest.param("raises", DataError, marks=pytest.mark.slow),
        pytest.param("ctrl-c", KeyboardInterrupt, marks=pytest.mark.slow),
    ],
)
def test_a_run_on_a_local_cluster_leaves_no_thread_and_no_signal_handler(how, raises):
    pytest.importorskip("distributed", reason='Dask is an optional extra: pip install -e ".[dask]"')
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    from xpnet.data import load_dataset
    from xpnet.training.distributed import DaskSteps, start_local
    from xpnet.training.shards import DataSource

    data, config = load_dataset("digits"), TrainConfig(hidden_layer_sizes=(8,), max_iter=1, batch_size=200)
    source = DataSource("digits", val_split=100 if how == "raises" else 0)  # "raises": the workers read other rows
    callbacks = [Hooks(on_step=ctrl_c)] if how == "ctrl-c" else []
    threads, before = set(threading.enumerate()), handlers()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, []) if hasattr(signal, "pthread_sigmask") else None
    try:
        with start_local(2) as cluster:
            train(resolve_backend("cpu", "numpy"), data, config, steps=DaskSteps(cluster, source), callbacks=callbacks)
    except BaseException as e:
        assert raises is not None and isinstance(e, raises), e
    else:
        assert raises is None
    deadline = time.monotonic() + DEADLINE
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(t.name for t in set(threading.enumerate()) - threads) == []
    assert handlers() == before
    if mask is not None:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
