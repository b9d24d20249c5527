"""Data-parallel training on real Dask clusters on 127.0.0.1 equals one process, survives a killed worker,
stops with a checkpoint that resumes when its scheduler dies, and costs nothing (no import) when not asked for.

Two kinds of cluster: a `LocalCluster` started in this process, and a real cluster in miniature (a ``dask
scheduler`` and two ``dask worker`` processes) reached by address. Both run 2 worker processes of one thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers import Hooks, StopAfter
from xpnet.backend import resolve_backend
from xpnet.cli.common import run as run_cli
from xpnet.train import main, train_saving
from xpnet.training.loop import LocalSteps, train
from xpnet.training.model import Model, TrainConfig, load, save

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
NUMPY = resolve_backend("cpu", "numpy")
SGD_FULL = TrainConfig(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.5, batch_size=0, max_iter=4,
                       dtype="float64", random_state=3)  # fmt: skip
ADAM_MINI = TrainConfig(hidden_layer_sizes=(32, 16), solver="adam", batch_size=100, max_iter=2, dtype="float64",
                        random_state=4)  # fmt: skip
TOLERANCE = 1e-10  # float64: only the order of the sums over shards differs from one process
# --gamma 1: the straight runs below use a constant rate (the default decays by the number of images).
DIGITS = ["--dataset", "digits", "--device", "cpu", "--hidden", "32,16", "--dtype", "float64", "--quiet"]
DIGITS += ["--gamma", "1"]


def needs_dask() -> None:
    pytest.importorskip("distributed", reason='Dask is an optional extra: pip install -e ".[dask]"')


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    from xpnet.data import load_dataset

    return load_dataset("digits")


def assert_equal_runs(got, want) -> None:
    """Every weight and optimizer array within `TOLERANCE`, the same counters and the same epoch statistics."""
    assert (got.epoch, got.step, got.offset) == (want.epoch, want.step, want.offset)
    arrays = list(zip(got.params, want.params)) + list(zip(got.opt_state, want.opt_state))
    assert len(arrays) == len(want.params) + len(want.opt_state)
    for a, b in arrays:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.max(np.abs(a - b)) <= TOLERANCE
    assert [s.train_accuracy for s in got.history] == [s.train_accuracy for s in want.history]
    assert np.allclose([s.loss for s in got.history], [s.loss for s in want.history], rtol=0, atol=TOLERANCE)


def dask_steps(cluster):
    from xpnet.training.distributed import DaskSteps
    from xpnet.training.shards import DataSource

    return DaskSteps(cluster, DataSource("digits"))


# ---- without Dask, or without asking for it ---------------------------------------------------------------

PROBE = """
import json, sys
import xpnet.train
assert xpnet.train.main(["--device", "cpu", "--dataset", "digits", "--epochs", "1", "--hidden", "8", "--quiet"]) == 0
print(json.dumps(sorted(m for m in ("dask", "distributed") if m in sys.modules)))
"""


def test_training_without_the_flags_never_imports_dask():
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    env = {k: v for k, v in ENV.items() if k != "XPNET_SCHEDULER"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_a_checkpoint_records_what_computed_the_steps(digits, tmp_path):
    """The step source's `workers` (Dask workers, on a cluster) goes into each checkpoint it saves."""

    class Elsewhere(LocalSteps):
        def __call__(self, *how):
            self.workers = "numpy on cpu, 3 far-away workers"  # known once the step is made, as on a cluster
            return super().__call__(*how)

    path, config = tmp_path / "m.npz", replace(ADAM_MINI, max_iter=1)
    train_saving(Model.of_data(config, None, NUMPY, digits), digits, path, steps=Elsewhere())
    assert load(path).workers == "numpy on cpu, 3 far-away workers"
    train_saving(Model.of_data(config, None, NUMPY, digits), digits, path)
    assert load(path).workers is None


def test_workers_without_dask_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what a missing package looks like to import
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [*DIGITS, "--workers", "2"], prog="xpnet.train")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "xpnet[dask]"' in err


def test_workers_and_scheduler_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [*DIGITS, "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], prog="xpnet.train")
    assert exit_.value.code == 2
    assert "argument --scheduler: not allowed with argument --workers" in capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_line_and_exit_2():
    needs_dask()
    address = f"tcp://127.0.0.1:{closed_port()}"
    argv = [sys.executable, "-m", "xpnet.train", *DIGITS, "--scheduler", address]
    out = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and f"cannot reach a Dask scheduler at {address}" in out.stderr


def test_a_silent_listener_is_not_waited_for():
    """A port that accepts connections and never speaks (a hung machine, a firewall) fails after the timeout."""
    needs_dask()
    from xpnet.training.distributed import ClusterError, connect

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(ClusterError, match="cannot reach a Dask scheduler"):
            connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=1)


def test_shards_cover_every_row_once():
    needs_dask()
    from xpnet.training.distributed import shard_bounds

    for n, k in [(10, 3), (1438, 2), (5, 5), (7, 1)]:
        bounds = shard_bounds(n, k)
        assert [lo for lo, _ in bounds] == [0] + [hi for _, hi in bounds[:-1]] and bounds[-1][1] == n
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


