"""Side-by-side training speed: xpnet on every backend, plain PyTorch, the blog's loop, the GEMM ceiling.

One run measures, on the same data (Fashion-MNIST's 60,000 training images when Debian's package is
installed, else same-shaped synthetic arrays, and the table says which):

- xpnet through its public API on every available backend/device, reference model 784-256-128-10 relu,
  Adam, float32, at each ``--batch-sizes``: median seconds per epoch after discarded warm-up epochs;
- the same model, optimizer, batch and initial weights in plain PyTorch (CPU, and CUDA when present);
- the blog post's comparison: a sigmoid 784-30-10 network trained by SGD one example at a time versus
  vectorised over each mini-batch, on the same examples, with the same updates;
- the float32 GEMM ceiling of each device, and each training run's achieved GFLOP/s
  (6 x parameters x samples per second) as a fraction of it.

Run from the repository root: ``PYTHONPATH=src python scripts/bench.py [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xpnet import __version__
from xpnet.backend import Backend, names, resolve_backend
from xpnet.cli import common as cli
from xpnet.data import Dataset, load_dataset
from xpnet.data.datasets import SYSTEM_DIRS, find_idx_files
from xpnet.errors import BackendError, XpnetError
from xpnet.nn import losses, model
from xpnet.nn.initializers import init_params
from xpnet.nn.optim import OPTIMIZERS
from xpnet.training.config import TrainConfig
from xpnet.training.loop import train

REFERENCE_HIDDEN = (256, 128)
BLOG_HIDDEN = (30,)  # Nielsen's network.py [784, 30, 10], the shape of the blog post's 3-layer network
SECTIONS = ("gemm", "xpnet", "torch", "blog")
# (label, --device, --backend) of every xpnet target; array-api-strict is slow and off unless asked for.
XPNET_TARGETS = {
    "numpy": ("cpu", "numpy"),
    "torch-cpu": ("cpu", "torch"),
    "array-api-strict": ("cpu", "array-api-strict"),
    "cupy": ("cuda", "cupy"),
    "torch-cuda": ("cuda", "torch"),
}
DEFAULT_TARGETS = ("numpy", "torch-cpu", "cupy", "torch-cuda")
# Settings a reader needs to know, reported and never set here: CPU threads, and whether GPU GEMMs may use TF32.
THREAD_AND_TF32_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUPY_TF32",
    "NVIDIA_TF32_OVERRIDE",
)
CPU_TARGET_RATIO = 0.8  # issue 5: xpnet-numpy s/epoch <= 0.8 x plain PyTorch-CPU at batch 128


class BenchError(XpnetError):
    """A benchmark option cannot be honoured."""


# --------------------------------------------------------------------------------------------- results


@dataclass
class TrainRow:
    """One training run: who, where, at what batch, and its timed epochs."""

    impl: str  # "xpnet" or "pytorch"
    target: str  # "numpy", "torch-cpu", "cuda", ...
    device: str  # "cpu" or "cuda:0"
    batch: int
    samples: int  # training examples per epoch
    epoch_seconds: list[float]  # timed epochs only, warm-up discarded
    warmup_seconds: list[float]
    test_accuracy: float
    params: int

    @property
    def seconds(self) -> float:
        return statistics.median(self.epoch_seconds)

    @property
    def best(self) -> float:
        """The fastest timed epoch: on a shared machine, the one least slowed by other processes."""
        return min(self.epoch_seconds)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds

    @property
    def gflops(self) -> float:
        return training_flops(self.params, self.samples) / self.seconds / 1e9

    def to_dict(self, ceiling: float | None) -> dict[str, Any]:
        d = asdict(self)
        d |= {
            "median_epoch_seconds": self.seconds,
            "best_epoch_seconds": self.best,
            "samples_per_second": self.samples_per_second,
            "gflops": self.gflops,
            "fraction_of_ceiling": self.gflops / ceiling if ceiling else None,
        }
        return d


@dataclass
class GemmRow:
    library: str
    device: str
    shape: tuple[int, int, int]  # (m, k, n): (m x k) @ (k x n)
    seconds: float  # best of the repeats
    gflops: float


@dataclass
class BlogResult:
    layers: list[int]
    batch: int
    examples: int
    per_example_seconds: float
    vectorised_seconds: float  # median over repeats of one pass over the same examples
    max_param_difference: float  # per-example vs vectorised final weights: the same updates, so ~rounding
    dtype: str

    @property
    def speedup(self) -> float:
        return self.per_example_seconds / self.vectorised_seconds


@dataclass
class Report:
    setup: dict[str, Any]
    gemm: list[GemmRow] = field(default_factory=list)
    runs: list[TrainRow] = field(default_factory=list)
    blog: BlogResult | None = None
    skipped: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- arithmetic


def count_params(sizes: Sequence[int]) -> int:
    """Weights and biases of an MLP with these layer sizes."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def training_flops(params: int, samples: int) -> float:
    """FLOPs to train on ``samples`` examples: 2 per weight forward, 4 backward (the usual 6 x P x N)."""
    return 6.0 * params * samples


