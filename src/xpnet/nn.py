"""The math: a multilayer perceptron, its loss, optimizers and training step, as pure functions of an Array API
namespace ``xp`` and arrays. Parameters are ``[W1, b1, W2, b2, ...]``, ``W`` of shape (inputs, outputs). A fast
step in ``xpnet.backend.fast`` overrides `train_step` for one library and agrees with it."""

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

# (params, state, x, targets, update count from 1, rate[, row weights]) -> (params, state, loss, logits)
StepFn = Callable[..., tuple[list[Any], list[Any], Any, Any]]


class Activation(NamedTuple):
    """``forward(xp, z)``; ``backward(xp, a, g)``: ``g`` times d(output)/d(input) at the output ``a``. Both use
    only xp.add/multiply/maximum/tanh/where, so that a fast step runs them in place with its own ``xp``."""

    forward: Callable[[Any, Any], Any]
    backward: Callable[[Any, Any, Any], Any]


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(lambda xp, z: xp.maximum(z, 0.0), lambda xp, a, g: xp.where(a > 0.0, g, 0.0)),
    "logistic": Activation(  # tanh(z / 2) / 2 + 1 / 2: 1 / (1 + exp(-z)) overflows exp in float32
        lambda xp, z: xp.add(xp.multiply(xp.tanh(xp.multiply(z, 0.5)), 0.5), 0.5),
        lambda xp, a, g: xp.multiply(xp.multiply(g, a), 1.0 - a),
    ),
    "tanh": Activation(lambda xp, z: xp.tanh(z), lambda xp, a, g: xp.multiply(g, 1.0 - a * a)),
    "identity": Activation(lambda xp, z: z, lambda xp, a, g: g),
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


def init_params(
    rng: np.random.Generator | np.random.RandomState,
    sizes: Sequence[int],
    activation: str,
    dtype: str = "float32",
    init: str = "he",
) -> list[Any]:
    """Initial host weights, the same on every backend. ``init="glorot"``: scikit-learn's, Glorot-uniform weights and
    biases for every activation (bound sqrt(2 / fan) for logistic, sqrt(6 / fan) else); ``"he"``: He-normal weights
    for relu (Glorot-uniform for the others) and zero biases, the command line's."""
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        shape, factor = (n_in, n_out), 2.0 if activation == "logistic" and init == "glorot" else 6.0
        limit = np.sqrt(factor / (n_in + n_out))
        if init == "he" and activation == "relu":
            w = rng.normal(0.0, np.sqrt(2.0 / n_in), shape)
        else:
            w = rng.uniform(-limit, limit, shape)
        b = rng.uniform(-limit, limit, n_out) if init == "glorot" else np.zeros(n_out)
        params += [w.astype(dtype), b.astype(dtype)]
    return params


def forward(xp: Any, params: Sequence[Any], x: Any, activation: str = "relu") -> tuple[Any, list[Any]]:
    """Logits for the batch ``x`` (rows are examples) and the input of every layer, for the backward pass."""
    cache = [x]
    for w, b in zip(params[0:-2:2], params[1:-2:2]):
        cache.append(ACTIVATIONS[activation].forward(xp, cache[-1] @ w + b))
    return cache[-1] @ params[-2] + params[-1], cache


def backward(xp: Any, params: Sequence[Any], cache: Sequence[Any], dlogits: Any, activation: str = "relu") -> list[Any]:
    """Gradients ``[dW1, db1, ...]`` of the loss, given ``dlogits`` = d(loss)/d(logits)."""
    grads, delta = [None] * len(params), dlogits
    for i in reversed(range(len(params) // 2)):
        grads[2 * i] = xp.matrix_transpose(cache[i]) @ delta
        grads[2 * i + 1] = xp.sum(delta, axis=0)
        if i > 0:  # the gradient with respect to the input images is never needed
            delta = ACTIVATIONS[activation].backward(xp, cache[i], delta @ xp.matrix_transpose(params[2 * i]))
    return grads


def one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any) -> Any:
    """Rows of ``labels`` (integer class indices) as one-hot vectors, without fancy indexing."""
    return xp.astype(labels[:, None] == xp.arange(n_classes, dtype=labels.dtype, device=labels.device), dtype)


def log_softmax(xp: Any, logits: Any) -> Any:
    # Subtracting the row maximum keeps exp() from overflowing; the result is mathematically unchanged.
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax_cross_entropy(xp: Any, logits: Any, targets: Any) -> tuple[Any, Any]:
    """Mean cross-entropy (a 0-d array) and its gradient with respect to ``logits``; ``targets`` is one-hot."""
    logp, n = log_softmax(xp, logits), logits.shape[0]
    return -xp.sum(targets * logp) / n, (xp.exp(logp) - targets) / n


def _softplus(xp: Any, z: Any) -> Any:
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))  # log(1 + exp(z)) that never overflows


