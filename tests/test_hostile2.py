"""Hostile input, round two (issue 26): hard links, the picture-folder cache, folder scans, unbounded numbers,
permissions as a user who is not root, data that cannot teach, and a Ctrl-C while a Dask cluster starts.

Each bad input must be one line on stderr naming the problem and the fix, exit status 2, no traceback and
nothing half-written. Tests that need a user who is not root fork a child that drops to ``nobody``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import traceback
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import DIGITS, SRC, rewrite, run_train
from xpnet import train
from xpnet.cli import common as cli
from xpnet.data import cache, load_dataset
from xpnet.data.datasets import IDX_FILES
from xpnet.data.idx import write_idx
from xpnet.errors import CheckpointError, XpnetError
from xpnet.files import check_writable
from xpnet.training.model import load

NOBODY = 65534
QUICK = [*DIGITS, "--hidden", "8", "--quiet"]


def one_line_error(status: int, err: str, *words: str) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


# --- 1. hard links ------------------------------------------------------------------------------------


def test_a_hard_link_to_the_resumed_checkpoint_is_refused_as_the_log(tmp_path, capsys):
    ckpt = tmp_path / "r.npz"
    assert run_train(capsys, *QUICK, "--epochs", "1", "--save", str(ckpt))[0] == 0
    before = ckpt.read_bytes()
    os.link(ckpt, tmp_path / "r_hard.npz")
    hard = str(tmp_path / "r_hard.npz")
    status, _, err = run_train(capsys, *QUICK, "--epochs", "2", "--resume", str(ckpt), "--log", hard)
    one_line_error(status, err, "is also the --log file")
    assert ckpt.read_bytes() == before and load(ckpt).state.epoch == 1


def test_a_log_with_a_second_name_is_refused_before_any_work(tmp_path, capsys):
    log = tmp_path / "a.jsonl"
    assert run_train(capsys, *QUICK, "--epochs", "1", "--log", str(log))[0] == 0
    before = log.read_bytes()
    os.link(log, tmp_path / "b.jsonl")  # a running run's log, under another name: its lock is by path
    status, _, err = run_train(capsys, *QUICK, "--epochs", "1", "--log", str(tmp_path / "b.jsonl"))
    one_line_error(status, err, "2 names (hard links)", "choose another --log")
    assert log.read_bytes() == before
    with pytest.raises(XpnetError, match="hard links"):
        check_writable(log, "--log")


# --- 2, 3. the picture-folder cache -----------------------------------------------------------------------


def write_npy_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/train/<class>/NNN.npy``: 8x8 pictures, each class a shape of its own (a bar across, a bar down, a
    diagonal) with a stray dot somewhere."""
    rng = np.random.default_rng(seed)
    shapes = (np.s_[3:5, :], np.s_[:, 3:5], (np.arange(8), np.arange(8)))
    for k, (name, n) in enumerate(per_class.items()):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(n):
            a = np.zeros((8, 8), np.uint8)
            a[shapes[k % 3]] = 250
            a[tuple(rng.integers(0, 8, 2))] = 200
            np.save(folder / f"{i:03d}.npy", a)
    return root


@pytest.fixture
def pictures(tmp_path) -> Path:
    root = write_npy_folder(tmp_path / "pictures", {"a": 12, "b": 12, "c": 12})
    shutil.copytree(root / "train", root / "test")
    return root


def test_a_picture_changed_in_place_with_its_size_and_time_makes_the_cache_stale(pictures):
    first = load_dataset("folder", pictures)
    a, b = pictures / "train" / "a" / "000.npy", pictures / "train" / "b" / "000.npy"
    times = [(p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (a, b)]
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)  # same sizes, same names, same times: only the contents tell
    b.write_bytes(data_a)
    for p, ns in zip((a, b), times):
        os.utime(p, ns=ns)
    notes = []
    again = load_dataset("folder", pictures, notify=notes.append)
    assert any("is stale" in n and "reading the pictures again" in n for n in notes), notes
    assert not np.array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(again.x_train[0], first.x_train[12])  # the picture now in a/000.npy


def test_a_forged_cache_beside_the_pictures_or_in_a_shared_folder_is_never_trained_on(pictures, tmp_path, monkeypatch):
    honest = load_dataset("folder", pictures)
    where = cache.cache_path(pictures, 28)
    with np.load(where, allow_pickle=False) as npz:
        forged = {k: npz[k] for k in npz.files}
    forged["y_train"] = np.zeros_like(forged["y_train"])  # the right key, the wrong labels
    with open(pictures / ".xpnet-cache-28.npz", "wb") as f:  # where xpnet 0.x kept it
        np.savez(f, **forged)
    np.testing.assert_array_equal(load_dataset("folder", pictures).y_train, honest.y_train)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(cache.CACHE_ENV, str(shared))
    with open(cache.cache_path(pictures, 28), "wb") as f:
        np.savez(f, **forged)
    notes = []
    data = load_dataset("folder", pictures, notify=notes.append)
    np.testing.assert_array_equal(data.y_train, honest.y_train)
    assert any("is in a folder others may write (chmod 700" in n for n in notes), notes


