"""What subnormal floats cost on this CPU, how many Adam leaves behind, and the epochs with and without FTZ/DAZ.

Three measurements, each printed with the CPU's model name:

1. element-wise passes (``a *= 0.9``, ``a * b``, ``sqrt``) over 470,292 float32 values (Adam's two moments of
   the reference model) that are all normal, all subnormal, or 2.5% subnormal (what 4 epochs leave), before
   and after `xpnet.backend.fast.flush_denormals` in this process;
2. (``--epochs N``) per-epoch seconds of ``python -m xpnet.train`` with default flags, and the subnormal count
   in Adam's state after the run, for each ``--src`` tree (for example the main checkout and this one), in
   child processes run in interleaved rounds so that load on a shared machine hits every tree alike.

Run from the repository root: ``PYTHONPATH=src python scripts/bench_subnormal.py [--epochs 6 --src A,B]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

N = 470_292  # Adam's m and v for the 784-256-128-10 model
TINY = np.finfo(np.float32).tiny


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def best_of(fn, repeats: int = 30) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def operands(kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.uniform(1e-4, 1e-3, N).astype(np.float32)
    if kind == "subnormal":
        a = rng.uniform(1e-42, 1e-39, N).astype(np.float32)
    elif kind == "2.5% subnormal":
        idx = rng.choice(N, N // 40, replace=False)
        a[idx] = rng.uniform(1e-42, 1e-39, idx.size).astype(np.float32)
    return a


def pass_times() -> dict[str, dict[str, float]]:
    """Milliseconds per element-wise pass, by operand kind."""
    out = {}
    for kind in ("normal", "subnormal", "2.5% subnormal"):
        a, b, c = operands(kind), operands(kind), np.empty(N, np.float32)
        ops = {
            "a * 0.9": lambda a=a, c=c: np.multiply(a, np.float32(0.9), out=c),
            "a * b": lambda a=a, b=b, c=c: np.multiply(a, b, out=c),
            "sqrt(a)": lambda a=a, c=c: np.sqrt(a, out=c),
        }
        out[kind] = {name: 1e3 * best_of(op) for name, op in ops.items()}
    return out


def child(epochs: int) -> None:
    """Train with default flags; print per-epoch seconds and Adam's subnormal count as one JSON line."""
    from xpnet.backend import resolve_backend
    from xpnet.data import load_dataset
    from xpnet.training.loop import train
    from xpnet.training.model import TrainConfig

    backend = resolve_backend("cpu", "numpy")
    data = load_dataset("fashion-mnist")
    state = train(backend, data, TrainConfig(max_iter=epochs, lr_decay=0.8))  # xpnet.train's fashion-mnist defaults
    moments = [np.asarray(s) for s in state.opt_state]
    sub = sum(int(np.count_nonzero((s != 0) & (np.abs(s) < TINY))) for s in moments)
    print(json.dumps({
        "seconds": [e.seconds for e in state.history],
        "subnormal": sub,
        "state_values": sum(s.size for s in moments),
        "test_accuracy": state.history[-1].test_accuracy,
    }))  # fmt: skip


def epoch_runs(trees: list[str], epochs: int, rounds: int) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {t: [] for t in trees}
    for r in range(rounds):
        for tree in trees:
            print(f"round {r + 1}/{rounds}: {tree}", file=sys.stderr, flush=True)
            env = dict(os.environ, PYTHONPATH=tree)
            cmd = [sys.executable, __file__, "--child", str(epochs)]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            runs[tree].append(json.loads(out.strip().splitlines()[-1]))
    return runs


def drift(seconds: list[float]) -> float:
    """Median of epochs 4-6 over the median of epochs 1-3 (the issue's slowdown measure)."""
    return statistics.median(seconds[3:6]) / statistics.median(seconds[:3])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=0, help="also time this many training epochs per tree")
    p.add_argument("--src", default="src", help="comma-separated source trees to compare (default: src)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        child(args.child)
        return 0
    print(f"cpu: {cpu_model()}")
    from xpnet.backend.fast import flush_denormals

    before = pass_times()
    flushed = flush_denormals()
    after = pass_times()
    print(f"element-wise passes over {N} float32 values, ms (best of 30); FTZ/DAZ set: {flushed}")
    print(f"{'operation':<22}{'operands':<17}{'default':>9}{'FTZ/DAZ':>9}{'slowdown':>10}")
    for kind in before:
        for op, ms in before[kind].items():
            slow = ms / before["normal"][op]
            print(f"{op:<22}{kind:<17}{ms:>9.3f}{after[kind][op]:>9.3f}{slow:>9.1f}x")
    if args.epochs:
        runs = epoch_runs(args.src.split(","), args.epochs, args.rounds)
        for tree, rs in runs.items():
            print(f"\n{tree}: python -m xpnet.train defaults (fashion-mnist, gamma 0.8), {args.epochs} epochs")
            for r in rs:
                secs = " ".join(f"{s:.2f}" for s in r["seconds"])
                ratio = f"  epochs 4-6 / 1-3: {drift(r['seconds']):.3f}" if len(r["seconds"]) >= 6 else ""
                print(f"  {secs}{ratio}  subnormal in Adam's state {r['subnormal']} of {r['state_values']}"
                      f"  test acc {100 * r['test_accuracy']:.2f}%")  # fmt: skip
            # Each epoch's fastest over the rounds: a burst of load on a shared machine rarely hits every round.
            best = [min(col) for col in zip(*(r["seconds"] for r in rs))]
            ratio = f"  epochs 4-6 / 1-3: {drift(best):.3f}" if len(best) >= 6 else ""
            print(f"  best of {len(rs)} rounds per epoch: {' '.join(f'{s:.2f}' for s in best)}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