def _xlogx(xp: Any, t: Any) -> Any:
    return xp.where(t > 0, t * xp.log(xp.where(t > 0, t, 1.0)), 0.0)  # t log t, 0 at 0 (scipy's xlogy(t, t))


class Output(NamedTuple):
    """An output layer and its loss, as scikit-learn pairs them: ``forward(xp, raw)`` the values (probabilities or
    predictions); ``rows(xp, raw, targets)`` each row's loss. The loss's gradient with respect to ``raw`` is
    ``forward(raw) - targets`` for all four (canonical links), as scikit-learn computes it."""

    forward: Callable[[Any, Any], Any]
    rows: Callable[[Any, Any, Any], Any]


OUTPUTS: dict[str, Output] = {  # out_activation_ -> (values, loss): log_loss, binary_log_loss, squared_error, poisson
    "softmax": Output(
        lambda xp, z: xp.exp(log_softmax(xp, z)), lambda xp, z, t: -xp.sum(t * log_softmax(xp, z), axis=1)
    ),
    "logistic": Output(ACTIVATIONS["logistic"].forward, lambda xp, z, t: xp.sum(_softplus(xp, z) - t * z, axis=1)),
    "identity": Output(lambda xp, z: z, lambda xp, z, t: 0.5 * xp.mean((t - z) ** 2, axis=1)),
    "exp": Output(lambda xp, z: xp.exp(z), lambda xp, z, t: xp.sum(_xlogx(xp, t) - t * z - t + xp.exp(z), axis=1)),
}


def loss_and_grad(xp: Any, output: str, raw: Any, targets: Any, weights: Any = None) -> tuple[Any, Any, Any]:
    """The (weighted) mean loss of the rows, its gradient with respect to ``raw`` and the divisor (rows, or their
    summed weights: the L2 term is divided by it too). The softmax's unweighted form is `softmax_cross_entropy`."""
    if output == "softmax" and weights is None:
        return (*softmax_cross_entropy(xp, raw, targets), raw.shape[0])
    out = OUTPUTS[output]
    total = raw.shape[0] if weights is None else xp.sum(weights)
    rows, delta = out.rows(xp, raw, targets), out.forward(xp, raw) - targets
    if weights is not None:
        rows, delta = rows * weights, delta * weights[:, None]
    return xp.sum(rows) / total, delta / total, total


def penalty(xp: Any, params: Sequence[Any], alpha: float, n: int) -> Any:
    """The L2 term of the loss over ``n`` rows, ``alpha / (2 n) * sum(W**2)``, biases aside (scikit-learn's)."""
    return (0.5 * alpha / n) * sum(xp.sum(w * w) for w in params[0::2])


def add_penalty(params: Sequence[Any], grads: list[Any], alpha: float, n: int) -> list[Any]:
    """``grads`` with the gradient of `penalty`, ``alpha / n * W``, added to each weight matrix's."""
    for i in range(0, len(grads), 2) if alpha else ():
        grads[i] = grads[i] + alpha / n * params[i]
    return grads


class Hyper(NamedTuple):
    """The optimizers' hyperparameters, with scikit-learn's names and defaults."""

    momentum: float = 0.9
    nesterov: bool = False  # momentum only: step along g + momentum * v (PyTorch's form of Nesterov's method)
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8


DEFAULT = Hyper()


class Ops(NamedTuple):
    """What a rule ``rule(ops, g, *slots, *scalars) -> (step, *slots)`` (``p <- p - step``) computes with, on arrays
    or single numbers (the compiled update); ``decay(s, a, x)``, ``s a + x``, may write into the slot ``s``."""

    sqrt: Callable[[Any], Any]
    mul: Callable[[Any, Any], Any] = lambda a, b: a * b
    add: Callable[[Any, Any], Any] = lambda a, b: a + b
    div: Callable[[Any, Any], Any] = lambda a, b: a / b
    decay: Callable[[Any, Any, Any], Any] = lambda s, a, x: s * a + x