def declaring(name: str, shape: tuple[int, ...], dtype: str) -> bytes:
    """An ``.npz`` whose member ``name`` has a header declaring ``shape`` of ``dtype`` and no payload."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": dtype, "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key in cache.KEYS:
            z.writestr(f"{key}.npy", head.getvalue() if key == name else b"")
    return buf.getvalue()


SPECIAL_CACHES = {
    "x_train declaring 10**13 bytes": lambda p: p.write_bytes(declaring("x_train", (10**13 // 64, 64), "|u1")),
    "key declaring 2.5 GB": lambda p: p.write_bytes(declaring("key", (), "<U655360000")),
    "a FIFO": lambda p: os.mkfifo(p),
    "a symlink loop": lambda p: os.symlink(p.name, p),
    "a link to /dev/zero": lambda p: os.symlink("/dev/zero", p),
    "a folder": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("make", SPECIAL_CACHES.values(), ids=SPECIAL_CACHES.keys())
def test_a_damaged_huge_or_special_cache_is_ignored_and_rebuilt(pictures, make):
    where = cache.cache_path(pictures, 28)
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    make(where)
    code = f"""
        from xpnet.data import load_dataset
        notes = []
        data = load_dataset("folder", {str(pictures)!r}, notify=notes.append)
        print(len(data.y_train), any("reading the pictures again" in n for n in notes))
    """
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    prelude = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30,) * 2)\n"  # a bomb fails fast
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0 and done.stdout.split() == ["36", "True"], done.stderr[-2000:]
    if not where.is_dir():
        assert where.is_file() and not where.is_symlink()  # replaced by a real cache


# --- 4. folder scans -------------------------------------------------------------------------------------


def test_links_that_lead_nowhere_and_names_that_are_not_utf8_are_skipped_or_kept(tmp_path, capsys):
    root = write_npy_folder(tmp_path / "pictures", {"a": 6, "b": 6})
    os.symlink("loop.npy", root / "train" / "a" / "loop.npy")
    os.symlink("missing.npy", root / "train" / "a" / "dangling.npy")
    odd = os.fsdecode(b"caf\xe9")  # Latin-1, not UTF-8
    shutil.copytree(root / "train" / "b", root / "train" / odd)
    shutil.copy(root / "train" / "a" / "000.npy", root / "train" / "a" / os.fsdecode(b"\xff.npy"))
    status, out, err = run_train(
        capsys, "--dataset", "folder", "--data-dir", str(root), "--epochs", "1", "--hidden", "4"
    )
    assert status == 0 and "Traceback" not in err, err
    assert "loop.npy: skipped" in err and "dangling.npy: skipped" in err
    assert ", 3 classes;" in out


# The child only runs NumPy code and exits, killed by an alarm at worst: JAX's threads in this process are not
# its concern, so JAX's warning against forking is silenced where it is called.
FORK_WARNING = "ignore:os.fork:RuntimeWarning"


def as_nobody(main, argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` through `cli.run` in a forked child running as the user nobody: (exit status, stderr)."""
    if os.name != "posix":
        pytest.skip("needs POSIX users")
    sys.stdout.flush()
    sys.stderr.flush()  # else the child's copy of what is buffered would be written again
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        status = 99
        try:
            os.close(r)
            signal.alarm(120)  # bounded: a hang kills the child
            sys.stdout, sys.stderr = open(os.devnull, "w"), os.fdopen(w, "w")
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                status = cli.run(main, argv, prog="xpnet")
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(status)
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.fixture
def open_tmp():
    """A folder every user may enter (pytest's own are private to root), removed afterwards."""
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwuid(NOBODY)
        except (ImportError, KeyError):
            pytest.skip("no user nobody to drop to")
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_class_folder_that_cannot_be_read_is_one_line(open_tmp):
    root = write_npy_folder(open_tmp / "pictures", {"a": 6, "b": 6, "c": 6})
    for d in (root, root / "train", *(root / "train").iterdir()):
        d.chmod(0o755)
    (root / "train" / "c").chmod(0o000)
    status, err = as_nobody(train.main, ["--dataset", "folder", "--data-dir", str(root), "--epochs", "1"])
    one_line_error(status, err, "cannot read", "train/c", "Permission denied")


# --- 5. unbounded numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--workers", "99999999999", "CPU cores"),
        ("--hidden", "111111111111111111111111111111", "from 1 to 1,000,000 units"),
        ("--batch-size", "99999999999999999999", "2**63"),  # the limit the number broke
    ],
)
def test_numbers_past_any_use_are_refused_by_the_flag_parser(capsys, flag, value, words):
    status, _, err = run_train(capsys, *QUICK, flag, value)
    one_line_error(status, err, flag, words)


