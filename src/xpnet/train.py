"""``python -m xpnet.train``: train the MLP on a data set and report accuracy and speed. Flags named override a
resumed checkpoint's settings, the others come from it or `TrainConfig`; ``--workers``/``--scheduler`` use Dask."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, is_out_of_memory, parse_device, registry, resolve_backend
from .cli import common as cli
from .cli.common import FLAGS, StopOnSignal
from .cli.progress import EpochBar, ProgressBar
from .data import DATASETS, Dataset, hold_out, load_dataset
from .data.datasets import LOCAL_SETS, example_val_split
from .data.download import MIRRORS_ENV, parse_mirrors
from .data.images import DEFAULT_SIZE
from .data.load import idx_files
from .errors import CheckpointError, OutOfMemory, TrainingDiverged, XpnetError, class_list, reason, say
from .files import WriteError, check_writable, locked, refuse_shared
from .nn import ACTIVATIONS, OPTIMIZERS, layer_sizes, layer_text, param_shapes
from .training import runlog
from .training.loop import Callback, StepSource, best_epoch, local_steps, should_stop, train
from .training.model import DTYPES, FIXED_FIELDS, Model, TrainConfig, TrainState, default_decay, load, save, spelled

DEFAULT_DATASET = "mnist"
DEFAULTS = TrainConfig()  # what a flag left out means on a new run
OPTIMIZER_SETTINGS = {"sgd": ("sgd", 0.0), "momentum": ("sgd", 0.9), "adam": ("adam", 0.0)}  # solver, momentum
CLI_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "identity")  # a linear net of pictures is the library's
SCHEDULER_ENV = "XPNET_SCHEDULER"
INSTALL = 'pip install "xpnet[dask]"'


# Each flag's help: a paragraph per flag, its lines after the first indented.
HELP = f"""
--workers train data-parallel on N Dask worker processes started here (needs {INSTALL}; docs/distributed.md)
--scheduler train data-parallel on the Dask cluster at ADDR, like tcp://10.0.0.5:8786 (default: ${SCHEDULER_ENV})
--dataset data set (default: {DEFAULT_DATASET}); idx and folder read your own IDX files or pictures from --data-dir
--data-dir folder of the four IDX files (downloaded there when missing) or, for --dataset folder, of train/<class>/
  and test/<class>/ pictures (required for idx and folder; default: $XPNET_DATA/<dataset> or ~/.cache/xpnet/<dataset>)
--image-size with --dataset folder: prepare every picture as N x N pixels (default: {DEFAULT_SIZE})
--mirror base URL to download the IDX files from, instead of the public mirrors; repeat to try several in order;
  {{dataset}} in it becomes the data set name (default: ${MIRRORS_ENV}, else public mirrors)
--val-split hold out N training images (stratified, fixed seed) to validate each epoch; the test set is scored last
--hidden units of each hidden layer (default: {spelled(DEFAULTS.hidden_layer_sizes)})
--activation default: {DEFAULTS.activation}
--optimizer sgd, momentum (sgd with momentum 0.9) or adam (default: {DEFAULTS.optimizer})
--lr learning rate (default: {", ".join(f"{name} {OPTIMIZERS[name].default_lr:g}" for name in OPTIMIZER_SETTINGS)})
--gamma multiply the learning rate by this after every epoch; 1 keeps it constant (default: 0.8 per 60,000
  images seen or per 469 steps, whichever comes later)
--alpha L2 penalty, as scikit-learn's alpha: each step adds alpha / batch * W to the weights' gradients (default: 0)
--patience with --val-split: stop when validation accuracy has not improved for N epochs and keep the best
  epoch's weights (default: 0, never stop early; scikit-learn's n_iter_no_change is N - 1)
