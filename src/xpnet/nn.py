"""The math: a multilayer perceptron, its loss and optimizers, and one training step, as pure functions.

Every function takes an Array API namespace ``xp`` and arrays and returns arrays: no module-level state, no
hidden device. Parameters are a flat list ``[W1, b1, W2, b2, ...]`` with ``W`` of shape (inputs, outputs), so
a layer is ``a @ W + b`` on a batch of row vectors. `train_step` is the definition of a training step; a fast
step in ``xpnet.backend.fast`` overrides it for one library and must agree with it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

Params = list[Any]
# (params, state, x, targets, update count from 1, rate) -> (params, state, loss, logits)
StepFn = Callable[[Sequence[Any], Sequence[Any], Any, Any, int, float], tuple[Params, list[Any], Any, Any]]


# -- the layers ---------------------------------------------------------------------------------------------


class Activation(NamedTuple):
    """``forward(xp, z)``, and ``backward(xp, a, g)``: ``g`` times d(output)/d(input) at the output ``a``.
    Both use only xp.add/multiply/maximum/tanh/where on a fresh array, so that a fast step computes the same
    definition in place by passing a namespace whose functions write into their first array."""

    forward: Callable[[Any, Any], Any]
    backward: Callable[[Any, Any, Any], Any]


def relu(xp: Any, z: Any) -> Any:
    return xp.maximum(z, 0.0)


def relu_backward(xp: Any, a: Any, g: Any) -> Any:
    return xp.where(a > 0.0, g, 0.0)


def sigmoid(xp: Any, z: Any) -> Any:
    # 1 / (1 + exp(-z)) overflows exp for large negative z in float32; the tanh form cannot overflow.
    return xp.add(xp.multiply(xp.tanh(xp.multiply(z, 0.5)), 0.5), 0.5)


def sigmoid_backward(xp: Any, a: Any, g: Any) -> Any:
    return xp.multiply(xp.multiply(g, a), 1.0 - a)


def tanh_backward(xp: Any, a: Any, g: Any) -> Any:
    return xp.multiply(g, 1.0 - a * a)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, relu_backward),
    "logistic": Activation(sigmoid, sigmoid_backward),
    "tanh": Activation(lambda xp, z: xp.tanh(z), tanh_backward),
}


def layer_sizes(n_in: int, hidden: Sequence[int], n_out: int) -> list[int]:
    return [n_in, *hidden, n_out]


def layer_text(sizes: Sequence[int]) -> str:
    """Layer sizes as people write them: ``784-32-10``."""
    return "-".join(map(str, sizes))


def sizes_of(params: Sequence[Any]) -> list[int]:
    """Layer sizes ``[inputs, hidden..., classes]`` of the weights ``[W1, b1, W2, b2, ...]``."""
    return [params[0].shape[0], *(w.shape[1] for w in params[0::2])]


def param_shapes(sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Shapes of ``[W1, b1, W2, b2, ...]`` for layers of the given sizes."""
    return [s for n_in, n_out in itertools.pairwise(sizes) for s in ((n_in, n_out), (n_out,))]


def init_params(rng: np.random.Generator, sizes: Sequence[int], activation: str, dtype: str = "float32") -> Params:
    """Initial ``[W1, b1, W2, b2, ...]`` as host arrays of ``dtype``, drawn with a seeded NumPy generator (the
    same weights on every backend): He-normal for relu, Glorot-uniform for sigmoid and tanh, zero biases."""
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        if activation == "relu":
            w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-limit, limit, size=(n_in, n_out))
        params += [w.astype(dtype), np.zeros(n_out, dtype=dtype)]
    return params


def forward(xp: Any, params: Sequence[Any], x: Any, activation: str = "relu") -> tuple[Any, list[Any]]:
    """Logits for the batch ``x`` (rows are examples) and the cache the backward pass needs: the input of
    every layer, ``x`` and each hidden activation."""
    if len(params) < 2:
        raise ValueError("params must hold at least one (W, b) pair")
    cache = [x]
    for w, b in zip(params[0:-2:2], params[1:-2:2]):
        cache.append(ACTIVATIONS[activation].forward(xp, cache[-1] @ w + b))
    return cache[-1] @ params[-2] + params[-1], cache


