"""``python -m xpnet.export --model model.npz --onnx model.onnx``: a saved model as an ONNX graph, for any ONNX
runtime (a web page, a phone, another language): float32 rows of pixels in [0, 1] in (a picture prepared as
``predict`` prepares it, divided by 255), ``label`` and ``probabilities`` out, or a regressor's ``values``
(`library.export`, docs/api.md)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import common as cli
from .errors import say
from .files import check_writable, refuse_shared
from .library.export import write_onnx
from .nn import layer_text
from .predict import tool_parser
from .training.model import load


def build_parser() -> cli.ArgumentParser:
    p = tool_parser(
        "export",
        "Write a model saved by xpnet.train --save (or MLPClassifier.save) as an ONNX graph: float32 input rows, "
        "outputs 'label' and 'probabilities' (a regressor's: 'values'). "
        'Needs the onnx package (pip install "xpnet[onnx]").',
        "--onnx model.onnx",
        {
            0: "written",
            1: "the file could not be written (disk full)",
            2: "bad input: a flag, the --model file, the --onnx path, onnx missing",
        },
    )
    p.add_argument("--onnx", required=True, metavar="PATH", help="the ONNX file to write (folders are created)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    refuse_shared([("--model", args.model), ("--onnx", args.onnx)])
    path = check_writable(args.onnx, flag="--onnx", example="model.onnx")
    model = load(args.model, optimizer=False)
    write_onnx(model, path)
    outputs = f"{len(model.classes)} classes" if len(model.classes) else f"{model.sizes[-1]} values"  # a regressor
    say(f"wrote {path}: the {layer_text(model.sizes)} {model.activation} model, {outputs}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.export"))
