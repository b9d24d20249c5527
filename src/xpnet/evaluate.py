"""``python -m xpnet.evaluate --model model.npz``: how good a trained model is on its test set, and where it errs:
the test accuracy, each class's precision and recall, the confusion matrix; ``--plot DIR`` draws the training
curves, the confusion matrix and the worst mistakes as PNGs."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .backend import resolve_backend
from .cli import common as cli
from .cli import plots
from .data import DATASETS, load_dataset
from .data.load import idx_files
from .errors import DataError, XpnetError, class_list, escaped, say
from .files import check_writable, refuse_shared
from .nn import layer_text
from .predict import picture_classifier, tool_parser
from .training.model import FITTED_ON_ARRAYS
from .training.runlog import EPOCH_KEYS, json_number, read_log

PROG = "xpnet.evaluate"
N_WORST = 24
PLOTS = ("training-curves.png", "confusion-matrix.png", "worst-misclassified.png")


def build_parser() -> cli.ArgumentParser:
    p = tool_parser(
        "evaluate",
        "Score a model trained by python -m xpnet.train --save on the test set of its data set.",
        "--plot plots/ --log train.jsonl",
        {
            0: "scored",
            1: "the model holds NaN/Inf weights (a diverged run), or a plot could not be written (disk full)",
            2: "bad input: a flag, the --model file, the data set, a --plot folder, a --log of another run, "
            "matplotlib missing",
        },
    )
    p.add_argument("--data-dir", metavar="DIR", help="the data set's folder (default: the model's, else xpnet.train's)")
    p.add_argument("--plot", metavar="DIR", help=f"write {', '.join(PLOTS)} to DIR (made if missing; needs matplotlib)")
    p.add_argument("--log", metavar="PATH", help="the train --log file to draw the curves of (default: the model's)")
    p.add_argument(
        "--dataset", choices=DATASETS, help="the test set (default: the model's; needed if fitted on arrays)"
    )
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results on stdout")
    cli.add_device_flags(p)
    return p


def report(name: str, cm: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The text report: accuracy, per-class precision/recall/support and the confusion matrix."""
    precision, recall = precision_recall(cm)
    width = max(len(s) for s in labels)
    pct = [[f"{100 * v:6.2f}%" if not math.isnan(v) else "      -" for v in vs] for vs in (precision, recall)]
    lines = [f"test accuracy {100 * cm_accuracy(cm):.2f}% ({np.trace(cm)} of {cm.sum()} {name} test images)"]
    lines += ["", f"{'class':<{width + 3}}  precision   recall  support"]
    lines += [f"{k:>2} {s:<{width}}    {pct[0][k]}  {pct[1][k]}  {cm[k].sum():7d}" for k, s in enumerate(labels)]
    cell = max(5, len(str(cm.max())) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(" " * 3 + "".join(f"{k:>{cell}}" for k in range(len(labels))))
    lines += [f"{k:>2} " + "".join(f"{v:>{cell}}" for v in row) for k, row in enumerate(cm.tolist())]
    if width > 1:
        lines.append("classes: " + ", ".join(f"{k} {s}" for k, s in enumerate(labels)))
    return lines


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.size and not (0 <= min(y_true.min(), y_pred.min()) <= max(y_true.max(), y_pred.max()) < n_classes):
        raise ValueError(f"labels and predictions must lie in 0..{n_classes - 1}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(n_classes, n_classes)


def cm_accuracy(cm: np.ndarray) -> float:
    """Share of all examples on the diagonal (0.0 for an empty matrix)."""
    return float(np.trace(cm)) / max(int(cm.sum()), 1)


def precision_recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (right / predicted as the class) and recall (right / truly the class). A class
    never predicted has no precision, and a class absent from the data no recall: NaN, not a made-up 0 or 1."""
    right = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return right / cm.sum(axis=0), right / cm.sum(axis=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Everything that can fail on a flag is checked before the data set is read and scored.
    outputs = [("--plot", Path(args.plot).expanduser() / name) for name in PLOTS] if args.plot else []
    refuse_shared([("--model", args.model), ("--log", args.log), *outputs], inputs=("--model", "--log"))
    ckpt = picture_classifier(args.model)
    if args.log is not None and args.plot is None:
        raise XpnetError("--log only feeds the curves of --plot: add --plot DIR, or leave --log out")
    if args.plot is not None:
        plots.require_matplotlib()
        history = [{k: getattr(s, k) for k in EPOCH_KEYS} for s in ckpt.state.history]  # shaped like the log's
        epochs = read_log(args.log, ckpt) if args.log is not None else history
        for _, path in outputs:
            check_writable(path, "--plot", "")  # the first plot makes the folder

    dataset = args.dataset or ckpt.dataset
    if dataset == FITTED_ON_ARRAYS:
        raise XpnetError(
            f"{ckpt.path} was fitted from Python on arrays, not on a data set xpnet knows: name the "
            f"test set with --dataset ({', '.join(DATASETS)}), or score it in Python with model.score(X, y)"
        )
    folder = cli.model_data_dir(args.data_dir, ckpt) if dataset == ckpt.dataset else args.data_dir
    side = getattr(ckpt.layout, "side", None)
    data = load_dataset(dataset, folder, image_size=side, notify=lambda line: say(line, file=sys.stderr))
    if (data.n_features, data.classes) != (ckpt.n_features, ckpt.names):
        raise DataError(
            f"{ckpt.path} was trained on {class_list(ckpt.names)} of {ckpt.n_features} pixels but {data.name} in "
            f"{data.source} has {class_list(data.classes)} of {data.n_features}: give the --data-dir the model "
            "was trained on"
        )
    if data.folder is not None and outputs:  # no plot may replace an IDX file read, nor go in a picture folder
        read = [data.folder] if data.name == "folder" else idx_files(Path(data.folder))[0].values()
        refuse_shared([*(("--data-dir", f) for f in read), *outputs], inputs=("--data-dir",))
    backend = resolve_backend(args.device, args.backend)
    cli.announce(backend, args.verbose)
    pred, probs = ckpt.on(backend).classify(data.x_test)
    y = data.y_test.astype(np.int64)
    cm = confusion_matrix(y, pred, len(ckpt.names))
    labels = tuple(escaped(name) for name in ckpt.names)  # as the report and the plots show them
    say(f"{ckpt.describe()}; {backend}", *report(data.name, cm, labels))

    written = []
    if args.plot is not None:
        name = f"{data.name}, {layer_text(ckpt.sizes)} {ckpt.config.activation}, epoch {ckpt.kept_epoch}"
        kept = ckpt.kept_epoch if ckpt.state.restored else None  # --patience: the curves mark the epoch kept
        p_true = probs[np.arange(len(y)), y]
        wrong = np.flatnonzero(pred != y)
        worst = wrong[np.argsort(p_true[wrong], kind="stable")][:N_WORST]
        title = f"the {len(worst)} test images the model got most wrong (true → predicted)"
        figures = [  # each figure, or why it is left out
            plots.curves(epochs, name, kept) if epochs else "no epochs logged: the training curves are left out",
            plots.confusion(cm, labels, f"{name}: test accuracy {100 * cm_accuracy(cm):.2f}%"),
            plots.worst(data.x_test[worst], data.image_shape, y[worst], pred[worst], p_true[worst], labels, title)
            if worst.size
            else "no test image is misclassified: worst-misclassified.png is left out",
        ]
        for figure, (_, path) in zip(figures, outputs):
            if isinstance(figure, str):
                say(figure, file=sys.stderr)
            else:
                written.append(plots.save(figure, path))
        say("wrote " + ", ".join(map(str, written)))

    if args.json:
        precision, recall = ([json_number(float(v)) for v in vs] for vs in precision_recall(cm))
        summary = {"model": str(ckpt.path), "dataset": data.name, "n_test": int(cm.sum()), "accuracy": cm_accuracy(cm)}
        summary |= {"classes": list(ckpt.names), "precision": precision, "recall": recall}
        say(json.dumps(summary | {"confusion_matrix": cm.tolist(), "plots": [str(p) for p in written]}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
