"""ONNX export (``onnx``): float32 rows ``input`` -> Gemm, activation... -> the outputs of the model's kind, as
scikit-learn's ``predict_proba`` and ``predict`` give them:

- softmax classifier: ``probabilities`` (N, k) and ``label`` (N,);
- one logistic output (two classes, or the one class of y): ``probabilities`` [1 - p, p] (N, 2) and ``label`` (N,);
- multilabel (several logistic outputs): ``probabilities`` (N, k) and ``label``, the int64 indicator matrix (N, k);
- regressor (identity or exp output): ``values`` (N, n_outputs).

Labels are int64, uint64 past 2**63 - 1, or strings as the model's labels are; else the class index."""

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XpnetError
from ..files import atomic_write
from ..training.model import Model, as_labels

ONNX_ACTIVATIONS = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh", "identity": "Identity"}


def write_onnx(model: Model, path: str | Path) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically); `XpnetError` when ``onnx`` is missing."""
    host = [np.asarray(model.backend.to_numpy(p), dtype=np.float32) for p in model.params]
    proto = onnx_graph(host, model.activation, model.config.out_activation, model.classes)
    path, data = Path(path).expanduser(), proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path


def onnx_graph(params: list[np.ndarray], activation: str, output: str, classes: Any) -> Any:
    """The checked ``onnx.ModelProto`` of host float32 weights ``[W1, b1, ...]`` with hidden ``activation``,
    output layer ``output`` (``nn.OUTPUTS``' names) and the outputs' labels ``classes``."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise XpnetError('ONNX export needs the onnx package: pip install "xpnet[onnx]"') from None
    inits = [numpy_helper.from_array(w, f"{'Wb'[i % 2]}{i // 2 + 1}") for i, w in enumerate(params)]
    nodes, n_layers, n_out = [], len(params) // 2, params[-1].shape[0]
    raw = "values" if output == "identity" else "logits"  # the last layer's outputs before the output activation
    for i in range(1, n_layers + 1):  # z1 = Gemm(input, W1, b1), a1 = activation(z1), ..., raw
        inputs = ["input" if i == 1 else f"a{i - 1}", f"W{i}", f"b{i}"]
        nodes.append(helper.make_node("Gemm", inputs, [raw if i == n_layers else f"z{i}"]))
        if i < n_layers:
            nodes.append(helper.make_node(ONNX_ACTIVATIONS[activation], [f"z{i}"], [f"a{i}"]))

    def out(name: str, kind: int, shape: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, kind, shape)

    if output in ("identity", "exp"):
        nodes += [helper.make_node("Exp", ["logits"], ["values"])] if output == "exp" else []
        outputs = [out("values", TensorProto.FLOAT, ["N", n_out])]
    elif output == "logistic" and n_out > 1:  # multilabel: each output on its own, thresholded at one half
        inits.append(numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"))
        nodes += [
            helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
            helper.make_node("Greater", ["probabilities", "half"], ["on"]),
            helper.make_node("Cast", ["on"], ["label"], to=TensorProto.INT64),
        ]
        outputs = [out("label", TensorProto.INT64, ["N", n_out]), out("probabilities", TensorProto.FLOAT, ["N", n_out])]
    else:
        labels, label_type = _labels(classes)
        if output == "logistic":  # one output p: [1 - p, p], and the second label where p > 1/2
            labels = np.resize(labels, 2)  # the one class of y labels both sides
            inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for v, n in ((1, "one"), (0.5, "half"))]
            inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"))
            nodes += [
                helper.make_node("Sigmoid", ["logits"], ["p"]),
                helper.make_node("Sub", ["one", "p"], ["q"]),
                helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
                helper.make_node("Greater", ["p", "half"], ["on"]),
                helper.make_node("Cast", ["on"], ["index2d"], to=TensorProto.INT64),
                helper.make_node("Reshape", ["index2d", "flat"], ["index"]),
            ]
        else:
            nodes += [
                helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
                helper.make_node("ArgMax", ["logits"], ["index"], axis=1, keepdims=0),
            ]
        inits.append(numpy_helper.from_array(labels, "classes"))
        nodes.append(helper.make_node("Gather", ["classes", "index"], ["label"], axis=0))
        outputs = [out("label", label_type, ["N"]), out("probabilities", TensorProto.FLOAT, ["N", len(labels)])]
    inputs = [out("input", TensorProto.FLOAT, ["N", params[0].shape[0]])]
    graph = helper.make_graph(nodes, "xpnet", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="xpnet")
    onnx.checker.check_model(proto)
    return proto


def _labels(classes: Any) -> tuple[np.ndarray, int]:
    """The labels as ONNX holds them (int64, uint64 only where int64 would wrap, strings; else the class index)
    and their ONNX type."""
    from onnx import TensorProto

    classes = as_labels(classes)
    if classes.dtype.kind in "iu":
        labels = classes.astype(np.int64 if classes.dtype.kind == "i" or classes.max() < 2**63 else np.uint64)
    else:  # strings, else (floats, booleans) the class index
        labels = classes.astype(object) if classes.dtype.kind == "U" else np.arange(len(classes), dtype=np.int64)
    return labels, {"O": TensorProto.STRING, "i": TensorProto.INT64, "u": TensorProto.UINT64}[labels.dtype.kind]