--epochs default: {DEFAULTS.max_iter}
--batch-size examples per step; 0 trains on the whole training set at once (default: {DEFAULTS.batch_size})
--dtype default: {DEFAULTS.dtype}
--seed seeds weights and shuffling (default: {DEFAULTS.random_state})
--json end with one JSON line of results on stdout
--quiet no progress bar and no per-epoch lines (errors, the result and the --json line still print)
--log write a JSON line per epoch to PATH after a header line (--resume appends); missing folders in PATH are created
--save write a checkpoint (.npz) to PATH each epoch and on Ctrl-C, atomically; missing folders in PATH are created
--resume continue the run saved in PATH; --epochs is the total, model flags default to the checkpoint's
"""


def build_parser() -> cli.ArgumentParser:
    """The flags; those a user does not name stay None, so that one parse tells which were named."""
    *rest, last = registry()  # named from the registry, the help stays true when a library is added
    p = cli.ArgumentParser(
        prog=cli.program("train"),
        description="Train a multilayer perceptron on handwritten digits (or garments) with any of "
        f"{', '.join(rest)} or {last}: the same code runs on each, on the CPU or a CUDA GPU.",
        epilog=cli.epilog(
            "python -m xpnet.train --dataset digits --epochs 20   (MNIST is downloaded on first use; offline, "
            "put the four IDX .gz files in --data-dir)",
            {
                0: "trained",
                1: "training diverged (NaN/Inf: try a lower --lr), the device ran out of memory, a file could not "
                "be written (disk full), or Dask workers were lost (the last state is saved)",
                2: "bad input: a flag, a data file, a --save/--log path, a checkpoint that does not match",
                130: "stopped by Ctrl-C or SIGTERM during training (after saving, with --save)",
                143: "stopped by SIGTERM before training started",
            },
        ),
    )
    cli.add_device_flags(p)
    helps = dict(" ".join(flag.split()).split(" ", 1) for flag in re.split(r"\n(?=--)", HELP.strip()))
    # Each dest is the library's parameter; --optimizer and --patience each set two (see _train).
    dests = {flag: name for name, flag in FLAGS.items()} | {"--optimizer": "optimizer", "--patience": "patience"}

    def add(flag: str, kind: Any = None, to: Any = p, **kwargs: Any) -> None:
        if kind is not None:  # a TrainConfig field: parsed by ``kind``, then checked by the config's own rule
            kwargs["type"] = functools.partial(cli.setting, dests[flag], kind)
        to.add_argument(flag, dest=dests.get(flag), help=helps[flag], **kwargs)

    cluster = p.add_mutually_exclusive_group()  # one started here, or an existing one
    add("--workers", to=cluster, type=cli.positive_int, metavar="N")
    add("--scheduler", to=cluster, metavar="ADDR")
    add("--dataset", choices=DATASETS)
    add("--data-dir", metavar="DIR")
    add("--image-size", type=cli.positive_int, metavar="N")
    add("--mirror", action="append", metavar="URL")
    add("--val-split", type=cli.non_negative_int, metavar="N")
    add("--hidden", cli.hidden_sizes, metavar="N,N,...")
    add("--activation", choices=CLI_ACTIVATIONS)
    add("--optimizer", choices=OPTIMIZER_SETTINGS)
    add("--lr", float)
    add("--gamma", float)
    add("--alpha", float)
    add("--patience", type=cli.non_negative_int, metavar="N")
    add("--epochs", int)
    add("--batch-size", int, metavar="N")
    add("--dtype", choices=DTYPES)
    add("--seed", int)
    for flag in ("--json", "--quiet"):
        add(flag, action="store_true")
    for flag in ("--log", "--save", "--resume"):
        add(flag, metavar="PATH")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Checked before any data is read or any epoch is run: a bad path must not cost an hour of training.
    roles = {"--save": args.save, "--log": args.log, "--resume": args.resume}
    refuse_shared(roles, allowed={frozenset(("--save", "--resume"))})  # resuming into the same file is usual
    if args.save is not None:
        args.save = check_writable(args.save)
    if args.log is not None:
        args.log = check_writable(args.log, flag="--log", example="train.jsonl")
    with locked({"--save": args.save, "--log": args.log}):  # a second run on these files is refused
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    named = {k: v for k, v in vars(args).items() if v is not None}  # what the command line named
    ckpt = load(args.resume) if args.resume is not None else None
    if ckpt is not None and (ckpt.config.out_activation != "softmax" or ckpt.config.solver == "lbfgs"):
        raise CheckpointError(
            f"{args.resume} holds a {ckpt.config.out_activation}-output {ckpt.config.solver} model: --resume goes on "
            "with the command line's softmax classifiers trained by sgd or adam; train it on from Python (xpnet.load)"
        )
    # The config's fields: the resumed checkpoint's (else the defaults), overridden by those named.
    settings = {f.name: getattr(ckpt.config, f.name) for f in fields(TrainConfig)} if ckpt is not None else {}
    settings |= {f.name: named[f.name] for f in fields(TrainConfig) if f.name in named}
    if "optimizer" in named:
        settings["solver"], settings["momentum"] = OPTIMIZER_SETTINGS[named["optimizer"]]
    if (patience := named.get("patience")) is not None:  # N epochs without improvement: more than N - 1
        settings |= {"early_stopping": patience > 0, "n_iter_no_change": patience - 1 if patience else None}
    dataset = named.get("dataset", ckpt.dataset if ckpt else DEFAULT_DATASET)
    val_split = named.get("val_split", ckpt.val_split if ckpt else 0)
    if ckpt is not None:
        args.data_dir = cli.model_data_dir(args.data_dir, ckpt)  # by default the folder it was trained from
        if args.image_size is None and ckpt.layout is not None and dataset == "folder":
            args.image_size = ckpt.layout.side
        if settings["early_stopping"] and ckpt.state.best_params is None and ckpt.state.epoch:
            raise CheckpointError(  # before --val-split is asked for below: it would only lead here
                f"{ckpt.path} was trained without --patience, so it kept no best weights: resume it without "
                "--patience, or start a new run with it"
            )
    if settings.get("early_stopping") and not val_split:  # the test set must not choose the model
        example = example_val_split(dataset)
        size = f"e.g. --val-split {example}" if example else "about a tenth of the training images"
        raise XpnetError(
            f"--patience needs a validation set to watch: add --val-split N ({size}), or leave --patience out"
        )
    # The Dask scheduler: --scheduler, else True for --workers (a cluster started here), else $XPNET_SCHEDULER.
    address = args.scheduler or args.workers is not None or os.environ.get(SCHEDULER_ENV) or None
    if address is not None:  # checked before the data is read: Dask, and the flags its workers resolve
        if (args.workers or 0) > (cores := os.cpu_count() or 1):  # one process per worker
            raise XpnetError(f"--workers must be at most {cores}, the CPU cores of this machine, got {args.workers}")
        try:
            import distributed  # noqa: F401  (only whether the extra is there; training.distributed imports it)
        except ImportError:
            raise XpnetError(f"--workers and --scheduler need Dask, which is not installed: {INSTALL}") from None
        parse_device(args.device)  # --backend's choices are the registry's; the workers resolve both, we use NumPy
    backend = resolve_backend("cpu", "numpy") if address is not None else resolve_backend(args.device, args.backend)
    cli.announce(backend, args.verbose)
    data = load_dataset(
        dataset,
        args.data_dir,
        download=True,
        mirrors=parse_mirrors(" ".join(args.mirrors)) if args.mirrors else None,
        on_download=lambda name, where: say(f"{name}: downloading missing files to {where}", file=sys.stderr),
        progress=lambda file: ProgressBar(f"  {file}"),
        image_size=args.image_size,
        picture_progress=ProgressBar(f"{dataset}: reading pictures", unit="pictures"),
        notify=lambda line: say(line, file=sys.stderr),
    )
    if data.folder is not None:  # no output may replace an IDX file read, nor go in a picture folder
        read = [data.folder] if data.name == "folder" else idx_files(Path(data.folder))[0].values()
        refuse_shared(
            [*(("--data-dir", f) for f in read), ("--save", args.save), ("--log", args.log)], inputs=("--data-dir",)
        )
    data = hold_out(data, val_split)
    settings.setdefault("lr_decay", default_decay(len(data.y_train), settings.get("batch_size", DEFAULTS.batch_size)))
    config = TrainConfig(**settings)
    if ckpt is not None:
        check_resumable(ckpt, config, data)
    if not args.quiet:  # --quiet: errors, the result line and --json only
        layers = layer_text(layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes))
        val = f"{len(data.y_val)} validation / " if data.y_val is not None else ""
        classes = f", {data.n_classes} classes" if dataset in LOCAL_SETS else ""
        say(
            f"{data.name}: {len(data.y_train)} train / {val}{len(data.y_test)} test images{classes}; model {layers} "
            f"{config.activation}; {config.optimizer} lr {config.lr:g} x{config.lr_decay:g}/epoch, batch "
            f"{config.batch_size or 'full'}, {config.dtype}, seed {config.random_state}; {backend}"
        )
        if ckpt is not None:
            say(f"resuming {ckpt.path}: {ckpt.describe()} (saved from {ckpt.origin()})")
    # A second Ctrl-C quits at once through cli.run (exit 130); an unfinished checkpoint is discarded.
    with (
        _step_source(args, data, val_split, address) as (steps, cluster),
        _Shown(args, data, config, backend, ckpt, steps, cluster) as shown,
    ):
        model = Model.of_data(config, ckpt and ckpt.state, backend, data, val_split)
        state = train_saving(model, data, args.save, callbacks=[shown], steps=steps)
    if state.stopped:
        return cli.EXIT_INTERRUPTED
    kept = state.kept
    if state.restored:
        why = f"no better validation accuracy for {config.n_iter_no_change + 1} epochs"
        say(
            f"stopped after epoch {state.epoch} ({why if state.stopped_early else 'run ended'}): kept the weights "
            f"of epoch {kept.epoch}, the best on validation ({100 * kept.val_accuracy:.2f}%)"
        )
    line = f"test accuracy {100 * state.test_accuracy:.2f}% after {state.train_seconds:.2f} s of training"
    if ckpt is not None:  # its epochs' seconds and its unfinished epoch's, which the resumed epoch's include
        before = ckpt.state.train_seconds + ckpt.state.seconds
        line += f", both runs together ({before:.2f} s before --resume, {state.train_seconds - before:.2f} s now)"
    say(line)
    if args.save is not None:  # the epoch whose weights it holds, and the last one, which --resume continues
        held = f"epoch {state.epoch}"
        if state.restored:
            held = f"the weights of epoch {kept.epoch}, the best on validation; trained to epoch {state.epoch}"
        say(f"checkpoint: {args.save} ({held}); continue it with --resume {args.save}")
    if args.json:  # the kept weights' accuracies (with --patience the best epoch's), the last epoch's loss
        last, seconds = state.history[-1], state.train_seconds
        summary = {
            "dataset": data.name,
            "backend": backend.name,
            "device": backend.device_name,
            "dtype": config.dtype,
            "epochs": config.max_iter,
            "train_seconds": seconds,
            "samples_per_second": len(data.y_train) * len(state.history) / seconds if seconds > 0 else None,
            "final_loss": last.loss,
            "train_accuracy": kept.train_accuracy,
            "val_accuracy": kept.val_accuracy,
            "test_accuracy": state.test_accuracy,
            "last_val_accuracy": last.val_accuracy,
            "epochs_run": len(state.history),
            "best_epoch": best_epoch(state.history),
            "workers": steps.workers,  # what Dask workers computed with, or None
            "config": config.to_dict(),
        }
        say(json.dumps(summary))
    return 0


def check_resumable(ckpt: Model, config: TrainConfig, data: Dataset) -> None:
    """Refuse to resume ``ckpt`` into a run of another model or data, or one its --patience or --epochs ended."""
    wanted = {f: getattr(config, f) for f in FIXED_FIELDS} | {"dataset": data.name, "inputs": data.n_features}
    saved = {f: getattr(ckpt.config, f) for f in FIXED_FIELDS} | {"dataset": ckpt.dataset, "inputs": ckpt.n_features}
    flag = {**FLAGS, "optimizer": "--optimizer"}
    diff = [
        f"{flag.get(k, k)} {spelled(saved[k])} (you asked for {spelled(v)})" for k, v in wanted.items() if v != saved[k]
    ]
    if diff:
        raise CheckpointError(
            f"{ckpt.path} cannot be resumed as asked: it holds {'; '.join(diff)}; "
            "drop those flags to continue it, or start a new run without --resume"
        )
    if len(data.y_train) != ckpt.n_train:
        raise CheckpointError(
            f"{ckpt.path} trained on {ckpt.n_train} images of {ckpt.dataset} but this run has "
            f"{len(data.y_train)} (the checkpoint used --val-split {ckpt.val_split}): resume with the same data"
        )
    if tuple(data.classes) != ckpt.names:
        raise CheckpointError(
            f"{ckpt.path} trained on {class_list(ckpt.names)} but this data has "
            f"{class_list(data.classes)}: resume with the data it trained on, or start a new run without --resume"
        )
    if config.early_stopping and should_stop(ckpt.state.history, config):
        raise CheckpointError(
            f"{ckpt.path} already stopped early: validation accuracy has not improved since epoch "
            f"{best_epoch(ckpt.state.history)} for {config.n_iter_no_change + 1} epochs; resume with a larger "
            "--patience to train on"
        )
    if ckpt.state.epoch >= config.max_iter:
        raise CheckpointError(
            f"{ckpt.path} has already trained {ckpt.state.epoch} epochs: --epochs counts all epochs, "
            f"pass --epochs N with N > {ckpt.state.epoch} to train more"
        )


class Saver(Callback):
    """Writes the model to ``path`` after every epoch, and the state the run ended in when it is another;
    ``steps`` names what computed the gradients, ``saved`` is the state the file holds."""

    def __init__(self, path: Path, model: Model, steps: StepSource):
        self.path, self.model, self.steps, self.saved = path, model, steps, None

    def on_epoch_end(self, state: TrainState) -> bool:
        self.model.state, self.model.workers = state, self.steps.workers
        try:
            save(self.model, self.path)
        except (OSError, WriteError) as e:  # a disk that filled up during a long run
            there = self.path.exists()
            raise CheckpointError(
                f"cannot write the checkpoint {self.path} ({getattr(e, 'reason', None) or reason(e)}); "
                f"{'the previous one is intact' if there else 'no checkpoint was written'}: free some space or "
                f"give --save another place{', then --resume it' if there else ''}",
                exit_status=1,
            ) from None
        self.saved = state
        return False

    def on_train_end(self, state: TrainState) -> None:
        if state is not self.saved:  # stopped between steps, or the best epoch's weights put back
            self.on_epoch_end(state)


def train_saving(
    model: Model, data: Dataset, save_path: Path | None = None, *, callbacks: Sequence[Callback] = (), steps=local_steps
) -> TrainState:
    """`train` ``model`` with `StopOnSignal` and a `Saver` on ``save_path`` (first: a reader that stops early,
    ``| head``, cannot cost the checkpoint); a stop, divergence, out of memory or a failed step is one line."""
    saver = Saver(save_path, model, steps) if save_path is not None else None
    try:
        # NumPy's overflow warnings from a huge --lr would precede the one-line divergence message.
        with StopOnSignal() as stop, np.errstate(all="ignore"):
            hooks = [stop, *([saver] if saver else []), *callbacks]
            state = train(model.backend, data, model.config, state=model.state, callbacks=hooks, steps=steps)
    except TrainingDiverged as e:
        held = f"still holds epoch {saver.saved.epoch}" if saver and saver.saved else "is left as it was"
        kept = f"; {save_path} {held}" if saver and (saver.saved or save_path.exists()) else ""
        raise TrainingDiverged(e.naming(FLAGS["learning_rate_init"]) + kept) from None
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        config = model.config
        size, itemsize = config.batch_size or len(data.y_train), np.dtype(config.dtype).itemsize
        sizes = layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes)
        n_params = sum(math.prod(s) for s in param_shapes(sizes))
        # Weights, gradients and the optimizer's slots, against one batch's activations and their gradients.
        model_bytes = n_params * itemsize * (2 + len(OPTIMIZERS[config.optimizer].slots))
        hint = f" with --batch-size {config.batch_size} ({size} rows per step): try --batch-size {max(size // 2, 1)}"
        if model_bytes > 2 * size * sum(sizes) * itemsize:  # then a smaller batch cannot help
            hint = (
                f": the {layer_text(sizes)} model alone needs {model_bytes / 2**30:.1f} GiB ({n_params:,} weights "
                f"with their gradients and {config.optimizer} state): try smaller --hidden layers"
            )
        raise OutOfMemory(f"out of memory on {model.backend}{hint}") from None
    model.state = state
    if state.stopped:
        where = f"epoch {state.epoch + 1}, step {state.step}"
        kept = "nothing saved (pass --save PATH to keep a checkpoint)"
        if save_path is not None:
            kept = f"checkpoint saved to {save_path}: continue with --resume {save_path}"
        if state.failure is not None:
            raise type(state.failure)(f"{state.failure}; stopped in {where}; {kept}") from None
        say(f"stopped in {where}; {kept}")
    return state


@contextlib.contextmanager
def _step_source(
    args: argparse.Namespace, data: Dataset, val_split: int, address: str | bool | None
) -> Iterator[tuple[StepSource, Any]]:
    """(`local_steps`, None), or steps on a Dask cluster and that cluster, open while this is entered."""
    if address is None:
        yield local_steps, None
        return
    from .training import distributed as dist
    from .training.shards import DataSource

    # Workers reload the rows from the same files: the folder this process read them from.
    source = DataSource(data.name, data.folder, val_split, data.layout.side if data.layout is not None else None)
    device = args.device
    if address is True and parse_device(device)[0] == "auto":
        # Local workers each resolving "auto" would all take GPU 0: decide here, once, as one process would,
        # and start one worker per GPU (dask-cuda) when that means CUDA.
        device = "cuda" if resolve_backend("auto", args.backend).device_name.startswith("cuda") else "cpu"
    if address is True and parse_device(device)[0] == "cpu":  # measured: README.md, "Past one machine"
        say(
            f"--workers {args.workers}: a local Dask cluster trains about 20x slower than one process (Fashion-MNIST "
            "at batch 128 on 2 cores: 17-20 s an epoch against 0.7-1.1 s); on one machine, drop --workers",
            file=sys.stderr,
        )
    with dist.start_local(args.workers, device) if address is True else dist.connect(address) as cluster:
        yield dist.DaskSteps(cluster, source, device, args.backend), cluster


class _Shown(Callback, contextlib.AbstractContextManager):
    """What a run shows and logs: the progress bar and a line per epoch (not with --quiet), the --log file."""

    def __init__(self, args: Any, data: Dataset, config: TrainConfig, backend: Backend, ckpt: Model | None, *run: Any):
        self.args, self.data, self.config, self.backend, self.ckpt = args, data, config, backend, ckpt
        self.steps, self.cluster = run  # what computes the steps, and its Dask cluster or None
        read = lambda a: float(backend.to_numpy(a))  # noqa: E731  (one device sync)
        self.bar = EpochBar(
            config.max_iter, len(data.y_train), config.batch_size, read, isatty=False if args.quiet else None
        )
        self.log = None if args.log is None else runlog.LineFile(args.log, append=ckpt is not None)
        if self.log is not None and self.log.repaired:
            say(f"{args.log}: removed a last line cut short ({self.log.repaired} bytes)", file=sys.stderr)

    def on_train_begin(self, state: TrainState) -> None:
        # What computes the steps is known now (Dask workers: their shards are in).
        if self.cluster is not None:
            say(
                f"dask: {self.cluster}, each computing with {self.steps.worker_backend}; this process adds "
                "their gradients and updates the weights"
            )
        if self.log is not None:
            header = runlog.header(
                dataset=self.data.name,
                n_train=len(self.data.y_train),
                n_val=0 if self.data.y_val is None else len(self.data.y_val),
                n_test=len(self.data.y_test),
                backend=self.backend.name,
                device=self.backend.device_name,
                workers=self.steps.workers,
                seed=self.config.random_state,
                config=self.config.to_dict(),
                resumed_from_epoch=self.ckpt.state.epoch if self.ckpt is not None else None,
            )
            self.log.write(header)

    def on_step(self, epoch: int, rows_done: int, loss_sum: Any) -> None:
        self.bar.step(epoch, rows_done, loss_sum)

    def on_epoch_end(self, state: TrainState) -> bool:
        last, epochs = state.history[-1], self.config.max_iter
        if self.log is not None:
            self.log.write(runlog.epoch_record(last))
        self.bar.clear()
        if not self.args.quiet:
            held = ("val", last.val_accuracy) if last.val_accuracy is not None else ("test", last.test_accuracy)
            say(
                f"epoch {last.epoch:{len(str(epochs))}d}/{epochs}  loss {last.loss:.4f}  "
                f"train {100 * last.train_accuracy:6.2f}%  {held[0]} {100 * held[1]:6.2f}%  "
                f"{last.seconds:7.2f} s  {last.samples_per_second:9.0f} samples/s"
            )
        return False

    def on_train_end(self, state: TrainState | None = None) -> None:
        self.bar.clear()  # before the lines that say how the run ended

    def __exit__(self, *exc: object) -> None:
        self.bar.clear()
        if self.log is not None:
            self.log.close()


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.train"))