# ---- a LocalCluster ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_cluster():
    needs_dask()
    from xpnet.training.distributed import start_local

    with start_local(2) as cluster:
        yield cluster


@pytest.mark.slow  # starts a cluster of 2 processes: seconds on 2 shared cores
@pytest.mark.parametrize("config", [SGD_FULL, ADAM_MINI], ids=["sgd-full-batch", "adam-batch-100"])
def test_two_local_workers_equal_one_process(local_cluster, digits, config):
    assert_equal_runs(train(NUMPY, digits, config, steps=dask_steps(local_cluster)), train(NUMPY, digits, config))


@pytest.mark.slow
def test_shards_sent_from_this_process_give_the_same_run(local_cluster, digits):
    """Data with no source to reload it from (built in memory) is scattered to the workers once instead."""
    from xpnet.training.distributed import DaskSteps

    got = train(NUMPY, digits, SGD_FULL, steps=DaskSteps(local_cluster))
    assert_equal_runs(got, train(NUMPY, digits, SGD_FULL))


@pytest.mark.slow
def test_workers_that_read_other_rows_stop_the_run_before_step_one(local_cluster, digits):
    from xpnet.errors import DataError
    from xpnet.training.distributed import DaskSteps
    from xpnet.training.shards import DataSource

    steps = DaskSteps(local_cluster, DataSource("digits", val_split=100))  # the workers hold 100 rows out
    with pytest.raises(DataError, match="same data files"):
        train(NUMPY, digits, SGD_FULL, steps=steps)


@pytest.mark.slow
def test_checkpoints_resume_across_the_two_modes(local_cluster, digits, tmp_path):
    config = ADAM_MINI
    straight = train(NUMPY, digits, config)
    # Stopped mid-epoch on the cluster, saved, resumed in one process...
    stopped = train(NUMPY, digits, config, steps=dask_steps(local_cluster), callbacks=[StopAfter(9)])
    assert stopped.stopped and stopped.offset == 900
    path = save(Model.of_data(config, stopped, NUMPY, digits), tmp_path / "d.npz")
    assert_equal_runs(train(NUMPY, digits, config, state=load(path).state), straight)
    # ...and the other way round, from a checkpoint between epochs.
    first = train(NUMPY, digits, replace(config, max_iter=1))
    path = save(Model.of_data(config, first, NUMPY, digits), tmp_path / "s.npz")
    resumed = train(NUMPY, digits, config, state=load(path).state, steps=dask_steps(local_cluster))
    assert_equal_runs(resumed, straight)


@pytest.mark.slow
def test_a_killed_worker_costs_time_not_correctness(local_cluster, digits):
    """The lost shard is recomputed from its data source; the run ends with the same weights."""
    pids = local_cluster.client.run(os.getpid)
    killed = []

    def kill_one(epoch: int, rows: int, loss) -> None:
        if epoch == 1 and rows >= 500 and not killed:
            address, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(address)

    got = train(NUMPY, digits, ADAM_MINI, steps=dask_steps(local_cluster), callbacks=[Hooks(on_step=kill_one)])
    assert killed and not got.stopped
    assert_equal_runs(got, train(NUMPY, digits, ADAM_MINI))


@pytest.mark.slow  # starts its own cluster of 2 processes
def test_the_log_header_and_the_checkpoint_name_what_the_workers_computed_with(digits, tmp_path, capsys):
    needs_dask()
    ckpt, log = tmp_path / "w.npz", tmp_path / "w.jsonl"
    assert main([*DIGITS, "--workers", "2", "--epochs", "1", "--save", str(ckpt), "--log", str(log), "--json"]) == 0
    out, err = capsys.readouterr()
    workers = json.loads(out.strip().splitlines()[-1])["workers"]
    assert err.count("slower than one process") == 1 and err.startswith("--workers 2: ")  # said once, on stderr
    header = json.loads(log.read_text().splitlines()[0])
    assert workers == "numpy on cpu, 2 Dask workers"
    assert header["type"] == "run" and header["workers"] == load(ckpt).workers == workers
    # Resumed in one process: the opening line names the workers; this run's header and checkpoint name none.
    assert main(["--resume", str(ckpt), "--epochs", "2", "--save", str(ckpt), "--log", str(log)]) == 0
    out, err = capsys.readouterr()
    assert f"gradients from {workers})" in out and "slower" not in err  # one process: no word of Dask's cost
    headers = [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "run"]
    assert [h["workers"] for h in headers] == [workers, None] and load(ckpt).workers is None


