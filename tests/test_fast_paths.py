"""Each backend fast path against the reference step it overrides."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from helpers import run_python
from xpnet.backend import fast_step, make_backend
from xpnet.backend.fast import numpy_inplace as kernels
from xpnet.backend.fast.numpy_inplace import NumpyInplaceStep
from xpnet.nn import ACTIVATIONS, OPTIMIZERS, Hyper, Recipe, init_params, one_hot, train_step

# Every hyperparameter away from its default, and an L2 penalty: a fast step must read them, not constants.
TUNED = {"alpha": 0.05, "hyper": Hyper(momentum=0.8, nesterov=True, beta_1=0.8, beta_2=0.99, epsilon=1e-6)}
LR = {"sgd": 0.1, "momentum": 0.05, "adam": 1e-2}
SIZES = [12, 9, 7, 10]


def host(a):
    """A NumPy copy of a NumPy, JAX or PyTorch array."""
    return np.array(a.cpu().numpy() if hasattr(a, "detach") else a)


def run_steps(step_fn, params, state, batches, lr):
    trace = []
    for count, (x, t) in enumerate(batches, start=1):
        # The rate changes between steps, as it does between epochs, so it must be read on every call.
        params, state, loss, logits = step_fn(params, state, x, t, count, lr * 0.8 ** (count // 3))
        # Copy: the in-place step overwrites its outputs on the next call.
        trace.append((float(loss), host(logits), [host(p) for p in params], [host(s) for s in state]))
    return trace


def problem(rng, sizes, activation, dtype, batch_sizes=(16, 16, 5, 16, 16, 5)):
    """Initial weights and batches; two batch sizes, as at the end of an epoch, so both sets of buffers are used."""
    params = init_params(rng, sizes, activation, dtype)
    batches = []
    for n in batch_sizes:
        x = rng.random((n, sizes[0])).astype(dtype)
        batches.append((x, one_hot(xp, rng.integers(0, 10, n), 10, getattr(xp, dtype))))
    return params, batches


@pytest.mark.parametrize("tuned", [False, True], ids=["defaults", "tuned"])
@pytest.mark.parametrize("update", ["numpy-passes", "numba", "switch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_numpy_inplace_step_equals_the_reference(optimizer, activation, dtype, update, tuned, monkeypatch):
    recipe = Recipe(activation, optimizer, **(TUNED if tuned else {}))
    params, batches = problem(np.random.default_rng(5), SIZES, activation, dtype)
    lr, init = LR[optimizer], OPTIMIZERS[optimizer].init
    ref = run_steps(train_step(xp, recipe), params, init(xp, params), batches, lr)
    # "numpy-passes" is the update where Numba is missing; "switch" starts with it and switches mid-run.
    compiled = {"numpy-passes": False, "numba": True, "switch": None}[update]
    if compiled is not False and kernels.load(optimizer, dtype) is None:
        pytest.skip(kernels.describe(optimizer, dtype))
    if update == "switch":  # as in a process that has not loaded the compiled update yet
        monkeypatch.setattr(kernels, "ready", lambda *_: False)
    step = NumpyInplaceStep(SIZES, recipe, dtype, compiled)
    if update == "switch":
        assert step.kernel is None
        step._until_compiled = 2 * step.theta.size
    fast = run_steps(step, params, init(xp, params), batches, lr)
    assert (step.kernel is None) == (update == "numpy-passes")

    # Equal values (assert_array_equal treats -0.0 and 0.0 as equal: relu's backward may give either).
    for (l_ref, z_ref, p_ref, s_ref), (l_fast, z_fast, p_fast, s_fast) in zip(ref, fast, strict=True):
        assert l_ref == l_fast
        np.testing.assert_array_equal(z_ref, z_fast)
        for a, b in zip(p_ref + s_ref, p_fast + s_fast, strict=True):
            assert a.dtype == b.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b)
    # The caller's initial arrays were copied in, never written to.
    np.testing.assert_array_equal(params[0], init_params(np.random.default_rng(5), SIZES, activation, dtype)[0])


# A few cases, not the full product: each compiles twice (two batch shapes) and compiling takes most of the time.
# The last two tune every hyperparameter (TUNED: an L2 penalty, Nesterov's momentum, other betas).
CASES = [
    ("adam", "relu", "float32", False),
    ("adam", "tanh", "float64", False),
    ("momentum", "logistic", "float32", False),
    ("sgd", "relu", "float64", False),
    ("adam", "relu", "float64", True),
    ("momentum", "tanh", "float32", True),
]
FAST_MODULES = {"jax": "xpnet.backend.fast.jax_jit", "torch": "xpnet.backend.fast.torch_fused"}


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # the cuda cases run where a GPU answers (scripts/gpu_check.sh)
@pytest.mark.parametrize("library", sorted(FAST_MODULES))
@pytest.mark.parametrize(("optimizer", "activation", "dtype", "tuned"), CASES)
def test_compiled_and_fused_steps_agree_with_the_reference(library, optimizer, activation, dtype, tuned, device):
    pytest.importorskip(library)
    from xpnet.check import TOLERANCES, rel_diff
    from xpnet.errors import BackendError

    try:
        backend = make_backend(library, device)
    except BackendError as e:
        pytest.skip(str(e))
    bxp, lr = backend.xp, LR[optimizer]
    host_params, host_batches = problem(np.random.default_rng(6), SIZES, activation, dtype)
    batches = [(backend.asarray(x), backend.asarray(t)) for x, t in host_batches]

    def fresh():  # the jitted step donates its inputs: each run gets its own arrays
        params = [backend.asarray(p) for p in host_params]
        return params, OPTIMIZERS[optimizer].init(bxp, params)

    recipe = Recipe(activation, optimizer, **(TUNED if tuned else {}))
    ref = run_steps(train_step(bxp, recipe), *fresh(), batches, lr)
    step = fast_step(backend, SIZES, recipe, backend.dtype(dtype))
    assert type(step).__module__ == FAST_MODULES[library]
    fast = run_steps(step, *fresh(), batches, lr)
    tol = TOLERANCES[dtype]
    for (l_ref, z_ref, p_ref, s_ref), (l_fast, z_fast, p_fast, s_fast) in zip(ref, fast, strict=True):
        assert abs(l_fast - l_ref) <= tol.forward * abs(l_ref)
        assert rel_diff(z_fast, z_ref) <= tol.forward
        for a, b in zip(p_fast + s_fast, p_ref + s_ref, strict=True):
            assert a.dtype == b.dtype == np.dtype(dtype)
            assert rel_diff(a, b) <= tol.for_optimizer(optimizer)
    if library == "jax":  # one compilation per batch shape, not one per step: the step and the rate are traced
        assert step._compiled._cache_size() == 2
    # The host arrays the weights came from are untouched (by the donation, by the in-place update).
    np.testing.assert_array_equal(host_params[0], init_params(np.random.default_rng(6), SIZES, activation, dtype)[0])


def test_backends_without_a_fast_step_get_none():
    backend = make_backend("array-api-strict", "cpu")
    assert fast_step(backend, [4, 3, 2], Recipe("relu", "adam"), backend.dtype("float32")) is None


def test_training_flushes_subnormals_where_the_cpu_allows():
    import platform

    from xpnet.backend.fast import flushes, flushing

    linux_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    if platform.machine().lower() not in ("x86_64", "amd64", "aarch64") or not linux_glibc:
        pytest.skip("FTZ/DAZ is tested where it is known to work: glibc on x86-64 and AArch64")
    with flushing():
        assert flushes()
        # A subnormal Adam moment becomes zero in the update, and nothing else changes: normal values are exact.
        v = np.array([1e-40, 1e-30, 0.5], dtype=np.float32)
        np.testing.assert_array_equal(v * np.float32(0.999), np.array([0.0, 0.999e-30, 0.4995], dtype=np.float32))


def test_a_new_step_uses_the_update_its_process_has_compiled_from_the_first():
    """A second fit in one process need not wait SWITCH_AFTER weights for an update that is already loaded."""
    if kernels.load("adam", "float32") is None:
        pytest.skip(kernels.describe())
    assert kernels.ready("adam", "float32")
    assert NumpyInplaceStep(SIZES, Recipe("relu", "adam"), "float32").kernel is not None
    assert NumpyInplaceStep(SIZES, Recipe("relu", "adam"), "float32", compiled=False).kernel is None


def test_the_numpy_update_stays_where_numba_is_missing_or_turned_off(monkeypatch):
    import sys

    for value in ("1", "yes", " 1"):
        monkeypatch.setenv(kernels.DISABLE, value)
        assert kernels.load("adam", "float32") is None
        assert kernels.describe() == f"NumPy passes ({kernels.DISABLE} is set)"
    monkeypatch.setenv(kernels.DISABLE, "0")
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ModuleNotFoundError
    kernels._loaded.clear()
    try:
        assert kernels.load("adam", "float32") is None
        assert "numba unavailable: ModuleNotFoundError" in kernels.describe()
        assert "pip install 'xpnet[fast]'" in kernels.describe()
        # The step then keeps NumPy's passes after the switch point, and still trains.
        step = NumpyInplaceStep([4, 3, 10], Recipe("relu", "adam"), "float32", compiled=None)
        step._until_compiled = 0
        params, batches = problem(np.random.default_rng(0), [4, 3, 10], "relu", "float32", (8, 8))
        run_steps(step, params, OPTIMIZERS["adam"].init(xp, params), batches, 1e-2)
        assert step.kernel is None and step._until_compiled < 0  # asked once, not on every update
    finally:
        kernels._loaded.clear()


def test_an_update_that_fails_to_compile_or_cache_leaves_the_numpy_passes(monkeypatch):
    numba = pytest.importorskip("numba")
    calls = []

    def broken(op, g, lr):  # compiles, then fails as a damaged cache or a full disk makes the first call fail
        if g == g:
            raise ValueError("cannot be had")
        return (lr * g,)

    real_njit = numba.njit

    def njit(**options):
        if "cache" in options:  # the loop's compile; the rule is inlined into it
            calls.append(options["cache"])
        return real_njit(**options)

    monkeypatch.setitem(OPTIMIZERS, "sgd", OPTIMIZERS["sgd"]._replace(rules=(broken, broken)))
    monkeypatch.setattr(numba, "njit", njit)
    kernels._loaded.clear()
    try:
        assert kernels.load("sgd", "float64") is None
        said = kernels.describe("sgd", "float64")
        assert said.startswith("NumPy passes (numba could not compile the broken update: ValueError: cannot be had")
        assert calls == [True, False]  # tried with the on-disk cache, then without it
    finally:
        kernels._loaded.clear()


def test_numba_disable_jit_leaves_the_numpy_passes(monkeypatch):
    numba = pytest.importorskip("numba")
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    kernels._loaded.clear()
    try:
        assert kernels.load("adam", "float32") is None and "NUMBA_DISABLE_JIT" in kernels.describe()
    finally:
        kernels._loaded.clear()


def test_a_short_run_never_imports_numba():
    # The compiled update pays only past SWITCH_AFTER weight updates; a 2-epoch digits run makes far fewer.
    code = (
        "import sys; from xpnet.backend import make_backend; from xpnet.data import load_dataset; "
        "from xpnet.training.model import TrainConfig; from xpnet.training.loop import train; "
        "train(make_backend('numpy', 'cpu'), load_dataset('digits'), TrainConfig(max_iter=2)); "
        "print('numba' in sys.modules)"
    )
    done = run_python("-c", code, env={kernels.DISABLE: ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"
