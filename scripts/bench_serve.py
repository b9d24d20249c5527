"""Time ``POST /predict`` of ``xpnet serve``: concurrent clients on 127.0.0.1 sending a drawn 280x280 PNG.

The server is the real command (``python -m xpnet.serve --device cpu --port 0``) in its own process, pinned
to one CPU core with one BLAS thread; the clients are threads of this process, each on a keep-alive
connection, sending what the page sends while someone draws (``?top=5&seen=1``) and pinned to the other cores
when there are any. Without ``--model``, a 784-256-128-10 float32 MNIST-layout model (the default network)
is trained for one epoch on random pixels: the speed does not depend on what it learnt. Prints the CPU, then
per number of clients the median (p50), p90, p99 and worst latency and the requests per second; ``--json``
writes them too. ``picture_record`` alone (no HTTP) is timed as well, in a process set up as the server is.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib
from benchlib.machine import cpu_info, cpu_pressure
from xpnet import __version__
from xpnet.backend import resolve_backend
from xpnet.data import Dataset
from xpnet.training.loop import train
from xpnet.training.model import Model, TrainConfig, save

SRC = Path(__file__).resolve().parents[1] / "src"


def drawn_png() -> bytes:
    """A 7 as the page sends it: a 20-pixel dark stroke on a white, opaque 280x280 RGBA canvas."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (280, 280), "white")
    ImageDraw.Draw(canvas).line([(60, 60), (220, 60), (120, 240)], fill="#111", width=20, joint="curve")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def default_model(folder: Path) -> Path:
    """The default network (784-256-128-10 relu float32) after one epoch on 2,000 random MNIST-shaped images."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2000, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 2000).astype(np.uint8)
    data = Dataset("mnist", x, y, x[:200], y[:200], (28, 28))
    config = TrainConfig(max_iter=1)
    backend = resolve_backend("cpu", "numpy")
    return save(Model.of_data(config, train(backend, data, config), backend, data), folder / "model.npz")


def server_env() -> dict[str, str]:
    """This checkout's source first on the path, one BLAS thread."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return env | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start_server(model: Path, core: int | None) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "xpnet.serve", "--model", str(model), "--device", "cpu", "--port", "0"]
    proc = subprocess.Popen(argv, env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if core is not None:
        os.sched_setaffinity(proc.pid, {core})
    line = proc.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:(\d+))/$", line.strip())
    if not found:
        proc.kill()
        raise SystemExit(f"bench_serve: the server did not start: {line!r}")
    return proc, found.group(2)


def run_clients(port: int, body: bytes, clients: int, requests: int, warmup: int) -> dict:
    """``clients`` threads, each sending ``warmup`` then ``requests`` timed POSTs on its own connection."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    barrier = threading.Barrier(clients + 1)
    path = "/predict?top=5&seen=1&file=drawing.png"

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for _ in range(warmup):
                conn.request("POST", path, body=body)
                conn.getresponse().read()
            barrier.wait()
            for _ in range(requests):
                start = time.perf_counter()
                conn.request("POST", path, body=body)
                r = conn.getresponse()
                r.read()
                latencies[i].append(time.perf_counter() - start)
                if r.status != 200:
                    failures.append(str(r.status))
        except Exception as e:  # counted, not hidden
            failures.append(repr(e))
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait(timeout=300)
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    ms = np.array([x for per in latencies for x in per]) * 1000
    return {
        "clients": clients,
        "requests": int(ms.size),
        "failures": len(failures),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "requests_per_second": ms.size / seconds,
    }


RECORD_ALONE = """
import statistics, sys, time
from PIL import Image
from xpnet import serve
body = open(sys.argv[1], "rb").read()
model = serve.load_model(sys.argv[2], "cpu", "numpy")
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    serve.picture_record(model, body, "drawing.png", 5, pil=Image, seen=True)
    times.append(time.perf_counter() - start)
print(1000 * statistics.median(times[5:]))
"""


def in_process(model: Path, body: bytes, n: int, core: int | None, folder: Path) -> float:
    """The median milliseconds of `serve.picture_record` alone (prepare, forward, the seen PNG; no HTTP), in a
    fresh process set up as the server is (its core, one BLAS thread)."""
    picture = folder / "drawing.png"
    picture.write_bytes(body)
    argv = [sys.executable, "-c", RECORD_ALONE, str(picture), str(model), str(n)]
    done = subprocess.run(
        argv,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=(lambda: os.sched_setaffinity(0, {core})) if core is not None else None,
    )
    if done.returncode:
        raise SystemExit(f"bench_serve: timing picture_record failed: {done.stderr[-500:]}")
    return float(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a checkpoint (default: the default network on random pixels)")
    p.add_argument("--clients", default="1,4,16,64", help="comma-separated numbers of concurrent clients")
    p.add_argument("--requests", type=int, default=200, help="timed requests per run, shared by its clients")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests per client first")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[0] if len(cores) > 1 else None
    if len(cores) > 1:
        os.sched_setaffinity(0, set(cores[1:]))
    body = drawn_png()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        alone = in_process(model, body, 200, server_core, Path(tmp))
        proc, port = start_server(model, server_core)
        try:
            runs = []
            for n in (int(c) for c in args.clients.split(",")):
                runs.append(run_clients(int(port), body, n, max(1, args.requests // n), args.warmup))
        finally:
            proc.terminate()
            proc.wait(30)
    cpu = cpu_info()
    load = cpu_pressure()
    print(
        f"cpu: {cpu['cpu']} ({cpu['isa_level']}); {len(cores)} cores here; server pinned to "
        f"{'core ' + str(server_core) if server_core is not None else 'the one core'}, 1 BLAS thread; "
        f"clients on the others" + (f"; CPU pressure {load:.0f}% (Linux PSI, last minute)" if load is not None else "")
    )
    print(f"picture: drawn 280x280 PNG, {len(body)} bytes; POST /predict?top=5&seen=1; xpnet {__version__}")
    print(f"picture_record alone (no HTTP), one process on the same core: {alone:.2f} ms median")
    print(
        f"{'clients':>7} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8} failures"
    )
    for r in runs:
        print(
            f"{r['clients']:>7} {r['requests']:>8} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['max_ms']:>8.1f} {r['requests_per_second']:>8.1f} {r['failures']:>8}"
        )
    if args.json:
        report = {
            "cpu": cpu,
            "cores": len(cores),
            "cpu_pressure": load,
            "png_bytes": len(body),
            "picture_record_ms": alone,
            "runs": runs,
            "xpnet_version": __version__,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
