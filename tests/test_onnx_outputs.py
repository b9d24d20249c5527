"""ONNX graphs of every kind of output (`xpnet.library.export.write_onnx`): softmax, one logistic output, multilabel,
identity and exp regressors, each run by onnx's reference evaluator and, where installed, by onnxruntime."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from xpnet import MLPClassifier, MLPRegressor
from xpnet.library.export import write_onnx

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (xpnet[onnx])")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(1)
X = RNG.normal(size=(80, 6))
Y3 = np.argmax(X[:, :3] + 0.3 * RNG.normal(size=(80, 3)), axis=1)
KINDS = {  # kind -> (y, the graph's outputs)
    "multiclass": (Y3, ("label", "probabilities")),
    "strings": (np.array(["cat", "dog", "eel"])[Y3], ("label", "probabilities")),
    "big_ints": (np.array([2**63 + 5, 2**64 - 1, 7], dtype=np.uint64)[Y3], ("label", "probabilities")),
    "binary": (np.array([-1, 1])[(X[:, 0] + X[:, 1] > 0).astype(int)], ("label", "probabilities")),
    "binary_strings": (np.array(["no", "yes"])[(X[:, 0] > 0).astype(int)], ("label", "probabilities")),
    "multilabel": ((X[:, :4] > 0).astype(int), ("label", "probabilities")),
    "squared_error": (X @ RNG.normal(size=6), ("values",)),
    "two_outputs": (X @ RNG.normal(size=(6, 2)), ("values",)),
    "poisson": (np.exp(0.4 * X[:, 0]), ("values",)),
}


def runtimes() -> list[pytest.param]:
    """onnx's reference evaluator, always; onnxruntime where it is installed."""
    missing = importlib.util.find_spec("onnxruntime") is None
    ort = pytest.mark.skipif(missing, reason="onnxruntime is not installed (pip install xpnet[onnx])")
    return [pytest.param("reference"), pytest.param("onnxruntime", marks=ort)]


def run_graph(path, runtime: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each output of the ONNX file at ``path`` for float32 rows ``x``, by name."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, {"input": x}), strict=True))
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(path))
    names = [o.name for o in proto.graph.output]
    return dict(zip(names, ReferenceEvaluator(proto).run(names, {"input": x}), strict=True))


def fitted(kind: str, dtype: str = "float64", activation: str = "tanh"):
    y = KINDS[kind][0]
    params = {"hidden_layer_sizes": (8, 5), "activation": activation, "max_iter": 20, "random_state": 0}
    if kind in ("squared_error", "two_outputs", "poisson"):
        return MLPRegressor(loss="poisson" if kind == "poisson" else "squared_error", **params).fit(X.astype(dtype), y)
    return MLPClassifier(**params).fit(X.astype(dtype), y)


@pytest.mark.parametrize("runtime", runtimes())
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_output_comes_out_of_onnx_as_xpnet_gives_it(tmp_path, kind, dtype, runtime):
    est = fitted(kind, dtype)
    path = est.to_onnx(tmp_path / "m.onnx")
    got = run_graph(path, runtime, X.astype(np.float32))
    assert tuple(sorted(got)) == KINDS[kind][1]
    if "values" in got:
        want = np.asarray(est.predict(X)).reshape(len(X), -1)
        assert got["values"].shape == want.shape and got["values"].dtype == np.float32
        np.testing.assert_allclose(got["values"], want, rtol=1e-4, atol=1e-4)
        return
    proba, label = np.asarray(est.predict_proba(X)), np.asarray(est.predict(X))
    assert got["probabilities"].shape == proba.shape and got["label"].shape == label.shape
    np.testing.assert_allclose(got["probabilities"], proba, atol=1e-5)
    np.testing.assert_array_equal(got["label"].astype(label.dtype), label)
    assert got["label"].dtype.kind == ("O" if label.dtype.kind == "U" else label.dtype.kind)


@pytest.mark.parametrize("activation", ["relu", "logistic", "identity"])
def test_every_hidden_activation_is_in_the_graph(tmp_path, activation):
    est = fitted("binary", activation=activation)
    got = run_graph(write_onnx(est.model_, tmp_path / "m.onnx"), "reference", X.astype(np.float32))
    np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(got["label"], est.predict(X))


def test_the_softmax_graph_keeps_its_names_and_nodes(tmp_path):
    graph = onnx.load(str(write_onnx(fitted("multiclass").model_, tmp_path / "m.onnx"))).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["label", "probabilities"]
    assert [n.op_type for n in graph.node] == ["Gemm", "Tanh", "Gemm", "Tanh", "Gemm", "Softmax", "ArgMax", "Gather"]


def test_the_one_class_of_y_labels_every_row(tmp_path):
    y = np.full(len(X), "only")
    est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    got = run_graph(write_onnx(est.model_, tmp_path / "m.onnx"), "reference", X.astype(np.float32))
    assert got["label"].tolist() == y.tolist()
    np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), atol=1e-5)


def test_xpnet_export_writes_a_saved_regressor(tmp_path, capsys):
    from xpnet import export

    est = fitted("two_outputs")
    est.save(tmp_path / "r.npz")
    assert export.main(["--model", str(tmp_path / "r.npz"), "--onnx", str(tmp_path / "r.onnx")]) == 0
    assert "2 values" in capsys.readouterr().out
    got = run_graph(tmp_path / "r.onnx", "reference", X.astype(np.float32))
    np.testing.assert_allclose(got["values"], est.predict(X), rtol=1e-4, atol=1e-4)