def split_warmup(seconds: Sequence[float], warmup: int) -> tuple[list[float], list[float]]:
    """(warm-up epochs, timed epochs); refuses to time nothing."""
    if len(seconds) <= warmup:
        raise BenchError(f"{len(seconds)} epoch(s) recorded but {warmup} are warm-up: raise --epochs")
    return list(seconds[:warmup]), list(seconds[warmup:])


def ceilings(gemm: Sequence[GemmRow]) -> dict[str, float]:
    """Best square-GEMM GFLOP/s per device, over the libraries measured there."""
    best: dict[str, float] = {}
    for row in gemm:
        if row.shape[0] == row.shape[1] == row.shape[2]:
            best[row.device] = max(best.get(row.device, 0.0), row.gflops)
    return best


# ------------------------------------------------------------------------------------------------ setup


def openblas_threads() -> int | None:
    """Threads NumPy's OpenBLAS will use, asked of the loaded library itself (None when unknown)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
        for path in sorted(libs):
            lib = ctypes.CDLL(path)
            for symbol in (
                "scipy_openblas_get_num_threads64_",
                "openblas_get_num_threads64_",
                "openblas_get_num_threads",
            ):
                fn = getattr(lib, symbol, None)
                if fn is not None:
                    return int(fn())
    except (OSError, ValueError):
        pass
    return None


def cpu_pressure() -> float | None:
    """Percent of the last minute in which runnable tasks waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        return float(dict(field.split("=") for field in some[1:])["avg60"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def describe_setup(data: Dataset, argv: Sequence[str]) -> dict[str, Any]:
    """What a reader needs to judge the numbers: machine, libraries, threads, data, load."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        numpy_blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # show_config's layout is not a stable API
        numpy_blas = "unknown"
    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu_model)
    except OSError:
        pass
    setup: dict[str, Any] = {
        "command": "python scripts/bench.py " + " ".join(argv),
        "xpnet": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas,
        "numpy_blas_threads": openblas_threads(),
        "thread_env": {k: os.environ[k] for k in THREAD_AND_TF32_ENV if k in os.environ},
        "cpu": cpu_model,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "cpu_pressure_at_start": cpu_pressure(),
        "data": data.name,
        "data_source": data.source,
        "train_samples": len(data.y_train),
    }
    torch = import_torch()
    if torch is not None:
        setup |= {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "torch_cuda": torch.cuda.is_available(),
            "torch_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        }
    return setup


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def synthetic_dataset(n_train: int = 60_000, n_test: int = 10_000, seed: int = 0) -> Dataset:
    """Random uint8 images and labels shaped like Fashion-MNIST: speed is all they are good for."""
    rng = np.random.default_rng(seed)
    return Dataset(
        "synthetic",
        rng.integers(0, 256, size=(n_train, 784), dtype=np.uint8),
        rng.integers(0, 10, size=n_train, dtype=np.uint8),
        rng.integers(0, 256, size=(n_test, 784), dtype=np.uint8),
        rng.integers(0, 10, size=n_test, dtype=np.uint8),
        (28, 28),
        source="random uint8, seed 0 (Fashion-MNIST not installed)",
    )


def bench_data(kind: str, n_train: int | None) -> Dataset:
    """Fashion-MNIST from Debian's package when asked for (or ``auto`` and present), else synthetic."""
    if kind == "auto":
        kind = "fashion-mnist" if find_idx_files(SYSTEM_DIRS["fashion-mnist"]) is not None else "synthetic"
    data = load_dataset("fashion-mnist") if kind == "fashion-mnist" else synthetic_dataset()
    if n_train is not None and n_train < len(data.y_train):
        data = Dataset(
            data.name,
            data.x_train[:n_train],
            data.y_train[:n_train],
            data.x_test,
            data.y_test,
            data.image_shape,
            f"{data.source} (first {n_train} training images)",
        )
    return data


# ------------------------------------------------------------------------------------------------- GEMM


def time_gemm(backend: Backend, m: int, k: int, n: int, repeats: int) -> GemmRow:
    """Best-of-``repeats`` float32 ``(m x k) @ (k x n)`` on ``backend``, after one untimed call."""
    rng = np.random.default_rng(0)
    a = backend.asarray(rng.standard_normal((m, k), dtype=np.float32))
    b = backend.asarray(rng.standard_normal((k, n), dtype=np.float32))
    c = a @ b  # warm-up: library initialisation, kernel selection, thread pool start
    backend.sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        c = a @ b
        backend.sync()
        best = min(best, time.perf_counter() - start)
    del c
    return GemmRow(backend.name, backend.device_name, (m, k, n), best, 2.0 * m * k * n / best / 1e9)


def bench_gemm(backends: dict[str, Backend], size: int, batches: Sequence[int], repeats: int) -> list[GemmRow]:
    """Square GEMM (the ceiling) and the reference model's largest batch-shaped GEMM on each backend."""
    rows = []
    for backend in backends.values():
        # GPUs need a larger problem than CPUs to reach their peak.
        n = size * 4 if backend.device_name.startswith("cuda") else size
        rows.append(time_gemm(backend, n, n, n, repeats))
        for b in batches:
            rows.append(time_gemm(backend, b, 784, REFERENCE_HIDDEN[0], repeats * 5))
    return rows


# ------------------------------------------------------------------------------------------- training


def bench_xpnet(target: str, backend: Backend, data: Dataset, batch: int, epochs: int, warmup: int) -> TrainRow:
    """xpnet's own trainer; its per-epoch seconds exclude scoring and sync the device around each epoch."""
    config = TrainConfig(hidden=REFERENCE_HIDDEN, optimizer="adam", epochs=warmup + epochs, batch_size=batch)
    result = train(backend, data, config)
    warm, timed = split_warmup([e.seconds for e in result.history], warmup)
    sizes = model.layer_sizes(data.n_features, REFERENCE_HIDDEN, 10)
    return TrainRow(
        "xpnet", target, backend.device_name, batch, len(data.y_train), timed, warm,
        result.history[-1].test_accuracy, count_params(sizes),
    )  # fmt: skip


def bench_torch(device: str, data: Dataset, batch: int, epochs: int, warmup: int, seed: int = 1) -> TrainRow:
    """The same model in plain PyTorch, as a user would write it with the data already on the device.

    nn.Sequential, CrossEntropyLoss, torch.optim.Adam with its defaults, a fresh permutation each epoch
    and contiguous slices of the shuffled tensors; it starts from xpnet's initial weights and, like
    xpnet's trainer, accumulates loss and correct predictions on the device.
    """
    import torch
    from torch import nn

    dev = torch.device("cuda", 0) if device == "cuda" else torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    sizes = model.layer_sizes(data.n_features, REFERENCE_HIDDEN, 10)
    rng = np.random.default_rng(seed)
    host = init_params(rng, sizes, "relu", "float32")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(host[2 * i].T.copy()))
            linear.bias.copy_(torch.from_numpy(host[2 * i + 1]))
        layers += [linear, nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=OPTIMIZERS["adam"].default_lr)
    loss_fn = nn.CrossEntropyLoss()

    # np.array copies: IDX arrays are read-only views of the file's bytes, which torch.from_numpy warns about.
    x = torch.from_numpy(np.array(data.x_train)).to(dev).float() / 255.0
    y = torch.from_numpy(data.y_train.astype(np.int64)).to(dev)
    n = x.shape[0]
    seconds = []
    for _ in range(warmup + epochs):
        sync()
        start = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(n)).to(dev)
        xs, ys = x[perm], y[perm]
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        for i in range(0, n, batch):
            xb, yb = xs[i : i + batch], ys[i : i + batch]
            logits = net(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * xb.shape[0]
            correct += (logits.argmax(1) == yb).sum()
        sync()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        x_test = torch.from_numpy(np.array(data.x_test)).to(dev).float() / 255.0
        y_test = torch.from_numpy(data.y_test.astype(np.int64)).to(dev)
        test_accuracy = float((net(x_test).argmax(1) == y_test).float().mean())
    warm, timed = split_warmup(seconds, warmup)
    target, name = ("cpu", "cpu") if dev.type == "cpu" else ("cuda", f"cuda:{dev.index}")
    return TrainRow("pytorch", target, name, batch, n, timed, warm, test_accuracy, count_params(sizes))


# ------------------------------------------------------------------------------------------------ blog


def blog_sgd_pass(
    backend: Backend, params: list[Any], x: Any, t: Any, batch: int, lr: float, per_example: bool
) -> list[Any]:
    """One pass of SGD over (x, targets t) in mini-batches, as the blog post trains its network.

    ``per_example`` computes each mini-batch's gradient one example at a time and sums them (the loop
    the post started from); otherwise one forward/backward over the stacked batch gives the same mean.
    """
    xp = backend.xp
    n = x.shape[0]
    for i in range(0, n, batch):
        j = min(i + batch, n)
        if per_example:
            grads = None
            for r in range(i, j):
                logits, cache = model.forward(xp, params, x[r : r + 1, ...], "sigmoid")
                _, dlogits = losses.softmax_cross_entropy(xp, logits, t[r : r + 1, ...])
                g = model.backward(xp, params, cache, dlogits, "sigmoid")
                grads = g if grads is None else [s + d for s, d in zip(grads, g)]
            grads = [g / float(j - i) for g in grads]
        else:
            logits, cache = model.forward(xp, params, x[i:j, ...], "sigmoid")
            _, dlogits = losses.softmax_cross_entropy(xp, logits, t[i:j, ...])
            grads = model.backward(xp, params, cache, dlogits, "sigmoid")
        params, _ = OPTIMIZERS["sgd"].update(xp, params, grads, [], 0, lr)
    return params


def bench_blog(
    backend: Backend, data: Dataset, examples: int, batch: int, repeats: int, dtype: str = "float32"
) -> BlogResult:
    """Per-example versus vectorised training of the sigmoid 784-30-10 network on the same examples."""
    xp = backend.xp
    n = min(examples, len(data.y_train))
    sizes = model.layer_sizes(data.n_features, BLOG_HIDDEN, 10)
    start_params = init_params(np.random.default_rng(1), sizes, "sigmoid", dtype)
    x = xp.astype(backend.asarray(data.x_train[:n]), backend.dtype(dtype)) / 255.0
    t = losses.one_hot(xp, backend.asarray(data.y_train[:n].astype(np.int64)), 10, backend.dtype(dtype))
    lr = 0.5

    def run(per_example: bool) -> tuple[float, list[Any]]:
        params = [backend.asarray(p) for p in start_params]
        backend.sync()
        begin = time.perf_counter()
        params = blog_sgd_pass(backend, params, x, t, batch, lr, per_example)
        backend.sync()
        return time.perf_counter() - begin, params

    slow, slow_params = run(per_example=True)
    fast_runs = [run(per_example=False) for _ in range(repeats)]
    fast = statistics.median(s for s, _ in fast_runs)
    diff = max(
        float(np.max(np.abs(backend.to_numpy(a) - backend.to_numpy(b)))) for a, b in zip(slow_params, fast_runs[0][1])
    )
    return BlogResult(sizes, batch, n, slow, fast, diff, dtype)


# ----------------------------------------------------------------------------------------------- report


def format_setup(s: dict[str, Any]) -> str:
    """The lines that say what was measured on: data, machine, libraries and their threads."""
    lines = [
        f"data: {s['data']} ({s['data_source']}), {s['train_samples']} training images per epoch",
        f"machine: {s['cpu']}, {s['cpus_usable']} usable CPUs, load average {s['load_average_at_start']:.2f} at start"
        + pressure_note(s.get("cpu_pressure_at_start")),
        f"numpy {s['numpy']} ({s['numpy_blas']}, {s['numpy_blas_threads'] or '?'} BLAS threads)"
        + (f"; torch {s['torch']} ({s['torch_threads']} threads, cuda {s['torch_cuda']})" if "torch" in s else "")
        + (f"; env {s['thread_env']}" if s["thread_env"] else ""),
    ]
    return "\n".join(lines)


def pressure_note(pressure: float | None) -> str:
    return "" if pressure is None else f", tasks waited for a CPU {pressure:.0f}% of the last minute"


def format_report(report: Report) -> str:
    """The tables: GEMM ceilings, training runs with the target ratios, the blog comparison, skips."""
    lines: list[str] = []
    best = ceilings(report.gemm)
    if report.gemm:
        lines += ["float32 GEMM (best of repeats)", f"{'library':<18}{'device':<9}{'m x k x n':>20}{'GFLOP/s':>10}"]
        for g in report.gemm:
            shape = "x".join(map(str, g.shape))
            lines.append(f"{g.library:<18}{g.device:<9}{shape:>20}{g.gflops:>10.1f}")
        lines.append("ceiling per device (best square GEMM): " + ", ".join(f"{d} {v:.1f}" for d, v in best.items()))
    if report.runs:
        r0 = report.runs[0]
        lines += [
            "",
            f"training {'-'.join(map(str, [784, *REFERENCE_HIDDEN, 10]))} relu, Adam, float32 "
            f"({r0.params} parameters; median of {len(r0.epoch_seconds)} timed epochs after "
            f"{len(r0.warmup_seconds)} warm-up)",
            f"{'impl':<9}{'target':<18}{'device':<8}{'batch':>6}{'s/epoch':>9}{'best s':>8}{'samples/s':>11}"
            f"{'GFLOP/s':>9}{'of ceil':>9}{'test acc':>9}",
        ]
        for r in report.runs:
            ceil = best.get(r.device)
            frac = f"{100 * r.gflops / ceil:8.0f}%" if ceil else f"{'-':>9}"
            lines.append(
                f"{r.impl:<9}{r.target:<18}{r.device:<8}{r.batch:>6}{r.seconds:>9.3f}{r.best:>8.3f}"
                f"{r.samples_per_second:>11.0f}"
                f"{r.gflops:>9.1f}{frac}{100 * r.test_accuracy:>8.2f}%"
            )
        lines += [""] + [line for line in key_ratios(report.runs)]
    if report.blog is not None:
        b = report.blog
        lines += [
            "",
            f"blog post: sigmoid {'-'.join(map(str, b.layers))}, SGD, mini-batch {b.batch}, {b.dtype}, "
            f"the same {b.examples} examples (numpy)",
            f"  one example at a time: {b.per_example_seconds:.3f} s ({1e6 * b.per_example_seconds / b.examples:.1f} "
            f"us/example)",
            f"  vectorised over the batch: {b.vectorised_seconds:.3f} s "
            f"({1e6 * b.vectorised_seconds / b.examples:.1f} us/example)",
            f"  speed-up {b.speedup:.1f}x (the post saw 15x); "
            f"largest weight difference between the two {b.max_param_difference:.1e}",
        ]
    if report.skipped:
        lines += ["", "skipped: " + "; ".join(report.skipped)]
    return "\n".join(lines)


def find_row(runs: Sequence[TrainRow], impl: str, target: str, batch: int) -> TrainRow | None:
    return next((r for r in runs if r.impl == impl and r.target == target and r.batch == batch), None)


def key_ratios(runs: Sequence[TrainRow]) -> list[str]:
    """The issue's targets, stated as the ratios they are judged by."""
    out = []
    batches = sorted({r.batch for r in runs})
    for batch in batches:
        cpu, peer = find_row(runs, "xpnet", "numpy", batch), find_row(runs, "pytorch", "cpu", batch)
        if cpu and peer:
            ratio = cpu.seconds / peer.seconds
            verdict = ("met" if ratio <= CPU_TARGET_RATIO else "NOT met") if batch == 128 else "no target"
            out.append(
                f"xpnet-numpy / pytorch-cpu seconds per epoch at batch {batch}: {ratio:.2f} "
                f"(target <= {CPU_TARGET_RATIO} at batch 128: {verdict}); best epochs: {cpu.best / peer.best:.2f}"
            )
        gpu, gpu_peer = find_row(runs, "xpnet", "cupy", batch), find_row(runs, "pytorch", "cuda", batch)
        if gpu and gpu_peer:
            ratio = gpu.samples_per_second / gpu_peer.samples_per_second
            verdict = "met" if ratio >= 1.0 else "NOT met"
            out.append(
                f"xpnet-cupy / pytorch-cuda samples per second at batch {batch}: {ratio:.2f} (target >= 1: {verdict})"
            )
    return out


def report_json(report: Report) -> dict[str, Any]:
    best = ceilings(report.gemm)
    blog = None
    if report.blog is not None:
        blog = asdict(report.blog) | {"speedup": report.blog.speedup}
    ratios = {}
    for batch in sorted({r.batch for r in report.runs}):
        cpu, peer = find_row(report.runs, "xpnet", "numpy", batch), find_row(report.runs, "pytorch", "cpu", batch)
        if cpu and peer:
            ratios[f"numpy_over_torch_cpu_seconds_batch{batch}"] = cpu.seconds / peer.seconds
            ratios[f"numpy_over_torch_cpu_best_seconds_batch{batch}"] = cpu.best / peer.best
        gpu, gpu_peer = find_row(report.runs, "xpnet", "cupy", batch), find_row(report.runs, "pytorch", "cuda", batch)
        if gpu and gpu_peer:
            ratios[f"cupy_over_torch_cuda_samples_batch{batch}"] = gpu.samples_per_second / gpu_peer.samples_per_second
    return {
        "setup": report.setup,
        "gemm": [asdict(g) for g in report.gemm],
        "gemm_ceiling_gflops": best,
        "runs": [r.to_dict(best.get(r.device)) for r in report.runs],
        "ratios": ratios,
        "blog": blog,
        "skipped": report.skipped,
    }


# ------------------------------------------------------------------------------------------------- main


def comma_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(part.strip() for part in text.split(",") if part.strip())
        bad = [i for i in items if i not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}, got {text!r}")
        return items

    return parse


def batch_list(text: str) -> tuple[int, ...]:
    return tuple(cli.positive_int(part) for part in text.split(","))


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog="scripts/bench.py",
        description="Time xpnet on every backend beside plain PyTorch, the blog post's per-example loop and "
        "the GEMM ceiling. Timings are medians of timed epochs after warm-up epochs.",
    )
    p.add_argument(
        "--only", type=comma_list(SECTIONS), default=SECTIONS, help=f"sections to run (default: {','.join(SECTIONS)})"
    )
    p.add_argument(
        "--targets",
        type=comma_list(tuple(XPNET_TARGETS)),
        default=DEFAULT_TARGETS,
        help=f"xpnet backends to time; missing devices are skipped with why (default: {','.join(DEFAULT_TARGETS)})",
    )
    p.add_argument("--batch-sizes", type=batch_list, default=(128, 1024), metavar="B,B", help="default: 128,1024")
    p.add_argument("--epochs", type=cli.positive_int, default=3, help="timed epochs per run (default: 3)")
    p.add_argument("--warmup", type=cli.positive_int, default=1, help="discarded warm-up epochs per run (default: 1)")
    p.add_argument(
        "--rounds",
        type=cli.positive_int,
        default=1,
        help="repeat every training run this many times, interleaved, pooling the timed epochs (default: 1)",
    )
    p.add_argument("--data", choices=("auto", "fashion-mnist", "synthetic"), default="auto", help="default: auto")
    p.add_argument("--n-train", type=cli.positive_int, default=None, help="use only the first N training images")
    p.add_argument("--blog-examples", type=cli.positive_int, default=5000, help="examples for the blog comparison")
    p.add_argument("--blog-batch", type=cli.positive_int, default=10, help="its mini-batch size (default: 10)")
    p.add_argument("--gemm-size", type=cli.positive_int, default=2048, help="square CPU GEMM size; GPUs use 4x")
    p.add_argument("--quick", action="store_true", help="10,000 images, 1 timed epoch, smaller blog and GEMM")
    p.add_argument("--json", metavar="PATH", default=None, help="also write every figure to this JSON file")
    return p


