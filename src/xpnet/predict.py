"""``python -m xpnet.predict --model model.npz IMAGE...``: classify pictures of digits (or garments).

Each picture (PNG, JPEG or anything else Pillow reads, or a NumPy ``.npy`` array) is prepared the way the
model's data set was (`data/images.py`) and classified on the chosen backend. A file that cannot be read is
one line on stderr; the others are still classified, and the exit status is then 1.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .backend import resolve_backend
from .cli import common as cli
from .data.pictures import PictureError, import_pillow, prepare_file
from .errors import say
from .files import atomic_write, check_writable, refuse_shared
from .training.model import load

PROG = "xpnet.predict"
SEEN_SIDE = 112  # --save-input pictures are enlarged to at least this many pixels a side


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=cli.program("predict"),
        description="Classify pictures with a model trained by python -m xpnet.train --save. Each picture is "
        "grayscaled, inverted if it is dark on light, cropped to its ink, scaled and centred as the training "
        "images were.",
        epilog=cli.epilog(
            "python -m xpnet.predict --model model.npz digit.png photo.jpg --top 3",
            {
                0: "every picture classified",
                1: "some picture could not be read (the others are still classified), the model holds NaN/Inf "
                "weights, or a --save-input picture could not be written (disk full)",
                2: "bad input: a flag, the --model file, a --save-input folder, Pillow missing",
                130: "stopped by Ctrl-C",
                143: "stopped by SIGTERM",
            },
        ),
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG (any format Pillow reads) or .npy files")
    p.add_argument("--model", required=True, metavar="PATH", help="a checkpoint written by xpnet.train --save")
    p.add_argument(
        "--top", type=cli.positive_int, default=1, metavar="K", help="show the K likeliest classes (default: 1)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line, one per IMAGE in order (unreadable ones with an 'error')",
    )
    p.add_argument(
        "--save-input",
        default=None,
        metavar="DIR",
        help=f"write the image the model saw for each IMAGE to DIR/<name>.seen.png, enlarged to at least "
        f"{SEEN_SIDE} pixels (nearest neighbour: each model pixel a square); DIR is created if missing",
    )
    cli.add_device_flags(p)
    return p


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


def save_png(pil: ModuleType, path: Path, pixels: np.ndarray) -> None:
    """``pixels`` enlarged to at least `SEEN_SIDE` a side, nearest neighbour (each pixel a square: smoothing
    would hide what the model saw), written as a PNG."""
    k = -(-SEEN_SIDE // max(pixels.shape))
    buf = io.BytesIO()
    pil.fromarray(np.kron(pixels, np.ones((k, k), pixels.dtype)), mode="L").save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def answer(file: str, probs: np.ndarray, best: int, labels: Sequence[str], top: int) -> dict[str, Any]:
    """What ``--json`` prints for one picture (``serve``'s ``POST /predict`` answers the same): its class
    ``best`` (the largest logit) and the ``top`` likeliest classes, from its row of probabilities."""
    ranked = [best] + [int(j) for j in np.argsort(-probs, kind="stable") if j != best]
    shown = [{"class": j, "name": labels[j], "probability": float(probs[j])} for j in ranked[: min(top, len(probs))]]
    return {"file": file, "class": best, "name": labels[best], "probability": shown[0]["probability"], "top": shown}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = [Path(p) for p in args.images]
    names = unique_names(paths)
    save_dir = Path(args.save_input).expanduser() if args.save_input is not None else None
    outputs = [("--save-input", save_dir / name) for name in names] if save_dir is not None else []
    refuse_shared([("--model", args.model), *(("IMAGE", p) for p in paths), *outputs])
    for _, path in outputs:
        check_writable(path, "--save-input", "")  # the first picture makes the folder
    model = load(args.model)
    layout = model.picture_layout()
    needs_pillow = save_dir is not None or any(p.suffix.lower() != ".npy" for p in paths)
    pil = import_pillow() if needs_pillow else None
    backend = resolve_backend(args.device, args.backend)
    cli.announce(backend, args.verbose)
    model = model.on(backend)

    prepared: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            prepared[i] = prepare_file(path, pil, layout)
        except (PictureError, ValueError, MemoryError) as e:  # BlankImage is a ValueError; the others go on
            errors[i] = str(e) if not isinstance(e, MemoryError) else "too large to prepare in memory"
            say(f"{PROG}: {path}: {e}", file=sys.stderr)
    rows = [prepared[i].ravel() for i in prepared]
    classes, probs = model.classify(np.stack(rows) if rows else np.zeros((0, layout.n_features), np.uint8))
    found = {i: row for row, i in enumerate(prepared)}
    for i, path in enumerate(paths):
        if i in errors:
            if args.json:
                say(json.dumps({"file": str(path), "error": errors[i]}))
            continue
        result = answer(str(path), probs[found[i]], int(classes[found[i]]), model.names, args.top)
        if save_dir is not None:
            result["seen"] = str(save_dir / names[i])
            save_png(pil, save_dir / names[i], prepared[i])
        # Else a line like ``7.png: 7 (98.5%); then 1 (1.2%)``.
        first, *rest = (f"{c['name']} ({100 * c['probability']:.1f}%)" for c in result["top"])
        say(json.dumps(result) if args.json else f"{path}: {first}" + (f"; then {', '.join(rest)}" if rest else ""))
    if save_dir is not None and not args.json and prepared:
        k = -(-SEEN_SIDE // layout.side)
        say(
            f"the images the model saw: {save_dir}/*.seen.png ({layout.side}x{layout.side}, "
            f"each pixel shown as a {k}x{k} square)",
            file=sys.stderr,
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
