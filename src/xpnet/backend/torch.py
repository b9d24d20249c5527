"""PyTorch tensors on the CPU or a CUDA GPU (never a dependency), with a fused step (``fast/torch_fused.py``)."""

import functools

from ..errors import BackendError
from . import Backend, BackendSpec, Probe, cuda_index

HINT = "pip install torch (https://pytorch.org has the command for a CUDA build)"


def make(device: str) -> Backend:
    torch = SPEC.load()
    import array_api_compat.torch as xp

    to_numpy = functools.partial(torch.Tensor.numpy, force=True)  # detached, on the host
    if device == "cpu":
        # Threads keep the floating-point mode of the thread that starts them: PyTorch's workers are started
        # here by a parallel pass, so that none starts inside training's flush (fast/__init__.py) and keeps it.
        torch.ones(1 << 20).add_(1.0)
        return Backend("torch", xp, torch.device("cpu"), "cpu", to_numpy, copy_read_only=True)
    if not torch.cuda.is_available():
        raise BackendError("PyTorch has no CUDA device here (a CPU-only build, or no driver/GPU)")
    dev = torch.device("cuda", cuda_index(device, torch.cuda.device_count(), "PyTorch"))
    return Backend("torch", xp, dev, device, to_numpy, lambda: torch.cuda.synchronize(dev), copy_read_only=True)


def probe() -> Probe:
    torch = SPEC.load()
    version = f"torch {torch.__version__}"
    if not torch.cuda.is_available():
        return Probe("torch", True, f"{version} (no CUDA)", ("cpu",))
    n = torch.cuda.device_count()
    tf32 = "on" if torch.backends.cuda.matmul.allow_tf32 else "off"
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(n))
    version += f" (CUDA {torch.version.cuda}; {names}; TF32 matmul {tf32})"
    return Probe("torch", True, version, ("cpu", *(f"cuda:{i}" for i in range(n))))


def device_of(device) -> str:
    return "cpu" if device.type == "cpu" else f"{device.type}:{device.index or 0}"


SPEC = BackendSpec(
    "torch", make, probe, 2, ("cpu", "cuda"), install_hint=HINT, fast="torch_fused.TorchFusedStep", device_of=device_of
)
