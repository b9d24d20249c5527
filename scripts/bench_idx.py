"""Time reading an IDX file (default: Debian's 60,000-image Fashion-MNIST training file): best of N runs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from xpnet.data.idx import read_idx

DEFAULT = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    p.add_argument("--ndim", type=int, default=3)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        a = read_idx(args.path, ndim=args.ndim)
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {"file": str(args.path), "shape": a.shape, "best_s": min(times), "median_s": sorted(times)[len(times) // 2]}
        )
    )


if __name__ == "__main__":
    main()
