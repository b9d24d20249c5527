"""``python -m xpnet.train``: train the MLP on a data set and report accuracy and speed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import common as cli
from .cli import loading, report
from .cli.cluster import client_backend, cluster_steps
from .cli.progress import EpochBar
from .cli.train_flags import build_parser, explicit_flags
from .data import hold_out
from .data.datasets import LOCAL_SETS, example_val_split
from .errors import printable
from .files import check_writable, locked, refuse_shared
from .training import early_stop, runlog
from .training.checkpoint import load_checkpoint
from .training.config import TrainConfig
from .training.loop import workers_of
from .training.resume import check_patience, check_resumable, resumed_config
from .training.schedule import default_gamma
from .training.session import train_saving
from .training.state import EpochStats

EXIT_INTERRUPTED = cli.EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Checked before any data is read or any epoch is run: a bad path must not cost an hour of training.
    roles = {"--save": args.save, "--log": args.log, "--resume": args.resume}
    refuse_shared(roles, allowed={frozenset(("--save", "--resume"))})  # resuming into the same file is usual
    save_path = check_writable(args.save) if args.save is not None else None
    log_path = check_writable(args.log, flag="--log", example="train.jsonl") if args.log is not None else None
    with locked({"--save": save_path, "--log": log_path}):  # a second run on these files is refused
        return _train(args, argv, save_path, log_path)


def _train(args: argparse.Namespace, argv: Sequence[str] | None, save_path: Path | None, log_path: Path | None) -> int:
    ckpt = load_checkpoint(args.resume) if args.resume is not None else None
    config = TrainConfig(
        hidden=args.hidden,
        activation=args.activation,
        optimizer=args.optimizer,
        lr=args.lr,
        gamma=1.0 if args.gamma is None else args.gamma,  # None: set from the data's size below
        epochs=args.epochs,
        batch_size=args.batch_size,
        dtype=args.dtype,
        seed=args.seed,
        patience=args.patience,
        alpha=args.alpha,
    )
    dataset, val_split, image_size = args.dataset, args.val_split, args.image_size
    if ckpt is not None:
        config, dataset, val_split = resumed_config(ckpt, {k: getattr(args, k) for k in explicit_flags(argv)})
        args.data_dir = loading.model_data_dir(args.data_dir, ckpt)  # by default the folder it was trained from
        if image_size is None and ckpt.layout is not None and dataset == "folder":
            image_size = ckpt.layout.side
    if ckpt is not None:
        check_patience(ckpt, config)
    early_stop.require_validation(config.patience, val_split, example_val_split(dataset))
    backend = client_backend(args)  # NumPy, when Dask workers compute
    cli.announce(backend, args.verbose)
    data = hold_out(loading.load_for_training(args, dataset, image_size), val_split)
    if ckpt is None and args.gamma is None:
        config = dataclasses.replace(config, gamma=default_gamma(len(data.y_train), config.batch_size))
    if ckpt is not None:
        check_resumable(ckpt, config, data.name, data.n_features, len(data.y_train), data.classes)

    print(report.run_line(data, config, backend, with_classes=dataset in LOCAL_SETS), flush=True)
    if ckpt is not None:
        print(f"resuming {printable(ckpt.path)}: {ckpt.describe()} (saved from {ckpt.origin()})", flush=True)
    bar = None
    if not args.quiet:
        bar = EpochBar(config.epochs, len(data.y_train), config.batch_size, lambda a: float(backend.to_numpy(a)))
    log = None
    if log_path is not None:
        log = runlog.LineFile(log_path, append=ckpt is not None)  # closed in the finally below
        if log.repaired:
            print(f"{printable(log_path)}: removed a last line cut short ({log.repaired} bytes)", file=sys.stderr)

    def ready(workers: str | None) -> None:
        """Write the log's header once what computes the steps is known (Dask workers: when their shards are in)."""
        if log is not None:
            resumed_from = ckpt.state.epoch if ckpt is not None else None
            log.write(report.log_header(data, config, backend, resumed_from, workers))

    def show(stats: EpochStats) -> None:
        if log is not None:
            log.write(runlog.epoch_record(stats))
        if bar is not None:
            bar.clear()
            print(report.format_epoch(stats, config.epochs), flush=True)

    try:  # a second Ctrl-C quits at once through cli.run (exit 130); an unfinished checkpoint is discarded
        with cluster_steps(args, data, val_split, ready) as steps:  # a Dask cluster is open for the run
            result = train_saving(
                backend,
                data,
                config,
                state=ckpt and ckpt.state,
                save_path=save_path,
                val_split=val_split,
                on_epoch=show,
                on_step=bar.step if bar is not None and bar.enabled else None,
                before_message=bar.clear if bar is not None else None,
                steps=steps,
            )
    finally:
        if bar is not None:
            bar.clear()
        if log is not None:
            log.close()
    if result.stopped:
        return EXIT_INTERRUPTED

    last, kept = result.history[-1], early_stop.kept_stats(result)
    if result.state is not None and result.state.restored:
        why = f"no better validation accuracy for {config.patience} epochs" if result.stopped_early else "run ended"
        print(
            f"stopped after epoch {last.epoch} ({why}): kept the weights of epoch {kept.epoch}, the best on "
            f"validation ({100 * kept.val_accuracy:.2f}%)"
        )
    print(report.result_line(result, ckpt))  # a resumed run's seconds add both runs, and say so
    if save_path is not None:
        print(report.checkpoint_line(save_path, result))  # the epoch whose weights it holds
    if args.json:
        print(json.dumps(report.summary(data, config, backend, result, workers_of(steps))))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.train"))
