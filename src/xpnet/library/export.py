"""ONNX export (``onnx``): float32 rows ``input`` -> Gemm, activation... -> ``probabilities`` (softmax) and ``label``
(int64, uint64 past 2**63 - 1, or strings as the model's labels are; else the class index)."""

from pathlib import Path

import numpy as np

from ..errors import XpnetError
from ..files import atomic_write
from ..training.model import Model, as_labels

ONNX_ACTIVATIONS = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh"}


def write_onnx(model: Model, path: str | Path) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically); `XpnetError` when ``onnx`` is missing."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise XpnetError('ONNX export needs the onnx package: pip install "xpnet[onnx]"') from None
    host = [np.asarray(model.backend.to_numpy(p), dtype=np.float32) for p in model.params]
    inits = [numpy_helper.from_array(w, f"{'Wb'[i % 2]}{i // 2 + 1}") for i, w in enumerate(host)]
    nodes, n_layers = [], len(host) // 2
    for i in range(1, n_layers + 1):  # z1 = Gemm(input, W1, b1), a1 = activation(z1), ..., logits
        inputs = ["input" if i == 1 else f"a{i - 1}", f"W{i}", f"b{i}"]
        nodes.append(helper.make_node("Gemm", inputs, ["logits" if i == n_layers else f"z{i}"]))
        if i < n_layers:
            nodes.append(helper.make_node(ONNX_ACTIVATIONS[model.activation], [f"z{i}"], [f"a{i}"]))
    classes, k = as_labels(model.classes), len(model.classes)
    if classes.dtype.kind in "iu":  # uint64 only where int64 would wrap
        labels = classes.astype(np.int64 if classes.dtype.kind == "i" or classes.max() < 2**63 else np.uint64)
    else:  # strings, else (floats, booleans) the class index
        labels = classes.astype(object) if classes.dtype.kind == "U" else np.arange(k, dtype=np.int64)
    label_type = {"O": TensorProto.STRING, "i": TensorProto.INT64, "u": TensorProto.UINT64}[labels.dtype.kind]
    inits.append(numpy_helper.from_array(labels, "classes"))
    nodes += [
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["index"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "index"], ["label"], axis=0),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", model.n_features])]
    label = helper.make_tensor_value_info("label", label_type, ["N"])
    outputs = [label, helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k])]
    graph = helper.make_graph(nodes, "xpnet", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="xpnet")
    onnx.checker.check_model(proto)
    path, data = Path(path).expanduser(), proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path
