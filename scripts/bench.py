"""Side-by-side training speed: xpnet on every backend, plain PyTorch and JAX peers, the blog's loop, GEMMs.

One run measures, on the same data (Fashion-MNIST's 60,000 training images when Debian's package is
installed, else same-shaped synthetic arrays, and the output says which):

- xpnet through its public API on every backend and device of the registry (``xpnet.backend.registry()``),
  reference model 784-256-128-10 relu, Adam, float32, at each ``--batch-sizes``: the seconds of every epoch,
  and their median after discarded warm-up epochs (`benchlib.runs`);
- the same model, optimizer, batch and initial weights in plain PyTorch and as a hand-written ``jax.jit``
  step (CPU, and CUDA when present; `benchlib.peers`);
- ``xpnet.MLPClassifier.fit`` beside scikit-learn's ``MLPClassifier.fit``, same parameters and float32 features
  (`benchlib.peers.bench_estimator`); the same for ``MLPRegressor.fit`` (section ``regressor``: the mean ink of
  each picture's lower half from its upper half) and for ``solver="lbfgs"``, classifier and regressor (section
  ``lbfgs``: seconds per iteration and per loss-and-gradient evaluation);
- the blog post's comparison: a sigmoid 784-30-10 network trained by SGD one example at a time versus
  vectorised over each mini-batch, on the same examples, with the same updates (`benchlib.blog`);
- the float32 GEMM ceiling of each device, and each training run's achieved GFLOP/s.

The first lines name the CPU, its ISA level, the BLAS kernel and the thread counts (`benchlib.machine`).
Run from the repository root: ``PYTHONPATH=src python scripts/bench.py [--quick] [--gpu] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib sits beside this script

from benchlib import machine, peers, runs
from benchlib.blog import bench_blog
from benchlib.report import Report, format_report, report_json
from xpnet.backend import resolve_backend
from xpnet.cli import common as cli

SECTIONS = ("gemm", "xpnet", "torch", "jax", "sklearn", "regressor", "lbfgs", "blog")


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
    targets, defaults = tuple(runs.xpnet_targets()), runs.default_targets()
    p = cli.ArgumentParser(
        prog="scripts/bench.py",
        description="Time xpnet on every backend beside plain PyTorch and JAX, the blog post's per-example loop "
        "and the GEMM ceiling. Timings are medians of timed epochs after warm-up epochs.",
    )
    p.add_argument("--only", type=comma_list(SECTIONS), default=SECTIONS, help=f"default: {','.join(SECTIONS)}")
    p.add_argument(
        "--targets", type=comma_list(targets), default=defaults,
        help=f"xpnet backends to time, of {','.join(targets)}; missing devices are skipped with why "
        f"(default: {','.join(defaults)})",
    )  # fmt: skip
    p.add_argument("--gpu", action="store_true", help="only the CUDA rows: xpnet's CUDA targets and the CUDA peers")
    p.add_argument("--batch-sizes", type=batch_list, default=(128, 1024), metavar="B,B", help="default: 128,1024")
    p.add_argument("--epochs", type=cli.positive_int, default=3, help="timed epochs per run (default: 3)")
    p.add_argument("--warmup", type=cli.positive_int, default=1, help="discarded warm-up epochs per run (default: 1)")
    p.add_argument(
        "--rounds", type=cli.positive_int, default=1,
        help="repeat every training run this many times, interleaved, pooling the timed epochs (default: 1)",
    )  # fmt: skip
    p.add_argument(
        "--data", choices=("auto", "fashion-mnist", "digits", "synthetic"), default="auto", help="default: auto"
    )
    p.add_argument("--n-train", type=cli.positive_int, default=None, help="use only the first N training images")
    p.add_argument(
        "--lbfgs-iterations",
        type=cli.positive_int,
        default=5,
        help="lbfgs iterations per fit of the lbfgs rows, each over every training image (default: 5)",
    )
    p.add_argument("--blog-examples", type=cli.positive_int, default=5000, help="examples for the blog comparison")
    p.add_argument("--blog-batch", type=cli.positive_int, default=10, help="its mini-batch size (default: 10)")
    p.add_argument("--gemm-size", type=cli.positive_int, default=2048, help="square CPU GEMM size; GPUs use 4x")
    p.add_argument("--quick", action="store_true", help="10,000 images, 1 timed epoch, smaller blog and GEMM")
    p.add_argument("--json", metavar="PATH", default=None, help="also write every figure to this JSON file")
    return p


def peer_devices(args: argparse.Namespace, report: Report) -> list[tuple[str, str]]:
    """``(peer, device)`` pairs to time: plain PyTorch and the jitted JAX step, where installed."""
    torch, out = machine.import_torch(), []
    kinds = ("cuda",) if args.gpu else ("cpu", "cuda")
    if "torch" in args.only:
        if torch is None:
            report.skipped.append("plain PyTorch: torch is not installed")
        else:
            cuda = torch.cuda.is_available()
            out += [("torch", k) for k in kinds if k == "cpu" or cuda]
            if not cuda:
                report.skipped.append("plain PyTorch cuda: no CUDA device")
    if "jax" in args.only:
        try:
            import jax
        except ImportError:
            report.skipped.append("plain JAX: jax is not installed")
        else:
            gpu = any(d.platform == "gpu" for d in jax.devices())
            out += [("jax", k) for k in kinds if k == "cpu" or gpu]
            if not gpu:
                report.skipped.append("plain JAX cuda: no GPU device")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.quick:
        args.n_train = args.n_train or 10_000
        args.epochs, args.blog_examples, args.gemm_size = 1, min(args.blog_examples, 1000), 1024
    if args.gpu:
        args.targets = tuple(t for t, (kind, _) in runs.xpnet_targets().items() if kind == "cuda")
    data = runs.bench_data(args.data, args.n_train)
    skipped: list[str] = []
    backends = runs.available_backends(args.targets, skipped)  # before the setup: making one may set FTZ/DAZ
    report = Report(machine.describe_setup(data, argv), skipped=skipped)
    print(machine.format_setup(report.setup), flush=True)

    if "gemm" in args.only:
        report.gemm = runs.bench_gemm(backends, args.gemm_size, args.batch_sizes, repeats=5)

    bench_peer = {"torch": peers.bench_torch, "jax": peers.bench_jax}
    names = {"torch": "pytorch", "jax": "jax-jit"}
    peer_list = peer_devices(args, report)
    jobs: list[tuple[str, Callable[[], runs.TrainRow]]] = []
    fitters = ("xpnet-cuda", "sklearn") if args.gpu else ("xpnet", "sklearn")
    if args.gpu and "cupy" not in backends:  # the estimators' device="cuda" needs CuPy
        fitters = ()
        if {"sklearn", "regressor", "lbfgs"} & set(args.only):
            report.skipped.append("fit xpnet-cuda: MLPClassifier(device='cuda') needs CuPy on a GPU")
    for batch in args.batch_sizes:
        if "xpnet" in args.only:
            for target, backend in backends.items():
                jobs.append((f"xpnet {target} batch {batch}", lambda b=batch, t=target, be=backend: runs.bench_xpnet(
                    t, be, data, b, args.epochs, args.warmup)))  # fmt: skip
        # The estimators' fits against scikit-learn's, on the same model and data (rows "fit", "fit-reg").
        for section, fit in (("sklearn", "fit"), ("regressor", "fit-reg")):
            for which in fitters if section in args.only else ():
                job = functools.partial(peers.bench_estimator, which, data, batch, args.epochs, args.warmup, fit=fit)
                jobs.append((f"{fit} {which} batch {batch}", job))
        for peer, dev in peer_list:
            jobs.append((f"{names[peer]} {dev} batch {batch}", lambda b=batch, p=peer, d=dev: bench_peer[p](
                d, data, b, args.epochs, args.warmup)))  # fmt: skip

    for fit in ("lbfgs", "lbfgs-reg") if "lbfgs" in args.only else ():  # every row in one batch: no batch size
        for which in fitters:
            job = functools.partial(peers.bench_estimator, which, data, 0, args.lbfgs_iterations, 0, fit=fit)
            jobs.append((f"{fit} {which}", job))

    # Rounds interleave the runs, so that a burst of load on a shared machine hits all of them alike.
    rows: dict[str, runs.TrainRow] = {}
    for r in range(args.rounds):
        for label, job in jobs:
            print(f"round {r + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
            row = job()
            if label in rows:
                rows[label].pool(row)
            else:
                rows[label] = row
    report.runs = list(rows.values())

    if "blog" in args.only and not args.gpu:
        report.blog = bench_blog(resolve_backend("cpu", "numpy"), data, args.blog_examples, args.blog_batch, repeats=5)

    report.setup["load_average_at_end"] = os.getloadavg()[0]
    report.setup["cpu_pressure_at_end"] = machine.cpu_pressure()
    print(format_report(report))
    print(f"load average at end {report.setup['load_average_at_end']:.2f}" + machine.pressure_note(
        report.setup["cpu_pressure_at_end"]))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report_json(report), indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="scripts/bench.py"))
