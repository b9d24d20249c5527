"""scikit-learn's estimator checks for xpnet.MLPClassifier and xpnet.MLPRegressor, with no expected failures.

The whole suite as scikit-learn runs it on its own MLPs (the same settings, and the same per-check settings: the
weighted-equals-repeated-rows checks, the multilabel checks), and its Array API checks, types and values, on
NumPy, array-api-strict, PyTorch and JAX (CPU), which scikit-learn's own list of namespaces leaves out.
"""

from __future__ import annotations

import warnings

import pytest
import sklearn.neural_network
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._array_api import NamespaceAndDevice
from sklearn.utils._test_common.instance_generator import INIT_PARAMS, PER_ESTIMATOR_CHECK_PARAMS
from sklearn.utils.estimator_checks import (
    check_array_api_input,
    check_array_api_mixed_inputs,
    check_array_api_same_namespace,
    estimator_checks_generator,
    parametrize_with_checks,
)

from conftest import backend_or_skip
from xpnet import MLPClassifier, MLPRegressor


def theirs(cls: type) -> type:
    """scikit-learn's estimator of the same name."""
    return getattr(sklearn.neural_network, cls.__name__)


def as_scikit_learn_tests_its_own(cls: type):
    """An instance with the settings scikit-learn's own suite gives its estimator of the same name."""
    return cls(**INIT_PARAMS.get(theirs(cls), {}))


ESTIMATORS = [as_scikit_learn_tests_its_own(MLPClassifier), as_scikit_learn_tests_its_own(MLPRegressor)]


def check_name(check) -> str:
    while hasattr(check, "func"):  # a check with its arguments bound
        check = check.func
    return check.__name__


def per_check_settings(estimator, check) -> list[dict]:
    """The settings scikit-learn's own suite runs this check with on its estimator of the same name."""
    sets = PER_ESTIMATOR_CHECK_PARAMS.get(theirs(type(estimator)), {}).get(check_name(check), [{}])
    return [sets] if isinstance(sets, dict) else sets


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    for params in per_check_settings(estimator, check):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            check(clone(estimator).set_params(**params))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_every_check_scikit_learn_runs_on_its_own_runs_here(estimator):
    """The checks come from the estimator's tags: a tag xpnet lacks would silently drop checks (the multilabel
    ones, the sample-weight ones). Every check scikit-learn runs on its own MLP runs on xpnet's, and the Array
    API checks besides."""
    ours = {check_name(check) for _, check in estimator_checks_generator(estimator, legacy=True)}
    own = {check_name(check) for _, check in estimator_checks_generator(theirs(type(estimator))(), legacy=True)}
    assert own - ours == set()
    assert {"check_array_api_mixed_inputs", "check_array_api_same_namespace"} <= ours
    needed = {"check_sample_weight_equivalence_on_dense_data", "check_sample_weights_shape"}
    if isinstance(estimator, MLPClassifier):
        needed.add("check_classifiers_multilabel_representation_invariance")
    assert needed <= ours


# (namespace, device) pairs that need no GPU; JAX is not in scikit-learn's list.
NAMESPACES = [
    ("numpy", None),
    ("array_api_strict", "CPU_DEVICE"),
    ("array_api_strict", "device1"),
    ("torch", "cpu"),
    ("jax.numpy", None),
]


def usable(namespace: str) -> None:
    """Skip with the reason where a library is missing; JAX's 64-bit types on, as training on JAX turns them on."""
    if namespace == "jax.numpy":
        backend_or_skip("jax", "cpu")
    else:
        pytest.importorskip(namespace, reason=f"{namespace} is not installed")


@pytest.mark.parametrize("check_values", [False, True], ids=["types", "values"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("namespace", "device"), NAMESPACES, ids=[f"{n}-{d}" for n, d in NAMESPACES])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_array_api_input(estimator, namespace, device, dtype, check_values):
    """Fitted on one library's arrays (y and sample weights too), the fitted arrays and every answer are in that
    library, on that device, in that dtype, and (values) equal to NumPy's fit within scikit-learn's tolerance."""
    usable(namespace)
    name = type(estimator).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_array_api_input(
            name,
            estimator,
            array_namespace=namespace,
            device_name=device,
            dtype_name=dtype,
            check_values=check_values,
            check_sample_weight=True,
        )


# X's (namespace, device), then that of y and the sample weights: scikit-learn's pair that needs no GPU, and JAX.
MIXED = [
    (("torch", "cpu"), ("array_api_strict", "device1")),
    (("jax.numpy", None), ("numpy", None)),
    (("numpy", None), ("jax.numpy", None)),
    (("jax.numpy", None), ("torch", "cpu")),
    (("torch", "cpu"), ("jax.numpy", None)),
]


@pytest.mark.parametrize(("x", "other"), MIXED, ids=[f"X-{x[0]}-y-{o[0]}" for x, o in MIXED])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_array_api_mixed_inputs(estimator, x, other):
    """Everything follows X: y and the sample weights of another library or device train where X is."""
    usable(x[0])
    usable(other[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_array_api_mixed_inputs(
            type(estimator).__name__,
            estimator,
            X_ns_and_device=NamespaceAndDevice(*x),
            other_ns_and_device=NamespaceAndDevice(*other),
        )


@pytest.mark.parametrize("namespace", ["array_api_strict", "torch", "jax.numpy"])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_array_api_same_namespace(estimator, namespace):
    """A model fitted on one library's arrays refuses NumPy's at predict, naming the method."""
    usable(namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_array_api_same_namespace(type(estimator).__name__, estimator, array_namespace=namespace)