@pytest.mark.slow  # a subprocess that starts its own cluster
def test_ctrl_c_in_a_terminal_stops_after_the_step_and_saves(digits, tmp_path):
    """A terminal's Ctrl-C signals the whole process group, local workers included: they must not die of it."""
    needs_dask()
    ckpt = tmp_path / "c.npz"
    argv = [sys.executable, "-m", "xpnet.train", *DIGITS, "--workers", "2", "--epochs", "500", "--save", str(ckpt)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)  # fmt: skip
    try:
        line = "-"
        while line and not line.startswith("dask:"):  # printed once the shards are loaded, before step 1
            line = proc.stdout.readline()  # bounded: "" once the process has ended
        assert line, proc.stderr.read()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert f"checkpoint saved to {ckpt}" in out and "Traceback" not in err
    assert load(ckpt).state.epoch == 0  # stopped within the first epoch, perhaps before its first step


# ---- a real cluster in miniature: `dask scheduler` and `dask worker` processes, reached by address -----------


@contextlib.contextmanager
def real_cluster(folder: Path, n_workers: int = 2) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start a scheduler and workers on 127.0.0.1 (random ports), yield (address, scheduler), stop them all."""
    needs_dask()
    file = folder / "scheduler.json"
    started = []
    python = [sys.executable, "-m"]
    # No nanny, so that each process started here is a worker that stopping it stops; --death-timeout: should
    # this test die before its cleanup, the workers leave on their own.
    worker = ["--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--no-nanny", "--death-timeout", "60"]
    worker += ["--local-directory", str(folder)]

    def spawn(argv: list[str]) -> subprocess.Popen:
        started.append(subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return started[-1]

    try:
        scheduler = spawn([*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                           "--no-dashboard", "--scheduler-file", str(file)])  # fmt: skip
        deadline = time.monotonic() + 60
        while not file.exists() and scheduler.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for _ in range(n_workers):
            spawn([*python, "distributed.cli.dask_worker", address, *worker])
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address, scheduler
    finally:  # killed, not asked to close: a worker whose scheduler is gone would wait for it first
        for proc in started:
            proc.kill()
        for proc in started:
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster_address(tmp_path_factory):
    with real_cluster(tmp_path_factory.mktemp("dask")) as (address, _):
        yield address


@pytest.mark.slow
def test_a_cluster_by_address_equals_one_process_and_resumes_either_way(
    cluster_address, digits, tmp_path, capsys, monkeypatch
):
    from xpnet.training.distributed import connect

    with connect(cluster_address) as cluster:
        assert_equal_runs(train(NUMPY, digits, SGD_FULL, steps=dask_steps(cluster)), train(NUMPY, digits, SGD_FULL))
    # The command line: 1 epoch on the cluster, then epoch 2 in one process, then epoch 3 on the cluster again
    # (by $XPNET_SCHEDULER); the end equals 3 epochs straight in one process.
    ckpt = tmp_path / "run.npz"
    assert main([*DIGITS, "--scheduler", cluster_address, "--epochs", "1", "--save", str(ckpt), "--json"]) == 0
    out = capsys.readouterr().out
    assert "2 Dask workers in the cluster at" in out
    assert json.loads(out.strip().splitlines()[-1])["workers"] == "numpy on cpu, 2 Dask workers"
    resume = ["--resume", str(ckpt), "--device", "cpu", "--quiet", "--save", str(ckpt)]
    assert main([*resume, "--epochs", "2"]) == 0
    monkeypatch.setenv("XPNET_SCHEDULER", cluster_address)
    assert main([*resume, "--epochs", "3"]) == 0
    assert "Dask workers" in capsys.readouterr().out
    config = TrainConfig(hidden_layer_sizes=(32, 16), max_iter=3, dtype="float64", learning_rate_init=1e-3,
                         lr_decay=1.0)  # fmt: skip
    straight = train(NUMPY, digits, config)
    state = load(ckpt).state
    for a, b in zip(state.params + state.opt_state, straight.params + straight.opt_state):
        assert np.max(np.abs(a - b)) <= TOLERANCE


@pytest.mark.slow
def test_a_lost_scheduler_stops_with_a_checkpoint_that_resumes(digits, tmp_path):
    """When the whole cluster goes, the run stops with one line and the state before the lost step on disk."""
    needs_dask()  # before the import below, which needs it too
    from xpnet.training import distributed as dist
    from xpnet.training.distributed import connect

    path = tmp_path / "lost.npz"
    with real_cluster(tmp_path) as (address, scheduler), connect(address) as cluster:

        def kill_scheduler(epoch: int, rows: int, loss) -> None:
            if epoch == 2 and rows >= 300 and scheduler.poll() is None:
                scheduler.kill()

        with pytest.raises(dist.StepFailed) as failed:
            train_saving(Model.of_data(ADAM_MINI, None, NUMPY, digits), digits, path, steps=dask_steps(cluster),
                         callbacks=[Hooks(on_step=kill_scheduler)])  # fmt: skip
    message = str(failed.value)
    assert "the connection to the scheduler was lost" in message and f"--resume {path}" in message
    assert "\n" not in message
    ckpt = load(path)
    assert ckpt.state.epoch == 1 and ckpt.state.offset >= 300
    resumed = train(NUMPY, digits, ADAM_MINI, state=ckpt.state)
    assert_equal_runs(resumed, train(NUMPY, digits, ADAM_MINI))
