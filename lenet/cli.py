"""Command line: python -m lenet train | evaluate | predict | reproduce | bench | runs | worker | ...

Every user error (bad argument, missing data, unusable checkpoint) is one line on stderr and
exit status 2; nothing already stored is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from . import CLASSES, artifacts, data
from .models import UnknownVariantError, create_model, list_models
from .predict import ImageError
from .store import RunStateError
from .train import ConfigError, TrainConfig, evaluate, prepare_splits

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise UsageError(message)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _progress_bar(total: int, description: str):
    from tqdm import tqdm

    # disable=None: shown on a terminal, silent when stderr is a pipe or a file.
    return tqdm(
        total=total, desc=description, unit="batch", disable=None, dynamic_ncols=True, file=sys.stderr
    )


def _stop_on_ctrl_c():
    """First Ctrl-C asks the loop to stop (keeping the last full epoch); a second one aborts."""
    requested = {"stop": False}

    def handler(signum, frame):
        if requested["stop"]:
            raise KeyboardInterrupt
        requested["stop"] = True
        print("\nstopping after this batch (Ctrl-C again to abort)...", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    return lambda: requested["stop"]


def cmd_train(args) -> int:
    from .store import Store
    from .worker import execute_run

    config = TrainConfig.for_variant(
        args.variant,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        seed=args.seed,
        train_limit=args.train_limit,
        device=args.device,
        init_from=str(args.init_from) if args.init_from else None,
    )
    if args.init_from:  # refuse an unusable warm start before anything is recorded
        model, _ = artifacts.load_checkpoint(args.init_from)
        artifacts.check_compatible(model.state_dict(), create_model(config.variant), str(args.init_from))
    checkpoint = None
    if args.name or args.out:
        out_dir = Path(args.out) if args.out else artifacts.runs_dir()
        name = args.name or f"{config.variant}-{datetime.now():%Y%m%d-%H%M%S}-s{config.seed}"
        checkpoint = out_dir / f"{name}.pth"
        if checkpoint.exists():
            raise UsageError(f"{checkpoint} already exists; choose another --name or --out")
    splits = prepare_splits(config, args.data_dir)
    if not args.json:
        print(
            f"training {config.variant} on {len(splits.train):,} images "
            f"(validation {len(splits.val):,}), {config.epochs} epochs, batch {config.batch_size}, "
            f"lr {config.lr:g}, weight decay {config.weight_decay:g}",
            file=sys.stderr,
        )
    # Recorded in the run store, so the dashboard shows this run live.
    store = Store()
    run_id = store.start_direct_run(config, args.name)
    bar = _progress_bar(0, config.variant)

    def on_step(step):
        bar.total = step.total_steps
        bar.update(step.global_step - bar.n)
        bar.set_postfix(epoch=f"{step.epoch}", loss=f"{step.loss:.3f}", acc=f"{step.accuracy:.3f}")

    def on_epoch(epoch):
        if not args.json:
            bar.write(
                f"epoch {epoch.epoch:>2}/{config.epochs}  train loss {epoch.train_loss:.4f} "
                f"acc {_percent(epoch.train_accuracy)}  val loss {epoch.val_loss:.4f} "
                f"acc {_percent(epoch.val_accuracy)}  ({epoch.seconds:.1f} s)",
                file=sys.stderr,
            )

    result = execute_run(
        store,
        run_id,
        splits=splits,
        checkpoint_path=checkpoint,
        on_step=on_step,
        on_epoch=on_epoch,
        extra_stop=_stop_on_ctrl_c(),
    )
    bar.close()
    checkpoint = store.get_run(run_id)["checkpoint"]
    if result.status == "diverged":
        print(f"lenet: {result.message}", file=sys.stderr)
    elif result.message:
        print(result.message, file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "status": result.status,
                    "message": result.message,
                    "config": config.to_dict(),
                    "history": [vars(h) for h in result.history],
                    "train_accuracy": result.train_accuracy,
                    "val_accuracy": result.val_accuracy,
                    "test_accuracy": result.test_accuracy,
                    "per_class_accuracy": _by_class(result.test.per_class_accuracy) if result.test else None,
                    "seconds": result.seconds,
                    "device": result.device,
                    "checkpoint": checkpoint,
                },
                indent=2,
            )
        )
    elif result.test is not None:
        print(
            f"train {_percent(result.train_accuracy)}  validation {_percent(result.val_accuracy)}  "
            f"test {_percent(result.test_accuracy)}  in {result.seconds:.0f} s"
        )
        print(f"checkpoint: {checkpoint}")
    return 0 if result.status in ("finished", "stopped") else EXIT_FAILED


def cmd_runs(args) -> int:
    from .store import Store

    runs = Store(args.db).list_runs()
    if args.json:
        print(runs.to_json(orient="records", indent=2))
        return 0
    if runs.empty:
        print("no runs yet: python -m lenet train --variant baseline")
        return 0
    table = runs[
        [
            "id",
            "name",
            "variant",
            "status",
            "epochs_completed",
            "epochs",
            "progress",
            "train_accuracy",
            "val_accuracy",
            "test_accuracy",
        ]
    ].copy()
    for column in ("progress", "train_accuracy", "val_accuracy", "test_accuracy"):
        table[column] = table[column].map(lambda v: "" if v is None or v != v else f"{100 * v:.1f}%")
    print(table.to_string(index=False))
    return 0


def cmd_worker(args) -> int:
    from .store import Store
    from .worker import run_worker

    if args.max_running < 1 or args.idle_exit < 0:
        raise UsageError("--max-running must be at least 1 and --idle-exit at least 0")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    done = run_worker(
        Store(args.db),
        threads=args.threads,
        max_running=args.max_running,
        idle_exit_s=args.idle_exit,
        poll_s=args.poll,
        data_dir=args.data_dir,
    )
    print(f"worker {os.getpid()}: queue empty, exiting after {done} run(s)", file=sys.stderr)
    return 0


def cmd_stop(args) -> int:
    from .store import Store

    Store(args.db).request_stop(args.run_id)
    print(f"stop requested for run {args.run_id}")
    return 0


def cmd_cancel(args) -> int:
    from .store import Store

    Store(args.db).cancel(args.run_id)
    print(f"run {args.run_id} removed from the queue")
    return 0


def _by_class(values: list[float]) -> dict[str, float]:
    return dict(zip(CLASSES, values, strict=True))


def cmd_evaluate(args) -> int:
    model, metadata = artifacts.load_checkpoint(args.checkpoint)
    splits = data.make_splits(data.load_raw(args.data_dir))
    metrics = evaluate(model, splits.test)
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "variant": metadata["variant"],
                    "variant_inferred": bool(metadata.get("inferred")),
                    "test_accuracy": metrics.accuracy,
                    "test_loss": metrics.loss,
                    "per_class_accuracy": _by_class(metrics.per_class_accuracy),
                    "confusion_matrix": metrics.confusion_matrix,
                },
                indent=2,
            )
        )
        return 0
    inferred = " (inferred from its layers)" if metadata.get("inferred") else ""
    print(f"{args.checkpoint}: variant {metadata['variant']}{inferred}")
    print(
        f"test accuracy {_percent(metrics.accuracy)} over {len(splits.test):,} images, "
        f"loss {metrics.loss:.4f}"
    )
    for name, value in _by_class(metrics.per_class_accuracy).items():
        print(f"  {name:<12} {_percent(value):>7}")
    return 0


def cmd_predict(args) -> int:
    import torch

    from .predict import INFERENCE_THREADS, open_image, predict, to_model_input

    torch.set_num_threads(INFERENCE_THREADS)
    image = to_model_input(open_image(args.image))  # a bad image stops here, before anything else
    paths = args.model or [c.path for c in artifacts.list_checkpoints(artifacts.pretrained_dir())]
    if not paths:
        raise UsageError("no shipped pretrained models found; pass --model CHECKPOINT")
    models = {}
    for path in paths:
        model, _ = artifacts.load_checkpoint(path)
        name = Path(path).stem
        models[name if name not in models else str(path)] = model
    predictions = predict(models, image.tensor)
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return 0
    if image.inverted:
        print("(light background: inverted to light-on-dark, like FashionMNIST)", file=sys.stderr)
    width = max(len(p.model) for p in predictions)
    for p in predictions:
        runners_up = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[1:3]
        others = ", ".join(f"{name} {prob:.0%}" for name, prob in runners_up)
        print(f"{p.model:<{width}}  {p.top1:<12} {p.confidence:6.1%}   (then {others})")
    return 0


def cmd_reproduce(args) -> int:
    from tqdm import tqdm

    from .reproduce import aggregate, markdown_table, reproduce

    out_dir = Path(args.out) if args.out else artifacts.home_dir() / "reproduce"
    overrides = {"epochs": args.epochs, "train_limit": args.train_limit, "device": args.device}
    bar = {"current": None}

    def on_run_start(name, index, total):
        if bar["current"] is not None:
            bar["current"].close()
        print(f"[{index}/{total}] {name}", file=sys.stderr)
        bar["current"] = tqdm(total=0, desc=name, unit="batch", disable=None, file=sys.stderr)

    def on_step(step):
        current = bar["current"]
        current.total = step.total_steps
        current.update(step.global_step - current.n)

    summaries = reproduce(
        out_dir,
        seeds=args.seeds,
        data_dir=args.data_dir,
        overrides=overrides,
        on_run_start=on_run_start,
        on_step=on_step,
    )
    if bar["current"] is not None:
        bar["current"].close()
    rows = aggregate(summaries)
    (out_dir / "results.json").write_text(
        json.dumps({"runs": [vars(s) for s in summaries], "variants": rows}, indent=2)
    )
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    if args.publish:
        from .report import publish

        written = publish(summaries, rows)
        print(
            f"wrote {written['results']}, {written['figure']} and {len(written['checkpoints'])} "
            f"checkpoints in {artifacts.pretrained_dir()}",
            file=sys.stderr,
        )
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    result = run_bench(
        steps=args.steps, rounds=args.rounds, device=args.device, data_dir=args.data_dir, progress=say
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"training throughput, batch {result['batch_size']}, {result['steps']} steps x "
        f"{result['rounds']} rounds (median), {result['device']}, {result['threads']} threads"
    )
    print(f"  ours (in-memory tensors)             {result['ours_images_per_s']:>9,.0f} images/s")
    print(f"  notebook (torchvision + DataLoader)  {result['notebook_images_per_s']:>9,.0f} images/s")
    print(f"  ratio                                {result['ratio']:>9.2f}x")
    if result["predict_ms"] is not None:
        print(
            f"image -> probabilities of all {result['predict_models']} shipped models: "
            f"{result['predict_ms']:.1f} ms (median)"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lenet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def data_options(p):
        p.add_argument(
            "--data-dir",
            help="folder with the FashionMNIST IDX files "
            "(default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)",
        )
        p.add_argument(
            "--download",
            action="store_true",
            help="let torchvision download FashionMNIST if no local copy is found",
        )

    p = sub.add_parser("train", help="train one variant and save its checkpoint")
    p.add_argument("--variant", required=True, help=f"one of: {', '.join(list_models())}")
    p.add_argument("--epochs", type=int, help="default: the variant's (12; 20 for l2_optimized)")
    p.add_argument("--weight-decay", type=float, help="L2 penalty (Adam weight_decay)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 0.001)")
    p.add_argument("--batch-size", type=int, help="default 64")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--train-limit", type=int, help="train on a random subset of N images")
    p.add_argument("--device", help="auto (default), cpu, cuda or mps")
    p.add_argument("--init-from", type=Path, help="warm start from this checkpoint's weights")
    p.add_argument("--out", help="folder for the checkpoint (default: artifacts/runs)")
    p.add_argument("--name", help="checkpoint file name without extension")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    data_options(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy of a checkpoint (ours or the notebook's .pth)")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--json", action="store_true")
    data_options(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("predict", help="classify an image with saved models (default: the shipped ones)")
    p.add_argument("image", type=Path, help="PNG, JPEG, GIF, WebP or BMP of any size")
    p.add_argument("--model", type=Path, action="append", help="checkpoint to use (repeatable)")
    p.add_argument("--json", action="store_true", help="a list with one object per model")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("reproduce", help="train the notebook's five runs and compare with its table")
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant (default 1)")
    p.add_argument("--out", help="folder for the runs (default: artifacts/reproduce); reruns resume")
    p.add_argument("--epochs", type=int, help="override every run's epochs (quick checks only)")
    p.add_argument("--train-limit", type=int, help="train on a subset (quick checks only)")
    p.add_argument("--device", help="auto (default), cpu, cuda or mps")
    p.add_argument(
        "--publish",
        action="store_true",
        help="ship the seed-0 models in artifacts/pretrained and rewrite RESULTS.md + its figure",
    )
    p.add_argument("--json", action="store_true")
    data_options(p)
    p.set_defaults(handler=cmd_reproduce)

    p = sub.add_parser("runs", help="list the runs in the run store")
    p.add_argument("--json", action="store_true", help="a JSON list of runs")
    p.add_argument("--db", help="run database (default: artifacts/runs.db, or $LENET_HOME/runs.db)")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("worker", help="train queued runs in the background until the queue is empty")
    p.add_argument(
        "--max-running", type=int, default=1, help="runs training at once, all workers (default 1)"
    )
    p.add_argument(
        "--idle-exit", type=float, default=60.0, help="exit after the queue is empty this long (s)"
    )
    p.add_argument("--poll", type=float, default=1.0, help="seconds between queue checks")
    p.add_argument(
        "--threads", type=int, help="torch threads (default: all cores but one, for the dashboard)"
    )
    p.add_argument("--db", help="run database (default: artifacts/runs.db, or $LENET_HOME/runs.db)")
    data_options(p)
    p.set_defaults(handler=cmd_worker)

    for command, handler, text in (
        ("stop", cmd_stop, "stop a running run (keeps its last full epoch)"),
        ("cancel", cmd_cancel, "remove a queued run"),
    ):
        p = sub.add_parser(command, help=text)
        p.add_argument("run_id", type=int)
        p.add_argument("--db", help="run database (default: artifacts/runs.db)")
        p.set_defaults(handler=handler)

    p = sub.add_parser("bench", help="training throughput: our pipeline vs the notebook's")
    p.add_argument("--steps", type=int, default=300, help="batches per round (default 300)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    data_options(p)
    p.set_defaults(handler=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "download", False):
            os.environ[data.ENV_DOWNLOAD] = "1"
        if getattr(args, "seeds", 1) < 1 or getattr(args, "steps", 1) < 1 or getattr(args, "rounds", 1) < 1:
            raise UsageError("--seeds, --steps and --rounds must be at least 1")
        return args.handler(args)
    except (
        UsageError,
        ConfigError,
        UnknownVariantError,
        data.DataError,
        artifacts.CheckpointError,
        RunStateError,
        ImageError,
    ) as e:
        print(f"lenet: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130
