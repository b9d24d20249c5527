"""The training side leaves no trace in the caller's process (Dask's logger level) and names the library's
parameters, never the command line's flags, in its messages."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from helpers import tiny_data
from xpnet.backend import resolve_backend
from xpnet.errors import XpnetError
from xpnet.training import runlog
from xpnet.training.loop import train
from xpnet.training.model import Model, TrainConfig


def needs_dask() -> None:
    pytest.importorskip("distributed", reason='Dask is an optional extra: pip install -e ".[dask]"')


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_logger():
    """The ``distributed`` logger at a level of the caller's own, put back whatever the test does."""
    needs_dask()
    logger = logging.getLogger("distributed")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(before)


def test_a_failed_connect_leaves_dask_s_logger_as_it_was_and_names_no_flag(dask_logger):
    from xpnet.training.distributed import ClusterError, connect

    with pytest.raises(ClusterError, match="cannot reach a Dask scheduler") as caught:
        connect(f"tcp://127.0.0.1:{closed_port()}", timeout=1)
    assert dask_logger.level == logging.INFO
    assert "--" not in str(caught.value) and caught.value.parameter == "workers"


@pytest.mark.slow  # starts a cluster of 1 process
def test_a_cluster_by_address_puts_dask_s_logger_back_when_it_closes(dask_logger):
    from xpnet.training.distributed import connect, start_local

    with start_local(1) as local:
        assert dask_logger.level == logging.INFO
        with connect(local.client.scheduler.address):
            pass
        assert dask_logger.level == logging.INFO
    assert dask_logger.level == logging.INFO


def test_another_run_s_log_is_refused_naming_the_parameter_not_the_flag(tmp_path):
    backend, data = resolve_backend("cpu", "numpy"), tiny_data()
    config = TrainConfig(hidden_layer_sizes=(8,), max_iter=1, dtype="float64")
    model = Model.of_data(config, train(backend, data, config), backend, data)
    log = tmp_path / "other.jsonl"
    header = runlog.header(dataset="elsewhere", config=config.to_dict())
    log.write_text("".join(json.dumps(r) + "\n" for r in (header, runlog.epoch_record(model.state.history[0]))))
    with pytest.raises(XpnetError, match="is the log of another run") as caught:
        runlog.read_log(log, model)
    assert "--" not in str(caught.value) and caught.value.parameter == "log"
