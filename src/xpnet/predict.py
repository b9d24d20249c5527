"""``python -m xpnet.predict --model model.npz IMAGE...``: classify pictures of digits (or garments), each
prepared as the model's data set was (`data/images.py`); also what the other tools share (their parser, the
record of one picture). An unreadable file is one line on stderr, the others are still classified: exit 1."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backend import resolve_backend
from .cli import common as cli
from .data.pictures import FORMATS, LIMITS, import_pillow, prepare_file
from .errors import CheckpointError, say
from .files import atomic_write, check_writable, refuse_shared
from .training.model import Model, load

PROG = "xpnet.predict"
SEEN_SIDE = 112  # --save-input pictures are enlarged to at least this many pixels a side
STOPPED = {130: "stopped by Ctrl-C", 143: "stopped by SIGTERM"}


def tool_parser(name: str, about: str, example: str, statuses: dict[int, str]) -> cli.ArgumentParser:
    """The parser of the tool ``name``, with --model; its --help ends with ``example``'s flags and the exit statuses."""
    example = f"python -m xpnet.{name} --model model.npz {example}"
    p = cli.ArgumentParser(prog=cli.program(name), description=about, epilog=cli.epilog(example, statuses | STOPPED))
    p.add_argument("--model", required=True, metavar="PATH", help="a checkpoint written by xpnet.train --save")
    return p


def build_parser() -> cli.ArgumentParser:
    p = tool_parser(
        "predict",
        "Classify pictures with a model trained by python -m xpnet.train --save. Each picture is grayscaled, "
        "inverted if it is dark on light, cropped to its ink, scaled and centred as the training images were.",
        "digit.png photo.jpg --top 3",
        {
            0: "every picture classified",
            1: "some picture could not be read (the others are still classified), the model holds NaN/Inf "
            "weights, or a --save-input picture could not be written (disk full)",
            2: "bad input: a flag, the --model file, a --save-input folder, Pillow missing",
        },
    )
    formats = f"picture files ({', '.join(FORMATS)}; at most {LIMITS}) or .npy arrays"
    p.add_argument("images", nargs="+", metavar="IMAGE", help=formats)
    p.add_argument("--top", type=cli.positive_int, default=1, metavar="K", help="show the K likeliest classes")
    p.add_argument(
        "--json", action="store_true", help="one JSON line per IMAGE, in order ('error' for an unreadable one)"
    )
    p.add_argument(
        "--save-input",
        metavar="DIR",
        help=f"write the image the model saw for each IMAGE to DIR/<name>.seen.png (made if missing), enlarged to "
        f"at least {SEEN_SIDE} pixels (nearest neighbour: each model pixel a square)",
    )
    cli.add_device_flags(p)
    return p


def picture_classifier(path: str) -> Model:
    """The weights at ``path`` (not the optimizer's), of a softmax classifier: what the tools read pictures with."""
    model = load(path, optimizer=False)
    if model.config.out_activation != "softmax":
        kind = "regressor" if not model.names else "logistic-output classifier"
        raise CheckpointError(
            f"{path} holds a {kind} (out_activation {model.config.out_activation!r}): the command line reads "
            "pictures with softmax classifiers; use this model from Python (xpnet.load)"
        )
    return model


def load_model(path: str, device: str = "cpu", backend: str | None = None) -> Model:
    """The weights at ``path`` on ``device`` (and ``backend``), their picture layout worked out once (or refused)."""
    model = picture_classifier(path)
    model.layout = model.picture_layout()
    return model.on(resolve_backend(device, backend))


def unique_names(paths: Sequence[Path]) -> list[str]:
    """``<stem>.seen.png`` for each path, numbered where two inputs share a stem."""
    names: list[str] = []
    for p in paths:
        name, n = f"{p.stem}.seen.png", 1
        while name in names:  # a.png, a.jpg and a-2.png must not share a name
            n += 1
            name = f"{p.stem}-{n}.seen.png"
        names.append(name)
    return names


def answer(file: str, probs: np.ndarray, best: int, labels: Sequence[str], top: int) -> dict[str, Any]:
    """What ``--json`` prints for one picture (``serve``'s ``POST /predict`` answers the same): its class
    ``best`` (the largest logit) and the ``top`` likeliest classes, from its row of probabilities."""
    ranked = [best] + [int(j) for j in np.argsort(-probs, kind="stable") if j != best]
    shown = [{"class": j, "name": labels[j], "probability": float(probs[j])} for j in ranked[: min(top, len(probs))]]
    return {"file": file, "class": best, "name": labels[best], "probability": shown[0]["probability"], "top": shown}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = [Path(p) for p in args.images]
    save_dir = Path(args.save_input).expanduser() if args.save_input is not None else None
    seen = [save_dir / name for name in unique_names(paths)] if save_dir is not None else []
    refuse_shared([("--model", args.model), *(("IMAGE", p) for p in paths), *(("--save-input", p) for p in seen)])
    for path in seen:
        check_writable(path, "--save-input", "")  # the first picture makes the folder
    model = load_model(args.model, args.device, args.backend)
    cli.announce(model.backend, args.verbose)
    pil = import_pillow() if save_dir is not None or any(p.suffix.lower() != ".npy" for p in paths) else None

    prepared: list[np.ndarray | str] = []  # each picture, or why it could not be read
    for path in paths:
        try:
            prepared.append(prepare_file(path, pil, model.layout))
        except (ValueError, MemoryError) as e:  # a PictureError is a ValueError; the other files go on
            prepared.append("too large to prepare in memory" if isinstance(e, MemoryError) else str(e))
            say(f"{PROG}: {path}: {prepared[-1]}", file=sys.stderr)
    good = [a for a in prepared if not isinstance(a, str)]
    classes, probs = model.classify(np.array(good, np.uint8).reshape(len(good), model.layout.n_features))
    k = -(-SEEN_SIDE // model.layout.side)  # --save-input: each pixel a k x k square (smoothing would hide what it saw)
    rows = iter(range(len(good)))
    for i, (path, picture) in enumerate(zip(paths, prepared)):
        if isinstance(picture, str):
            if args.json:
                say(json.dumps({"file": str(path), "error": picture}))
            continue
        r = next(rows)
        result = answer(str(path), probs[r], int(classes[r]), model.names, args.top)
        if save_dir is not None:
            result["seen"] = str(seen[i])
            big = pil.fromarray(np.kron(picture, np.ones((k, k), np.uint8)), mode="L")
            atomic_write(seen[i], functools.partial(big.save, format="PNG"))
        # Else a line like ``7.png: 7 (98.5%); then 1 (1.2%)``.
        first, *rest = (f"{c['name']} ({100 * c['probability']:.1f}%)" for c in result["top"])
        say(json.dumps(result) if args.json else f"{path}: {first}" + (f"; then {', '.join(rest)}" if rest else ""))
    if save_dir is not None and not args.json and good:
        side = f"{model.layout.side}x{model.layout.side}, each pixel shown as a {k}x{k} square"
        say(f"the images the model saw: {save_dir}/*.seen.png ({side})", file=sys.stderr)
    return 1 if len(good) < len(paths) else 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