def backward(xp: Any, params: Sequence[Any], cache: Sequence[Any], dlogits: Any, activation: str = "relu") -> Params:
    """Gradients ``[dW1, db1, ...]`` of the loss, given ``dlogits`` = d(loss)/d(logits)."""
    grads: Params = [None] * len(params)
    delta = dlogits
    for i in reversed(range(len(params) // 2)):
        grads[2 * i] = xp.matrix_transpose(cache[i]) @ delta
        grads[2 * i + 1] = xp.sum(delta, axis=0)
        if i > 0:  # the gradient with respect to the input images is never needed
            g = delta @ xp.matrix_transpose(params[2 * i])
            delta = ACTIVATIONS[activation].backward(xp, cache[i], g)
    return grads


# -- the loss -----------------------------------------------------------------------------------------------


def one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any) -> Any:
    """Rows of ``labels`` (integer class indices) as one-hot vectors, without fancy indexing."""
    classes = xp.arange(n_classes, dtype=labels.dtype, device=labels.device)
    return xp.astype(labels[:, None] == classes, dtype)


def log_softmax(xp: Any, logits: Any) -> Any:
    # Subtracting the row maximum keeps exp() from overflowing; the result is mathematically unchanged.
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax_cross_entropy(xp: Any, logits: Any, targets: Any) -> tuple[Any, Any]:
    """Mean cross-entropy over the batch (a 0-d device array) and its gradient with respect to ``logits``;
    ``targets`` is one-hot in the dtype of ``logits``."""
    n = logits.shape[0]
    logp = log_softmax(xp, logits)
    return -xp.sum(targets * logp) / n, (xp.exp(logp) - targets) / n


def penalty(xp: Any, params: Sequence[Any], alpha: float, n: int) -> Any:
    """The L2 term of the loss over a batch of ``n`` rows, ``alpha / (2 n) * sum(W**2)`` (scikit-learn's
    alpha; biases are not penalised), a 0-d array."""
    return (0.5 * alpha / n) * sum(xp.sum(w * w) for w in params[0::2])


def add_penalty(params: Sequence[Any], grads: Params, alpha: float, n: int) -> Params:
    """``grads`` with the gradient of `penalty`, ``alpha / n * W``, added to each weight matrix's."""
    for i in range(0, len(grads), 2) if alpha else ():
        grads[i] = grads[i] + alpha / n * params[i]
    return grads


# -- the optimizers -----------------------------------------------------------------------------------------
# Each rule is written once, element-wise, for whole arrays (the reference; the in-place steps' flat buffers)
# and for single numbers (the compiled NumPy update): ``rule(mul, sqrt, g, *slots, *scalars)`` returns
# ``(step, *slots)`` and the parameter becomes ``p - step``. ``mul`` scales each slot first and may write into
# it (the in-place steps pass such a function); the rest is operators on fresh values.


class Hyper(NamedTuple):
    """The optimizers' hyperparameters, with scikit-learn's names and defaults."""

    momentum: float = 0.9
    nesterov: bool = False  # momentum only: step along g + momentum * v (PyTorch's form of Nesterov's method)
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8


DEFAULT = Hyper()


def sgd(mul, sqrt, g, lr):
    """Plain gradient descent, the blog post's rule: ``p <- p - lr g``."""
    return (lr * g,)


def momentum(mul, sqrt, g, v, lr, mu):
    """Heavy-ball momentum as PyTorch writes it: ``v <- mu v + g``, ``p <- p - lr v``."""
    v = mul(v, mu)
    v += g
    return lr * v, v


def nesterov(mul, sqrt, g, v, lr, mu):
    """Momentum with ``Hyper.nesterov``, PyTorch's form: ``v <- mu v + g``, ``p <- p - lr (g + mu v)``."""
    v = mul(v, mu)
    v += g
    return lr * (g + mu * v), v


def adam(mul, sqrt, g, m, v, step_size, root_bc2, b1, c1, b2, c2, eps):
    """Adam (Kingma & Ba) as PyTorch computes it, the bias corrections folded into two scalars."""
    m = mul(m, b1)
    m += c1 * g
    v = mul(v, b2)
    v += c2 * (g * g)
    return step_size * m / (sqrt(v) / root_bc2 + eps), m, v


def adam_scalars(lr: float, count: int, h: Hyper) -> tuple[float, ...]:
    step_size, root_bc2 = lr / (1.0 - h.beta_1**count), math.sqrt(1.0 - h.beta_2**count)
    return step_size, root_bc2, h.beta_1, 1.0 - h.beta_1, h.beta_2, 1.0 - h.beta_2, h.epsilon


class Optimizer(NamedTuple):
    """An update rule, its host scalars and the state it keeps.

    ``scalars(lr, count, hyper)`` turns the rate and the update count (from 1) into the rule's Python floats:
    the count never reaches the device, so a tracing compiler compiles the update once. The state is a flat
    list of arrays, one per weight array for each of ``slots``, in slot-major order, as a checkpoint keeps it.
    """

    slots: tuple[str, ...]
    scalars: Callable[[float, int, Hyper], tuple[float, ...]]
    rules: tuple[Callable[..., tuple[Any, ...]], ...]  # (the rule, the rule with Hyper.nesterov)
    default_lr: float

    def apply(self, xp, params, grads, state, scalars, h: Hyper = DEFAULT) -> tuple[Params, list[Any]]:
        """``(params, state)`` after one update, given the rule's scalars."""
        k = len(params)
        out = [self.rules[h.nesterov](xp.multiply, xp.sqrt, g, *state[i::k], *scalars) for i, g in enumerate(grads)]
        return [p - o[0] for p, o in zip(params, out)], [o[j] for j in range(1, len(self.slots) + 1) for o in out]

    def update(self, xp, params, grads, state, count: int, lr: float, h: Hyper = DEFAULT):
        """``(params, state)`` after the ``count``-th update of a run, at rate ``lr``."""
        return self.apply(xp, params, grads, state, self.scalars(lr, count, h), h)

    def init(self, xp: Any, params: Sequence[Any]) -> list[Any]:
        """The initial state: zeros for every slot and weight array."""
        return [xp.zeros_like(p) for _ in self.slots for p in params]

    def state_shapes(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """The state's array shapes for weight arrays of ``shapes``, in the order `init` makes them."""
        return [s for _ in self.slots for s in shapes]


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer((), lambda lr, count, h: (lr,), (sgd, sgd), 0.1),
    "momentum": Optimizer(("velocity",), lambda lr, count, h: (lr, h.momentum), (momentum, nesterov), 0.05),
    "adam": Optimizer(("m", "v"), adam_scalars, (adam, adam), 1e-3),
}


# -- the training step --------------------------------------------------------------------------------------


class Recipe(NamedTuple):
    """What a training step computes: the activation, the optimizer with its hyperparameters, the L2 penalty
    (`penalty`)."""

    activation: str = "relu"
    optimizer: str = "adam"
    alpha: float = 0.0
    hyper: Hyper = DEFAULT


def step_body(xp: Any, recipe: Recipe) -> Callable[..., tuple[Params, list[Any], Any, Any]]:
    """``body(params, state, x, targets, *scalars) -> (params, state, loss, logits)``: forward, loss, backward,
    penalty and update, given the optimizer's host scalars (a tracing compiler takes them as inputs)."""

    def body(params, state, x, targets, *scalars):
        logits, cache = forward(xp, params, x, recipe.activation)
        loss, dlogits = softmax_cross_entropy(xp, logits, targets)
        grads = add_penalty(params, backward(xp, params, cache, dlogits, recipe.activation), recipe.alpha, x.shape[0])
        params, state = OPTIMIZERS[recipe.optimizer].apply(xp, params, grads, state, scalars, recipe.hyper)
        return params, state, loss, logits

    return body


def train_step(xp: Any, recipe: Recipe) -> StepFn:
    """The reference training step: the definition every fast step agrees with."""
    body, scalars = step_body(xp, recipe), OPTIMIZERS[recipe.optimizer].scalars
    return lambda params, state, x, targets, count, lr: body(
        params, state, x, targets, *scalars(lr, count, recipe.hyper)
    )