def sgd(op, g, lr):
    """Plain gradient descent, the blog post's rule: ``p <- p - lr g``."""
    return (op.mul(lr, g),)


def momentum(op, g, v, lr, mu):
    """Heavy-ball momentum as PyTorch writes it: ``v <- mu v + g``, ``p <- p - lr v``."""
    v = op.decay(v, mu, g)
    return op.mul(lr, v), v


def nesterov(op, g, v, lr, mu):
    """Momentum with ``Hyper.nesterov``, PyTorch's form: ``v <- mu v + g``, ``p <- p - lr (g + mu v)``."""
    v = op.decay(v, mu, g)
    return op.mul(lr, op.add(g, op.mul(mu, v))), v


def adam(op, g, m, v, step_size, root_bc2, b1, c1, b2, c2, eps):
    """Adam (Kingma & Ba) as PyTorch computes it, the bias corrections folded into two scalars."""
    m = op.decay(m, b1, op.mul(c1, g))
    v = op.decay(v, b2, op.mul(c2, op.mul(g, g)))
    return op.div(op.mul(step_size, m), op.add(op.div(op.sqrt(v), root_bc2), eps)), m, v


def adam_scalars(lr: float, count: int, h: Hyper) -> tuple[float, ...]:
    step_size, root_bc2 = lr / (1.0 - h.beta_1**count), math.sqrt(1.0 - h.beta_2**count)
    return step_size, root_bc2, h.beta_1, 1.0 - h.beta_1, h.beta_2, 1.0 - h.beta_2, h.epsilon


class Optimizer(NamedTuple):
    """An update rule (and its form with ``Hyper.nesterov``); ``scalars(lr, count, hyper)``, its Python floats (a
    tracing compiler compiles once); its state: one array per weight array for each of ``slots``, slot-major."""

    slots: tuple[str, ...]
    scalars: Callable[[float, int, Hyper], tuple[float, ...]]
    rules: tuple[Callable[..., tuple[Any, ...]], ...]
    default_lr: float

    def apply(self, xp, params, grads, state, scalars, h: Hyper = DEFAULT) -> tuple[list[Any], list[Any]]:
        """``(params, state)`` after one update, given the rule's scalars."""
        k, ops = len(params), Ops(xp.sqrt)
        out = [self.rules[h.nesterov](ops, g, *state[i::k], *scalars) for i, g in enumerate(grads)]
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


FULL_BATCH = Optimizer((), lambda lr, count, h: (), (), 1e-3)  # lbfgs: no state of its own, no step rule


class Recipe(NamedTuple):
    """What a training step computes: the activation, the optimizer with its hyperparameters, the L2 penalty, the
    output layer and its loss (`OUTPUTS`)."""

    activation: str = "relu"
    optimizer: str = "adam"
    alpha: float = 0.0
    hyper: Hyper = DEFAULT
    output: str = "softmax"


def gradients(xp: Any, params: Sequence[Any], x: Any, targets: Any, recipe: Recipe, weights: Any = None):
    """``(loss, gradients, raw outputs)`` of the (weighted) rows ``x`` against ``targets``: the data's loss, and
    the gradients of it plus the L2 term (`add_penalty`)."""
    raw, cache = forward(xp, params, x, recipe.activation)
    loss, draw, total = loss_and_grad(xp, recipe.output, raw, targets, weights)
    return loss, add_penalty(params, backward(xp, params, cache, draw, recipe.activation), recipe.alpha, total), raw


def step_body(xp: Any, recipe: Recipe) -> Callable[..., tuple[list[Any], list[Any], Any, Any]]:
    """``body(params, state, x, targets, weights, *scalars) -> (params, state, loss, logits)``, the step's whole
    body (``weights`` None: every row counts once); the loss is the data's, without the L2 term."""

    def body(params, state, x, targets, weights, *scalars):
        loss, grads, logits = gradients(xp, params, x, targets, recipe, weights)
        params, state = OPTIMIZERS[recipe.optimizer].apply(xp, params, grads, state, scalars, recipe.hyper)
        return params, state, loss, logits

    return body


def train_step(xp: Any, recipe: Recipe) -> StepFn:
    """The reference training step: the definition every fast step agrees with."""
    body, scalars = step_body(xp, recipe), OPTIMIZERS[recipe.optimizer].scalars
    return lambda params, state, x, t, count, lr, w=None: body(
        params, state, x, t, w, *scalars(lr, count, recipe.hyper)
    )