def available_backends(targets: Sequence[str], skipped: list[str]) -> dict[str, Backend]:
    found = {}
    for target in targets:
        device, name = XPNET_TARGETS[target]
        try:
            found[target] = resolve_backend(device, name)
        except BackendError as e:
            skipped.append(f"xpnet {target}: {e}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.quick:
        args.n_train = args.n_train or 10_000
        args.epochs, args.blog_examples, args.gemm_size = 1, min(args.blog_examples, 1000), 1024
    data = bench_data(args.data, args.n_train)
    report = Report(describe_setup(data, argv))
    print(format_setup(report.setup), flush=True)
    backends = available_backends(args.targets, report.skipped)
    if "jax" not in names():  # the issue lists JAX among the namespaces; say so rather than drop it silently
        report.skipped.append("xpnet jax: xpnet.backend offers no jax backend yet")
    torch = import_torch()

    if "gemm" in args.only:
        report.gemm = bench_gemm(backends, args.gemm_size, args.batch_sizes, repeats=5)

    jobs: list[tuple[str, Callable[[], TrainRow]]] = []
    for batch in args.batch_sizes:
        if "xpnet" in args.only:
            for target, backend in backends.items():
                jobs.append((f"xpnet {target} batch {batch}", lambda b=batch, t=target, be=backend: bench_xpnet(
                    t, be, data, b, args.epochs, args.warmup)))  # fmt: skip
        if "torch" in args.only:
            devices = [] if torch is None else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            for dev in devices:
                jobs.append((f"pytorch {dev} batch {batch}", lambda b=batch, d=dev: bench_torch(
                    d, data, b, args.epochs, args.warmup)))  # fmt: skip
    if "torch" in args.only:
        if torch is None:
            report.skipped.append("plain PyTorch: torch is not installed")
        elif not torch.cuda.is_available():
            report.skipped.append("plain PyTorch cuda: no CUDA device")

    # Rounds interleave the runs, so that a burst of load on a shared machine hits all of them alike.
    rows: dict[str, TrainRow] = {}
    for r in range(args.rounds):
        for label, job in jobs:
            print(f"round {r + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
            row = job()
            if label in rows:
                rows[label].epoch_seconds += row.epoch_seconds
                rows[label].warmup_seconds += row.warmup_seconds
            else:
                rows[label] = row
    report.runs = list(rows.values())

    if "blog" in args.only:
        report.blog = bench_blog(resolve_backend("cpu", "numpy"), data, args.blog_examples, args.blog_batch, repeats=5)

    report.setup["load_average_at_end"] = os.getloadavg()[0]
    report.setup["cpu_pressure_at_end"] = cpu_pressure()
    print(format_report(report))
    print(f"load average at end {report.setup['load_average_at_end']:.2f}" + pressure_note(cpu_pressure()))
    if args.json:
        Path(args.json).write_text(json.dumps(report_json(report), indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="scripts/bench.py"))
