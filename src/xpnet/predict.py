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
from .errors import XpnetError, say
from .files import atomic_write, check_writable
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
    taken: set[str] = set()
    names = []
    for p in paths:
        name, n = f"{p.stem}.seen.png", 1
        while name in taken:  # a.png, a.jpg and a-2.png must not share a name
            n += 1
            name = f"{p.stem}-{n}.seen.png"
        taken.add(name)
        names.append(name)
    return names


def check_folder(text: str, targets: Sequence[str], inputs: Sequence[Path]) -> Path:
    """The --save-input folder, checked before any work: each picture's file in it is writable (the first
    picture makes the folder), and none replaces an input."""
    folder = Path(text).expanduser()
    for t in targets:
        check_writable(folder / t, "--save-input", "")
    clash = {(folder / t).resolve() for t in targets} & {p.resolve() for p in inputs}
    if clash:
        raise XpnetError(f"--save-input {folder} would overwrite the input {min(clash)}; choose another folder")
    return folder


def enlargement(side: int) -> int:
    """The smallest whole factor that makes a ``side``-pixel image at least `SEEN_SIDE` pixels wide."""
    return max(1, -(-SEEN_SIDE // side))


def enlarge(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` enlarged by `enlargement`, nearest neighbour: each pixel becomes a square. An 8x8 or 28x28
    image is too small to see, and smoothing it would hide what the model saw."""
    k = enlargement(max(pixels.shape))
    return np.repeat(np.repeat(pixels, k, axis=0), k, axis=1)


def save_png(pil: ModuleType, path: Path, pixels: np.ndarray) -> None:
    buf = io.BytesIO()
    pil.fromarray(enlarge(pixels), mode="L").save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def answer(file: str, probs: np.ndarray, best: int, labels: Sequence[str], top: int) -> dict[str, Any]:
    """What ``--json`` prints for one picture (``serve``'s ``POST /predict`` answers the same): its class
    ``best`` (the largest logit) and the ``top`` likeliest classes, from its row of probabilities."""
    ranked = [best] + [int(j) for j in np.argsort(-probs, kind="stable") if j != best]
    shown = [{"class": j, "name": labels[j], "probability": float(probs[j])} for j in ranked[: min(top, len(probs))]]
    return {"file": file, "class": best, "name": labels[best], "probability": shown[0]["probability"], "top": shown}


def format_result(found: dict[str, Any]) -> str:
    """An `answer` as the line predict prints: ``7.png: 7 (98.5%); then 1 (1.2%)``."""
    first, *rest = (f"{c['name']} ({100 * c['probability']:.1f}%)" for c in found["top"])
    return f"{found['file']}: {first}" + (f"; then {', '.join(rest)}" if rest else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model = load(args.model)
    layout = model.picture_layout()
    paths = [Path(p) for p in args.images]
    needs_pillow = args.save_input is not None or any(p.suffix.lower() != ".npy" for p in paths)
    pil = import_pillow() if needs_pillow else None
    names = unique_names(paths)
    save_dir = check_folder(args.save_input, names, paths) if args.save_input is not None else None
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
    order = sorted(prepared)
    rows = np.stack([prepared[i].ravel() for i in order]) if order else np.zeros((0, layout.n_features), np.uint8)
    classes, probs = model.classify(rows)
    found = dict(zip(order, range(len(order))))
    for i, path in enumerate(paths):
        if i in errors:
            if args.json:
                say(json.dumps({"file": str(path), "error": errors[i]}))
            continue
        row = found[i]
        result = answer(str(path), probs[row], int(classes[row]), model.names, args.top)
        if save_dir is not None:
            result["seen"] = str(save_dir / names[i])
        if args.json:
            say(json.dumps(result))
        else:
            say(format_result(result))
        if save_dir is not None:
            assert pil is not None
            save_png(pil, save_dir / names[i], prepared[i])
    if save_dir is not None and not args.json and order:
        k = enlargement(layout.side)
        say(
            f"the images the model saw: {save_dir}/*.seen.png ({layout.side}x{layout.side}, "
            f"each pixel shown as a {k}x{k} square)",
            file=sys.stderr,
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
