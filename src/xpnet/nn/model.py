"""The multilayer perceptron: forward and backward passes, vectorised over a batch.

Pure functions of an Array API namespace ``xp`` and arrays. Parameters are a flat list
``[W1, b1, W2, b2, ...]`` with ``W`` of shape (inputs, outputs), so a layer is ``a @ W + b`` on a
batch of row vectors. Each activation's derivative sits beside it and is written in terms of the
activation's *output*, which is all the backward pass keeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Activation(NamedTuple):
    forward: Callable[[Any, Any], Any]
    # d(output)/d(input) times an upstream gradient, given the output `a` and that gradient `g`.
    backward: Callable[[Any, Any, Any], Any]


def relu(xp: Any, z: Any) -> Any:
    return xp.maximum(z, 0.0)


def relu_backward(xp: Any, a: Any, g: Any) -> Any:
    return xp.where(a > 0.0, g, 0.0)


def sigmoid(xp: Any, z: Any) -> Any:
    # 1 / (1 + exp(-z)) overflows exp for large negative z in float32; the tanh form cannot overflow.
    return 0.5 * xp.tanh(0.5 * z) + 0.5


def sigmoid_backward(xp: Any, a: Any, g: Any) -> Any:
    return g * a * (1.0 - a)


def tanh(xp: Any, z: Any) -> Any:
    return xp.tanh(z)


def tanh_backward(xp: Any, a: Any, g: Any) -> Any:
    return g * (1.0 - a * a)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, relu_backward),
    "sigmoid": Activation(sigmoid, sigmoid_backward),
    "tanh": Activation(tanh, tanh_backward),
}


def layer_sizes(n_in: int, hidden: Sequence[int], n_out: int) -> list[int]:
    return [n_in, *hidden, n_out]


def sizes_of(params: Sequence[Any]) -> list[int]:
    """Layer sizes ``[inputs, hidden..., classes]`` of the weights ``[W1, b1, W2, b2, ...]``."""
    return [params[0].shape[0], *(w.shape[1] for w in params[0::2])]


def param_shapes(sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Shapes of ``[W1, b1, W2, b2, ...]`` for layers of the given sizes."""
    return [s for n_in, n_out in itertools.pairwise(sizes) for s in ((n_in, n_out), (n_out,))]


def forward(xp: Any, params: Sequence[Any], x: Any, activation: str = "relu") -> tuple[Any, list[Any]]:
    """Logits for the batch ``x`` (rows are examples) and the activations the backward pass needs.

    The cache holds the input of every layer: ``x`` and each hidden activation.
    """
    act = ACTIVATIONS[activation].forward
    cache = [x]
    a = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        z = a @ params[2 * i] + params[2 * i + 1]
        if i == n_layers - 1:
            return z, cache
        a = act(xp, z)
        cache.append(a)
    raise ValueError("params must hold at least one (W, b) pair")


def backward(xp: Any, params: Sequence[Any], cache: Sequence[Any], dlogits: Any, activation: str = "relu") -> list[Any]:
    """Gradients ``[dW1, db1, ...]`` of the loss, given ``dlogits`` = d(loss)/d(logits)."""
    act_backward = ACTIVATIONS[activation].backward
    n_layers = len(params) // 2
    grads: list[Any] = [None] * len(params)
    delta = dlogits
    for i in reversed(range(n_layers)):
        a_in = cache[i]
        grads[2 * i] = xp.matrix_transpose(a_in) @ delta
        grads[2 * i + 1] = xp.sum(delta, axis=0)
        if i > 0:  # the gradient with respect to the input images is never needed
            delta = act_backward(xp, a_in, delta @ xp.matrix_transpose(params[2 * i]))
    return grads
