"""Every backend, device and dtype computes what NumPy computes in float64, within `xpnet.check.TOLERANCES`."""

from __future__ import annotations

import functools

import array_api_compat
import numpy as np
import pytest

from conftest import backend_or_skip, yield_backend_device_dtype_combinations
from xpnet import check, nn
from xpnet.backend import make_backend
from xpnet.check import (
    ACCURACY_POINTS,
    TOLERANCES,
    TRAJECTORY_STEPS,
    Comparison,
    compare,
    make_problem,
    reference,
    rel_diff,
)
from xpnet.data import load_dataset
from xpnet.nn import OPTIMIZERS
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig

COMBINATIONS = list(yield_backend_device_dtype_combinations())
# One epoch on digits that learns something (about 87% test accuracy) in a fraction of a second.
DIGITS_CONFIG = TrainConfig(
    hidden_layer_sizes=(32,), solver="adam", learning_rate_init=0.01, max_iter=1, batch_size=32, random_state=1
)


@functools.cache
def _reference(dtype: str) -> check.Run:
    return reference(make_problem(), dtype)


@functools.cache
def _comparison(name: str, device: str, dtype: str) -> Comparison:
    # One run per combination, shared by the tests below: each asserts one part of the agreement.
    return compare(backend_or_skip(name, device), dtype, make_problem(), _reference(dtype))


@pytest.mark.parametrize(("name", "device", "dtype"), COMBINATIONS)
def test_initial_weights_are_bit_identical(name, device, dtype):
    assert _comparison(name, device, dtype).initial_bitwise


@pytest.mark.parametrize(("name", "device", "dtype"), COMBINATIONS)
def test_logits_loss_and_gradients_agree(name, device, dtype):
    c, tol = _comparison(name, device, dtype), TOLERANCES[dtype]
    assert c.logits <= tol.forward
    assert c.loss <= tol.forward
    assert c.grads <= tol.gradients


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize(("name", "device", "dtype"), COMBINATIONS)
def test_parameters_agree_after_optimizer_steps(name, device, dtype, optimizer):
    c = _comparison(name, device, dtype)
    assert c.trajectories[optimizer] <= TOLERANCES[dtype].for_optimizer(optimizer), (
        f"{optimizer}: parameters after {TRAJECTORY_STEPS} steps"
    )


@pytest.mark.parametrize(("name", "device", "dtype"), COMBINATIONS)
def test_every_array_stays_on_the_device_in_the_dtype(name, device, dtype):
    assert _comparison(name, device, dtype).misplaced == ()


@functools.cache
def _digits():
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")
    return load_dataset("digits")


@functools.cache
def _digits_reference_accuracy() -> float:
    config = TrainConfig(**{**DIGITS_CONFIG.__dict__, "dtype": "float64"})
    return train(make_backend("numpy"), _digits(), config).history[-1].test_accuracy


@pytest.mark.parametrize(
    ("name", "device", "dtype"),
    # JAX compiles every operation on its first use: a few seconds per dtype for the digits shapes.
    [pytest.param(*p.values, id=p.id, marks=pytest.mark.slow) if p.values[0] == "jax" else p for p in COMBINATIONS],
)
def test_one_digits_epoch_reaches_the_same_accuracy(name, device, dtype):
    backend = backend_or_skip(name, device)
    config = TrainConfig(**{**DIGITS_CONFIG.__dict__, "dtype": dtype})
    state = train(backend, _digits(), config)
    accuracy, expected = state.history[-1].test_accuracy, _digits_reference_accuracy()
    assert expected > 0.7, "the reference run must learn, or equal accuracies prove nothing"
    assert abs(100 * (accuracy - expected)) <= ACCURACY_POINTS
    # The trainer's own loop keeps the weights where they were put, in the dtype asked for.
    for p in state.params:
        assert array_api_compat.device(p) == backend.device
        assert p.dtype == backend.dtype(dtype)


# The checks above must be able to fail: each test below breaks something on purpose.


def test_a_float32_intermediate_fails_float64_agreement(monkeypatch):
    exact = nn.log_softmax

    def through_float32(xp, logits):  # what a backend that silently computes in float32 would do
        return xp.astype(exact(xp, xp.astype(logits, xp.float32)), logits.dtype)

    monkeypatch.setattr(nn, "log_softmax", through_float32)
    c = compare(make_backend("numpy"), "float64", make_problem(), _reference("float64"))
    assert c.loss > TOLERANCES["float64"].forward
    assert any(f.startswith("loss") for f in c.failures)


def test_a_silent_fall_back_to_the_default_device_is_caught(monkeypatch):
    backend = backend_or_skip("array-api-strict", "device1")

    def one_hot_forgetting_the_device(xp, labels, n_classes, dtype):
        return xp.astype(labels[:, None] == xp.arange(n_classes, dtype=labels.dtype), dtype)

    monkeypatch.setattr(nn, "one_hot", one_hot_forgetting_the_device)
    # array-api-strict refuses to mix devices; were it to allow it, the placement check would report it.
    with pytest.raises(ValueError, match="device"):
        check.run(backend, "float32", make_problem())


def test_placement_and_nan_show_as_failures():
    c = Comparison("x", "cpu", "float32", True, float("nan"), 0.0, 0.0, {"sgd": 0.0}, ("loss[0] on cpu",))
    assert not c.passed
    assert len(c.failures) == 2


def test_rel_diff_is_relative_to_the_scale_of_the_array():
    ref = np.array([100.0, 0.001])
    assert rel_diff(ref, ref) == 0.0
    assert rel_diff(ref + np.array([0.0, 0.001]), ref) == pytest.approx(1e-5)  # doubled small entry, large array
    assert rel_diff(np.zeros(2), np.zeros(2)) == 0.0
    assert rel_diff(np.ones(2), np.zeros(2)) == float("inf")
    assert rel_diff(np.ones(3), np.ones(2)) == float("inf")