def test_metadata_nested_100000_deep_is_one_line(saved):
    path, _ = saved

    def nest(arrays):
        raw = json.dumps(json.loads(arrays["meta"].tobytes()))[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
        arrays["meta"] = np.frombuffer(raw.encode(), dtype=np.uint8)

    rewrite(path, nest)
    with pytest.raises(CheckpointError, match="nests too deep"):
        load(path)


# --- 6. permissions, as a user who is not root --------------------------------------------------------


@pytest.mark.filterwarnings(FORK_WARNING)
def test_save_into_a_folder_one_may_not_enter_is_one_line(open_tmp):
    private = open_tmp / "private"
    private.mkdir(mode=0o700)
    status, err = as_nobody(train.main, [*QUICK, "--epochs", "1", "--save", str(private / "m.npz")])
    one_line_error(status, err, "cannot save to", "Permission denied", "choose another --save")
    assert list(private.iterdir()) == []


@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_checkpoint_one_may_not_read_is_permission_denied(open_tmp, saved):
    path = open_tmp / "m.npz"
    shutil.copy(saved[0], path)
    path.chmod(0o000)
    status, err = as_nobody(train.main, [*QUICK, "--epochs", "3", "--resume", str(path)])
    one_line_error(status, err, "cannot read checkpoint", "Permission denied")


# --- 7. data that cannot teach -----------------------------------------------------------------------


def write_idx_set(root: Path, train_labels: np.ndarray, test_labels: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    arrays = {
        "train_images": rng.integers(0, 255, (train_labels.size, 28, 28), dtype=np.uint8),
        "train_labels": train_labels.astype(np.uint8),
        "test_images": rng.integers(0, 255, (test_labels.size, 28, 28), dtype=np.uint8),
        "test_labels": test_labels.astype(np.uint8),
    }
    for key, base in IDX_FILES.items():
        write_idx(root / base, arrays[key])
    return root


@pytest.mark.parametrize(
    "train_labels, words",
    [(np.arange(100) % 5, "no image of class(es) 5, 6, 7, 8, 9"), (np.zeros(100), "has 1 class(es) (0)")],
    ids=["classes 0-4 of 0-9", "every label 0"],
)
def test_idx_training_labels_that_lack_classes_are_refused(tmp_path, capsys, train_labels, words):
    root = write_idx_set(tmp_path / "idx", train_labels, np.arange(50) % 10)
    status, _, err = run_train(capsys, "--dataset", "idx", "--data-dir", str(root), "--epochs", "1", "--quiet")
    one_line_error(status, err, "train-labels-idx1-ubyte", words)


def test_one_picture_classes_are_trained_on_and_never_make_the_test_set(tmp_path):
    counts = {f"single-{i:03d}": 1 for i in range(200)} | {"big-a": 30, "big-b": 30, "big-c": 30}
    root = write_npy_folder(tmp_path / "pictures", counts)
    notes = []
    data = load_dataset("folder", root, notify=notes.append)
    assert len(data.y_test) == 18 and len(data.y_train) == 272  # a fifth of the 90 pictures of the big classes
    singles = [data.classes.index(name) for name in counts if name.startswith("single")]
    assert set(np.bincount(data.y_train, minlength=203)[singles]) == {1} and not set(data.y_test) & set(singles)
    assert any("200 class(es) have a single picture, trained on but never tested" in n for n in notes), notes


# --- 8. Ctrl-C while a Dask cluster starts --------------------------------------------------------------


def test_ctrl_c_while_the_workers_start_leaves_no_traceback():
    pytest.importorskip("distributed")
    code = """
        import os, signal, threading
        from xpnet.training import distributed as dist

        class Interrupted(dist.LocalCluster):
            def __init__(self, *args, **kwargs):  # Ctrl-C, as a terminal sends it, every 0.2 s while it starts
                done = threading.Event()

                def press():
                    for _ in range(100):  # bounded: 20 s at most
                        if done.wait(0.2):
                            return
                        os.killpg(0, signal.SIGINT)

                threading.Thread(target=press, daemon=True).start()
                try:
                    super().__init__(*args, **kwargs)
                finally:
                    done.set()

        dist.LocalCluster = Interrupted
        if __name__ == "__main__":
            try:
                with dist.start_local(2) as cluster:
                    print(len(cluster.workers()), "workers")
            except KeyboardInterrupt:  # held back while the workers start, then raised (issue 33)
                print("interrupted")
    """
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        start_new_session=True,  # its own process group: the Ctrl-Cs reach it and its workers only
    )
    assert done.returncode == 0 and done.stdout.strip() == "interrupted", done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr[-3000:]
