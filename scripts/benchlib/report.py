"""The report: GEMM ceilings, training runs with their per-epoch seconds, the target ratios, the blog, skips.

The ratios the issues set targets on are computed once (`ratios`), and both the text and the JSON read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .blog import BlogResult
from .runs import REFERENCE_HIDDEN, GemmRow, TrainRow, ceilings

CPU_TARGET_RATIO = 0.8  # issue 5: xpnet-numpy s/epoch <= 0.8 x plain PyTorch-CPU at batch 128 (AMD)
INTEL_TARGET_RATIO = 0.7  # issue 12: the same, <= 0.7, on an Intel CPU (MKL and oneDNN serve PyTorch there)
JAX_TARGET_RATIO = 1.15  # issue 12: xpnet --backend jax within 1.15 x a hand-written jax.jit step
SKLEARN_TARGET_RATIO = 0.5  # issue 22: xpnet.MLPClassifier.fit <= 0.5 x scikit-learn's per epoch at batch 128


@dataclass
class Report:
    setup: dict[str, Any]
    gemm: list[GemmRow] = field(default_factory=list)
    runs: list[TrainRow] = field(default_factory=list)
    blog: BlogResult | None = None
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ratio:
    """One comparison the issues set a target on: ``ours / peer`` by median epoch, and by best epoch."""

    key: str  # the JSON name, e.g. "numpy_over_torch_cpu_seconds_batch128"
    ours: str
    peer: str
    batch: int
    value: float
    best: float | None  # best epoch over best epoch (seconds ratios only)
    measure: str  # "seconds per epoch", "... per iteration", "... per evaluation" (lower is better), or
    # "samples per second" (higher is better)
    target: str  # "<= 0.8", ">= 1" or "" where this batch has none
    met: bool | None


NEW_FITS = ("fit-reg", "lbfgs", "lbfgs-reg")  # issue 32's estimator rows: their own models and units (`fit_notes`)

BY_VENDOR = "the CPU target"  # a limit that `ratios` reads off the CPU's vendor: INTEL_ or CPU_TARGET_RATIO

# (ours, peer, JSON stem, unit, target at which batches): seconds ratios must stay below, samples above.
COMPARISONS = (
    (("xpnet", "numpy"), ("pytorch", "cpu"), "numpy_over_torch_cpu", "seconds", (BY_VENDOR, (128,))),
    (("xpnet", "numpy"), ("xpnet", "numpy-passes"), "numpy_over_numpy_passes", "seconds", (None, None)),
    (("xpnet", "jax-cpu"), ("jax-jit", "cpu"), "jax_over_jax_jit_cpu", "seconds", (JAX_TARGET_RATIO, None)),
    (("xpnet", "cupy"), ("pytorch", "cuda"), "cupy_over_torch_cuda", "samples", (1.0, None)),
    (("xpnet", "torch-cuda"), ("pytorch", "cuda"), "torch_cuda_over_torch_cuda", "samples", (None, None)),
    (("xpnet", "jax-cuda"), ("jax-jit", "cuda"), "jax_over_jax_jit_cuda", "seconds", (JAX_TARGET_RATIO, None)),
    (("fit", "xpnet"), ("fit", "sklearn"), "fit_over_sklearn_fit", "seconds", (SKLEARN_TARGET_RATIO, (128,))),
    (("fit", "xpnet-cuda"), ("fit", "sklearn"), "fit_cuda_over_sklearn_fit", "seconds", (None, None)),
    # Issue 32: the regressor's fit and lbfgs (classifier and regressor) beside scikit-learn's, no targets yet.
    # An lbfgs row's "seconds" are per iteration, its "evaluation" seconds per loss-and-gradient evaluation.
    (("fit-reg", "xpnet"), ("fit-reg", "sklearn"), "fit_reg_over_sklearn", "seconds", (None, None)),
    (("fit-reg", "xpnet-cuda"), ("fit-reg", "sklearn"), "fit_reg_cuda_over_sklearn", "seconds", (None, None)),
    *(
        ((fit, ours), (fit, "sklearn"), f"{fit.replace('-', '_')}{cuda}_over_sklearn", unit, (None, None))
        for fit in ("lbfgs", "lbfgs-reg")
        for ours, cuda in (("xpnet", ""), ("xpnet-cuda", "_cuda"))
        for unit in ("seconds", "evaluation")
    ),
)


def find_row(runs: Sequence[TrainRow], impl: str, target: str, batch: int) -> TrainRow | None:
    return next((r for r in runs if r.impl == impl and r.target == target and r.batch == batch), None)


def ratios(runs: Sequence[TrainRow], cpu_vendor: str = "") -> list[Ratio]:
    """Every comparison whose two runs were both measured, at every batch size; the CPU target by vendor."""
    out = []
    cpu_limit = INTEL_TARGET_RATIO if cpu_vendor == "GenuineIntel" else CPU_TARGET_RATIO
    for batch in sorted({r.batch for r in runs}):
        for ours_key, peer_key, stem, unit, (limit, at) in COMPARISONS:
            ours, peer = find_row(runs, *ours_key, batch), find_row(runs, *peer_key, batch)
            if ours is None or peer is None:
                continue
            limit = cpu_limit if limit is BY_VENDOR else limit
            has_target = limit is not None and (at is None or batch in at)
            if unit == "evaluation":
                if ours.seconds_per_evaluation is None or peer.seconds_per_evaluation is None:
                    continue  # evaluations not counted on one side
                value = ours.seconds_per_evaluation / peer.seconds_per_evaluation
                best = min(ours.evaluation_seconds) / min(peer.evaluation_seconds)
                met, target = value <= (limit or 0), f"<= {limit}"
            elif unit == "seconds":
                value, best = ours.seconds / peer.seconds, ours.best / peer.best
                met, target = value <= (limit or 0), f"<= {limit}"
            else:
                value, best = ours.samples_per_second / peer.samples_per_second, None
                met, target = value >= (limit or 0), f">= {limit:g}" if limit else ""
            measure = {"seconds": f"seconds per {ours.unit}", "evaluation": "seconds per evaluation"}.get(
                unit, "samples per second"
            )
            key = f"{stem}_{'evaluation_seconds' if unit == 'evaluation' else unit}_batch{batch}"
            out.append(Ratio(key, "-".join(ours_key), "-".join(peer_key), batch, value,
                             best, measure, target if has_target else "", met if has_target else None))  # fmt: skip
    return out


def ratio_line(r: Ratio) -> str:
    verdict = f"target {r.target}: {'met' if r.met else 'NOT met'}" if r.target else "no target"
    per = "epochs" if r.measure.endswith("epoch") else "rounds"  # an lbfgs fit's figures are one per round
    best = f"; best {per}: {r.best:.2f}" if r.best is not None else ""
    return f"{r.ours} / {r.peer} {r.measure} at batch {r.batch}: {r.value:.2f} ({verdict}){best}"


def fit_notes(runs: Sequence[TrainRow]) -> list[str]:
    """What the estimator rows' table leaves out: their models, and each lbfgs fit's iterations and evaluations."""
    fits = [r for r in runs if r.impl in NEW_FITS]
    if not fits:
        return []
    models = {r.impl: r.params for r in fits}
    lines = [
        "",
        "fit-reg: MLPRegressor, the upper half of each picture -> the mean ink of its lower half (R2 on the test "
        "set), Adam; lbfgs, lbfgs-reg: solver='lbfgs', every training row in one batch, s/epoch is s/iteration",
        "  parameters: " + ", ".join(f"{impl} {n}" for impl, n in models.items()),
    ]
    for r in fits:
        if r.unit == "iteration":
            evals = ", ".join(f"{e}" for e in r.evaluations) or "not counted"
            per = f"{r.seconds_per_evaluation:.3f} s per evaluation" if r.seconds_per_evaluation else "-"
            lines.append(
                f"  {r.impl} {r.target}: iterations {', '.join(map(str, r.iterations))}; "
                f"loss-and-gradient evaluations {evals}; {per}"
            )
    return lines


def format_report(report: Report) -> str:
    """The tables: GEMM ceilings, training runs and their epochs, the target ratios, the blog, skips."""
    lines: list[str] = []
    best = ceilings(report.gemm)
    if report.gemm:
        lines += ["float32 GEMM (best of repeats)", f"{'library':<18}{'device':<9}{'m x k x n':>20}{'GFLOP/s':>10}"]
        for g in report.gemm:
            lines.append(f"{g.library:<18}{g.device:<9}{'x'.join(map(str, g.shape)):>20}{g.gflops:>10.1f}")
        lines.append("ceiling per device (best square GEMM): " + ", ".join(f"{d} {v:.1f}" for d, v in best.items()))
    if report.runs:
        r0 = next((r for r in report.runs if r.impl not in NEW_FITS), report.runs[0])
        w = max(9, *(len(r.impl) + 1 for r in report.runs))  # "lbfgs-reg" is one wider than "xpnet"'s column
        reference = (
            f"{'-'.join(map(str, [784, *REFERENCE_HIDDEN, 10]))} relu, Adam, float32 ({r0.params} parameters; "
            if r0.impl not in NEW_FITS  # else only the new fits, each with its model in `fit_notes`
            else f"with hidden layers {'-'.join(map(str, REFERENCE_HIDDEN))} relu, float32 (models below; "
        )
        lines += [
            "",
            f"training {reference}median of {len(r0.epoch_seconds)} timed epochs after {len(r0.warmup_seconds)} "
            "warm-up)",
            f"{'impl':<{w}}{'target':<18}{'device':<8}{'batch':>6}{'s/epoch':>9}{'best s':>8}{'samples/s':>11}"
            f"{'GFLOP/s':>9}{'of ceil':>9}{'test acc':>9}",
        ]
        for r in report.runs:
            ceil = best.get(r.device)
            frac = f"{100 * r.gflops / ceil:8.0f}%" if ceil else f"{'-':>9}"
            score = f"{100 * r.test_accuracy:>8.2f}%" if r.score == "accuracy" else f"{'R2 ':>4}{r.test_accuracy:.3f}"
            lines.append(
                f"{r.impl:<{w}}{r.target:<18}{r.device:<8}{r.batch:>6}{r.seconds:>9.3f}{r.best:>8.3f}"
                f"{r.samples_per_second:>11.0f}{r.gflops:>9.1f}{frac}{score}"
            )
        lines += fit_notes(report.runs)
        lines += ["", "seconds of every epoch (warm-up | timed, rounds in order; lbfgs: per iteration, per round)"]
        for r in report.runs:
            warm, timed = " ".join(f"{s:.2f}" for s in r.warmup_seconds), " ".join(f"{s:.2f}" for s in r.epoch_seconds)
            lines.append(f"{r.impl:<{w}}{r.target:<18}{r.batch:>6}  {warm} | {timed}")
        lines += [""] + [ratio_line(r) for r in ratios(report.runs, report.setup.get("cpu_vendor", ""))]
    if report.blog is not None:
        b = report.blog
        lines += [
            "",
            f"blog post: sigmoid {'-'.join(map(str, b.layers))}, SGD, mini-batch {b.batch}, {b.dtype}, "
            f"the same {b.examples} examples (numpy)",
            f"  one example at a time: {b.per_example_seconds:.3f} s "
            f"({1e6 * b.per_example_seconds / b.examples:.1f} us/example)",
            f"  vectorised over the batch: {b.vectorised_seconds:.3f} s "
            f"({1e6 * b.vectorised_seconds / b.examples:.1f} us/example)",
            f"  speed-up {b.speedup:.1f}x (the post saw 15x); "
            f"largest weight difference between the two {b.max_param_difference:.1e}",
        ]
    if report.skipped:
        lines += ["", "skipped: " + "; ".join(report.skipped)]
    return "\n".join(lines)


def report_json(report: Report) -> dict[str, Any]:
    best = ceilings(report.gemm)
    found = ratios(report.runs, report.setup.get("cpu_vendor", ""))
    flat = {r.key: r.value for r in found}
    flat |= {r.key.replace("_seconds_", "_best_seconds_"): r.best for r in found if r.best is not None}
    return {
        "setup": report.setup,
        "gemm": [asdict(g) for g in report.gemm],
        "gemm_ceiling_gflops": best,
        "runs": [r.to_dict(best.get(r.device)) for r in report.runs],
        "ratios": flat,
        "targets": [asdict(r) for r in found if r.target],
        "blog": None if report.blog is None else asdict(report.blog) | {"speedup": report.blog.speedup},
        "skipped": report.skipped,
    }
