"""ONNX export: the model as a standard graph (Gemm, the activation, Softmax) for other runtimes.

Inputs are float32 rows named ``input``; the outputs are ``probabilities`` (softmax, float32) and ``label``
(the largest logit's class: int64 or string labels as the model has them, else the class index). Built with
the ``onnx`` package, an optional extra; the weights are exported in float32, which ONNX runtimes expect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import XpnetError
from ..files import atomic_write
from ..training.model import Model, as_labels

OPSET = 17
ONNX_ACTIVATIONS = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh"}


def write_onnx(model: Model, path: str | Path) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically); `XpnetError` when ``onnx`` is missing."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise XpnetError('ONNX export needs the onnx package: pip install "xpnet[onnx]"') from None
    host = [np.asarray(model.backend.to_numpy(p), dtype=np.float32) for p in model.params]
    inits, nodes, a = [], [], "input"
    n_layers = len(host) // 2
    for i in range(n_layers):
        w, b = f"W{i + 1}", f"b{i + 1}"
        inits += [numpy_helper.from_array(host[2 * i], w), numpy_helper.from_array(host[2 * i + 1], b)]
        z = "logits" if i == n_layers - 1 else f"z{i + 1}"
        nodes.append(helper.make_node("Gemm", [a, w, b], [z]))
        if i < n_layers - 1:
            a = f"a{i + 1}"
            nodes.append(helper.make_node(ONNX_ACTIVATIONS[model.activation], [z], [a]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    classes = as_labels(model.classes)
    kind = classes.dtype.kind
    if kind in "iu":
        labels, label_type = classes.astype(np.int64), TensorProto.INT64
    elif kind == "U":
        labels, label_type = classes.astype(object), TensorProto.STRING
    else:  # floats and booleans: the class index
        labels, label_type = np.arange(len(model.classes), dtype=np.int64), TensorProto.INT64
    nodes.append(helper.make_node("ArgMax", ["logits"], ["index"], axis=1, keepdims=0))
    inits.append(numpy_helper.from_array(labels, "classes"))
    nodes.append(helper.make_node("Gather", ["classes", "index"], ["label"], axis=0))
    k = len(model.classes)
    graph = helper.make_graph(
        nodes,
        "xpnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", model.n_features])],
        [
            helper.make_tensor_value_info("label", label_type, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k]),
        ],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xpnet")
    onnx.checker.check_model(proto)
    path = Path(path).expanduser()
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path
