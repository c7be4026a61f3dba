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
from contextlib import contextmanager
from pathlib import Path

# Only modules without torch here: `preset`, `sweep`, `runs` and the rest of the queue's commands
# queue their runs and start the workers ~2 s sooner (0.3 s instead of 2.2 s after launch). The
# commands that train or load a network import what they need.
from . import CLASSES, catalog, rounds, tables
from .config import KNOBS, SWEEPABLE, ConfigError, TrainConfig, default_text
from .errors import DataError, ImageError, ReproduceError
from .records import Run, RunStatus, runs_frame
from .store import RunStateError
from .variants import UnknownVariantError, list_models
from .worker import STANDBY_S
from .workspace import Workspace

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


def cmd_train(args, workspace: Workspace) -> int:
    from . import artifacts
    from .models import create_model
    from .runs import execute_run
    from .train import make_run_splits

    init_from = Path(args.init_from).resolve() if args.init_from else None
    config = TrainConfig.for_variant(
        args.variant, **_config_overrides(args, "train"), init_from=init_from and str(init_from)
    )
    if init_from:  # refuse an unusable warm start before anything is recorded
        model, _ = artifacts.load_checkpoint(init_from)
        artifacts.check_compatible(model.state_dict(), create_model(config.variant), str(init_from))
    splits = make_run_splits(config, workspace.load_raw(args.data_dir))
    if not args.json:
        print(
            f"training {config.variant} on {len(splits.train):,} images "
            f"(validation {len(splits.val):,}), {config.epochs} epochs, batch {config.batch_size}, "
            f"lr {config.lr:g}, weight decay {config.weight_decay:g}",
            file=sys.stderr,
        )
    # Recorded in the run store like every run, so the dashboard shows this one live.
    store = workspace.store
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    run_id = store.start_direct_run(config, args.name, data_dir)
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
        workspace,
        run_id,
        splits=splits,
        on_step=on_step,
        on_epoch=on_epoch,
        extra_stop=_stop_on_ctrl_c(),
    )
    bar.close()
    checkpoint = store.get_run(run_id).checkpoint
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


def cmd_runs(args, workspace: Workspace) -> int:
    runs = runs_frame(workspace.store.list_runs())
    if args.json:
        print(runs.to_json(orient="records", indent=2))
        return 0
    if runs.empty:
        print("no runs yet: python -m lenet train --variant baseline")
        return 0
    table = tables.run_table(runs, every_setting=False)
    for column in tables.NUMBER_COLUMNS:  # a missing value (not finished yet) as blank
        table[column] = table[column].map(lambda v: "" if v is None or v != v else f"{v:.1f}")
    print(table.to_string(index=False))
    return 0


def cmd_worker(args, workspace: Workspace) -> int:
    from .worker import PoolSettings, run_worker

    if args.idle_exit < 0:
        raise UsageError("--idle-exit must be at least 0")
    try:
        pool = PoolSettings.from_env()
    except ValueError as e:
        raise UsageError(str(e)) from None
    done = run_worker(
        workspace, pool=pool, idle_exit_s=args.idle_exit, poll_s=args.poll, standby=args.standby
    )
    print(f"worker {os.getpid()}: queue empty, exiting after {done} run(s)", file=sys.stderr)
    return 0


def cmd_dispatch(args, workspace: Workspace) -> int:
    from .worker import ray_address

    address = args.address or ray_address()
    if not address:
        raise UsageError("no cluster: pass --address host:port or set $LENET_RAY_ADDRESS")
    try:
        from .cluster import run_dispatcher
    except ImportError:
        raise UsageError("Ray is not installed here: run `make ray` (requirements-ray.txt)") from None
    done = run_dispatcher(workspace, address, idle_exit_s=args.idle_exit)
    print(f"dispatcher {os.getpid()}: queue empty, exiting after {done} run(s)", file=sys.stderr)
    return 0


def cmd_stop(args, workspace: Workspace) -> int:
    workspace.store.request_stop(args.run_id)
    print(f"stop requested for run {args.run_id}")
    return 0


def cmd_cancel(args, workspace: Workspace) -> int:
    workspace.store.cancel(args.run_id)
    print(f"run {args.run_id} removed from the queue")
    return 0


def _by_class(values: list[float]) -> dict[str, float]:
    return dict(zip(CLASSES, values, strict=True))


def cmd_evaluate(args, workspace: Workspace) -> int:
    from . import artifacts
    from .train import evaluate

    model, metadata = artifacts.load_checkpoint(args.checkpoint)
    test = workspace.load_test(args.data_dir).split
    metrics = evaluate(model, test)
    mirrored = evaluate(model, test.mirrored()).accuracy
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "variant": metadata["variant"],
                    "variant_inferred": bool(metadata.get("inferred")),
                    "test_accuracy": metrics.accuracy,
                    "test_loss": metrics.loss,
                    "mirrored_test_accuracy": mirrored,
                    "per_class_accuracy": _by_class(metrics.per_class_accuracy),
                    "confusion_matrix": metrics.confusion_matrix,
                },
                indent=2,
            )
        )
        return 0
    inferred = " (inferred from its layers)" if metadata.get("inferred") else ""
    print(f"{args.checkpoint}: variant {metadata['variant']}{inferred}")
    print(f"test accuracy {_percent(metrics.accuracy)} over {len(test):,} images, loss {metrics.loss:.4f}")
    print(f"on the same images mirrored left-right: {_percent(mirrored)}")
    for name, value in _by_class(metrics.per_class_accuracy).items():
        print(f"  {name:<12} {_percent(value):>7}")
    return 0


def cmd_predict(args, workspace: Workspace) -> int:
    import torch

    from . import artifacts
    from .predict import INFERENCE_THREADS, open_image, predict, to_model_input

    torch.set_num_threads(INFERENCE_THREADS)
    image = to_model_input(open_image(args.image))  # a bad image stops here, before anything else
    paths = args.model or [c.path for c in artifacts.list_checkpoints(workspace.pretrained_dir)]
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


@contextmanager
def _runs_progress():
    """A progress bar over a set of runs trained by the worker pool: yields its on_progress."""
    from tqdm import tqdm

    bar = tqdm(total=0, disable=None, file=sys.stderr, bar_format="{l_bar}{bar}| {n:.1f}/{total} runs")

    def on_progress(runs: list[Run]) -> None:
        running = [r.name for r in runs if r.status == RunStatus.RUNNING]
        queued = sum(r.status == RunStatus.QUEUED for r in runs)
        bar.total = len(runs)
        bar.n = sum(r.progress for r in runs)
        bar.set_description(f"training {', '.join(running) or '-'}; {queued} queued", refresh=True)

    try:
        yield on_progress
    finally:
        bar.close()


def _resolved(data_dir: str | None) -> str | None:
    return str(Path(data_dir).resolve()) if data_dir else None


def cmd_reproduce(args, workspace: Workspace) -> int:
    from .reproduce import aggregate, markdown_table, reproduce

    overrides = {"epochs": args.epochs, "train_limit": args.train_limit, "device": args.device}
    with _runs_progress() as on_progress:
        summaries = reproduce(
            workspace,
            args.seeds,
            data_dir=_resolved(args.data_dir),
            overrides=overrides,
            on_progress=on_progress,
        )
    rows = aggregate(summaries)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    if args.publish:
        from .report import publish

        written = publish(summaries, rows)
        print(
            f"wrote {written['results']}, {written['figure']} and {len(written['checkpoints'])} "
            f"checkpoints in {workspace.pretrained_dir}",
            file=sys.stderr,
        )
    return 0


def _finish_experiment(workspace: Workspace, experiment_id: int, as_json: bool) -> int:
    """Train an experiment's runs to completion; print its runs as JSON, or a table and findings."""
    from .experiments import run_to_completion, runs_with_history, summary

    experiment = workspace.store.get_experiment(experiment_id)
    print(f"experiment {experiment_id}: {experiment.name} ({experiment.runs} runs)", file=sys.stderr)
    with _runs_progress() as on_progress:
        runs = run_to_completion(workspace, experiment_id, on_progress)
    if as_json:
        print(json.dumps(runs_with_history(workspace.store.read_experiment(experiment_id)), indent=2))
    else:
        rows, sentences = summary(workspace.store.read_experiment(experiment_id))
        print(tables.summary_table(rows, experiment.by).to_string(index=False))
        for sentence in sentences:
            print(f"- {sentence}")
    unfinished = [r for r in runs if r.status != RunStatus.FINISHED]
    for run in unfinished:
        print(f"lenet: run {run.id} {run.name} {run.status}: {run.message}", file=sys.stderr)
    return EXIT_FAILED if unfinished else 0


def cmd_preset(args, workspace: Workspace) -> int:
    from .experiments import launch_preset
    from .presets import PRESETS

    if args.list or not args.name:
        for key, preset in PRESETS.items():
            print(f"{key:<12} {preset.title}: {preset.description}")
        return 0 if args.list else EXIT_USAGE
    experiment_id = launch_preset(
        workspace.store, args.name, args.seeds, _resolved(args.data_dir), _config_overrides(args, "every")
    )
    return _finish_experiment(workspace, experiment_id, args.json)


def cmd_sweep(args, workspace: Workspace) -> int:
    from .experiments import launch_sweep, parse_values

    values = parse_values(args.param, args.values)
    overrides = _config_overrides(args, "every")
    experiment_id = launch_sweep(
        workspace.store, args.variant, args.param, values, args.seeds, overrides, _resolved(args.data_dir)
    )
    return _finish_experiment(workspace, experiment_id, args.json)


def cmd_bench(args, workspace: Workspace) -> int:
    from .bench import pool_bench, run_bench
    from .presets import PRESETS

    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    raw = workspace.load_raw(args.data_dir)
    result = run_bench(
        raw, workspace.pretrained_dir, steps=args.steps, rounds=args.rounds, device=args.device, progress=say
    )
    pools = pool_bench(data_dir=str(raw.source), progress=say) if args.pool else None
    if args.json:
        print(json.dumps({**result, "pool": pools}, indent=2))
        return 0
    print(
        f"training throughput, batch {result['batch_size']}, {result['steps']} steps x "
        f"{result['rounds']} rounds (median), {result['device']}, {result['threads']} threads"
    )
    print(f"  ours (in-memory tensors)             {result['ours_images_per_s']:>9,.0f} images/s")
    print(f"  notebook (torchvision + DataLoader)  {result['notebook_images_per_s']:>9,.0f} images/s")
    print(f"  ratio                                {result['ratio']:>9.2f}x")
    print(f"per variant, against this machine's sgemm rate ({result['sgemm_gflops']:,.0f} GFLOP/s):")
    for row in result["variants"]:
        print(
            f"  {row['variant']:<15} {row['images_per_s']:>9,.0f} images/s  {row['gflops']:>6.1f} GFLOP/s"
            f"  ({100 * row['share_of_sgemm']:.0f}% of sgemm)"
        )
    if stacked := result["stacked"]:
        together, alone = stacked["together_images_per_s"], stacked["alone_images_per_s"]
        print(
            f"{', '.join(stacked['runs'])} at one thread, trained together: {together:,.0f} images/s "
            f"in all, one after another: {alone:,.0f} ({together / alone:.2f}x)"
        )
    if result["predict_ms"] is not None:
        print(
            f"image -> probabilities of all {result['predict_models']} shipped models: "
            f"{result['predict_ms']:.1f} ms (median)"
        )
    if pools:
        print(f"the {pools['preset']} preset's {len(PRESETS[pools['preset']].configs())} runs, wall time:")
        for row in pools["pools"]:
            print(
                f"  {row['parallel_runs']} run(s) x {row['threads_per_run']} thread(s)"
                f"  {row['seconds']:>6.0f} s"
            )
        default = pools["default"]
        print(
            f"  default on {pools['cores']} cores: {default['parallel_runs']} x {default['threads_per_run']}"
        )
    return 0


def cmd_round(args, workspace: Workspace) -> int:
    from .records import RoundState

    store = workspace.store
    if args.action == "open":
        round_id = rounds.open_round(
            store,
            args.name,
            runs_per_student=args.runs_per_student,
            train_limit=args.train_limit,
            epochs=args.epochs,
            public_images=args.public_images,
        )
        game = store.get_round(round_id)
        if args.json:
            print(json.dumps(_round_dict(game), indent=2))
        else:
            print(
                f"round {game.id} open: {game.name}, {game.runs_per_student} runs per student, "
                f"{game.train_limit:,} images x {game.epochs} epochs, public slice {game.public_images:,}"
            )
        return 0
    game = store.current_round()
    if game is None:
        raise UsageError("no class round yet: python -m lenet round open")
    if args.action in ("close", "reveal"):
        store.advance_round(game.id, RoundState.CLOSED if args.action == "close" else RoundState.REVEALED)
        print(f"round {game.id} {store.get_round(game.id).state}")
        return 0
    if args.action in ("pause", "resume"):
        store.pause_round(game.id, args.action == "pause")
        print(f"round {game.id} {'paused' if args.action == 'pause' else 'resumed'}")
        return 0
    if args.action == "export":
        if not args.csv:
            raise UsageError("round export needs --csv FILE")
        Path(args.csv).write_text(rounds.export_csv(store, game))
        print(f"wrote {args.csv}", file=sys.stderr)
        return 0
    board = rounds.board(store, game)  # status
    if args.json:
        print(json.dumps({**_round_dict(game), "board": [row.to_dict() for row in board]}, indent=2))
        return 0
    print(f"round {game.id} {game.name}: {game.state}{' (paused)' if game.paused else ''}")
    for row in board:
        private = (
            f"  private {_percent(row.private)} (rank {row.private_rank})" if row.private is not None else ""
        )
        public = f"public {_percent(row.best_public)}{' (tied)' if row.tied else ''}"
        print(f"{row.rank:>3} {row.nickname:<20} {row.runs} run(s)  {public}{private}")
    if game.state == RoundState.REVEALED:
        print(rounds.reveal_story(board, game))
    return 0


def _round_dict(game) -> dict:
    return {
        "id": game.id,
        "name": game.name,
        "state": str(game.state),
        "paused": game.paused,
        "runs_per_student": game.runs_per_student,
        "train_limit": game.train_limit,
        "epochs": game.epochs,
        "public_images": game.public_images,
    }


def config_flags(parser: argparse.ArgumentParser, scope: str, prefix: str = "") -> None:
    """One flag per declared hyperparameter of `scope` ("train": all of train's; "every": those a
    sweep or preset sets for every run), its help, bounds and defaults from the declaration."""
    for name, knob in KNOBS.items():
        if knob.flag is None or (scope == "every" and knob.flag != "every"):
            continue
        bounds = f"; {knob.bounds_text()}" if knob.bounds_text() else ""
        text = f"{prefix}{knob.help} ({default_text(name)}{bounds})".replace("%", "%%")  # argparse
        flag = "--" + name.replace("_", "-")
        if knob.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=name, type=_typed(knob), help=text, metavar=name.upper())


def _typed(knob):
    def parse(text: str):
        try:
            return knob.parse(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = knob.kind.__name__  # argparse names the type in its message
    return parse


def _config_overrides(args, scope: str) -> dict:
    """The hyperparameters given on the command line (None: not given), by the declared names."""
    return {
        name: getattr(args, name)
        for name, knob in KNOBS.items()
        if knob.flag == "every" or (scope == "train" and knob.flag == "train")
        if name != "init_from"
    }


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
    config_flags(p, "train")
    p.add_argument("--name", help="the run's name (default: <variant>-s<seed>)")
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

    p = sub.add_parser(
        "reproduce", help="train every variant on full data and compare with the notebook's table"
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant (default 1); reruns resume")
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

    p = sub.add_parser("preset", help="train a preset (e.g. quick_demo) as one experiment, to completion")
    p.add_argument("name", nargs="?", help="the preset's key (see --list)")
    p.add_argument("--list", action="store_true", help="list the presets")
    p.add_argument("--seeds", type=int, default=1, help="repeat every run over seeds 0..K-1 (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON list of runs, each with its history")
    config_flags(p, "every", "every run: ")
    data_options(p)
    p.set_defaults(handler=cmd_preset)

    p = sub.add_parser("sweep", help="vary one hyperparameter of a variant over values, as one experiment")
    p.add_argument("--variant", required=True, help=f"one of: {', '.join(list_models())}")
    p.add_argument("--param", required=True, choices=list(SWEEPABLE))
    p.add_argument("--values", required=True, help="comma-separated, e.g. 0,0.0003,0.001,0.003,0.01")
    p.add_argument("--seeds", type=int, default=1, help="repeat every value over seeds 0..K-1 (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON list of runs, each with its history")
    config_flags(p, "every", "every run (unless swept): ")
    data_options(p)
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("runs", help="list the runs in the run store ($LENET_HOME/runs.db)")
    p.add_argument("--json", action="store_true", help="a JSON list of runs")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser(
        "worker",
        help="train queued runs until the queue is empty (one run at a time, or runs that see the "
        "same batches together; $LENET_PARALLEL_RUNS workers train at once, $LENET_THREADS_PER_RUN "
        "threads each)",
    )
    p.add_argument(
        "--idle-exit", type=float, default=60.0, help="exit after the queue is empty this long (s)"
    )
    p.add_argument("--poll", type=float, default=1.0, help="seconds between queue checks")
    p.add_argument(
        "--standby",
        action="store_true",
        help="warm up first, then wait for work while the process that started this one lives and has "
        f"asked for its pool in the last {STANDBY_S // 60} minutes (the dashboard keeps its pool so)",
    )
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser(
        "dispatch",
        help="train queued runs on a Ray cluster until the queue is empty (started for you when "
        "$LENET_RAY_ADDRESS is set)",
    )
    p.add_argument("--address", help="the cluster's head, host:port (default: $LENET_RAY_ADDRESS)")
    p.add_argument(
        "--idle-exit", type=float, default=60.0, help="exit after the queue is empty this long (s)"
    )
    p.set_defaults(handler=cmd_dispatch)

    for command, handler, text in (
        ("stop", cmd_stop, "stop a running run (keeps its last full epoch)"),
        ("cancel", cmd_cancel, "remove a queued run"),
    ):
        p = sub.add_parser(command, help=text)
        p.add_argument("run_id", type=int)
        p.set_defaults(handler=handler)

    p = sub.add_parser("round", help="a class round: open, status (the board), close, reveal, export")
    p.add_argument("action", choices=["open", "status", "close", "reveal", "pause", "resume", "export"])
    p.add_argument("--name", help="the round's name (open)")
    for flag, default, text in (
        ("--runs-per-student", rounds.RUNS_PER_STUDENT, "runs each student may submit"),
        ("--train-limit", rounds.TRAIN_LIMIT, "training images per run"),
        ("--epochs", rounds.EPOCHS, "epochs per run"),
        ("--public-images", rounds.PUBLIC_IMAGES, "validation images that rank the board"),
    ):
        p.add_argument(flag, type=int, default=default, help=f"{text} (default {default})")
    p.add_argument("--csv", help="export: the file to write")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_round)

    p = sub.add_parser("bench", help="training throughput: our pipeline vs the notebook's")
    p.add_argument("--steps", type=int, default=300, help="batches per round (default 300)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--pool",
        action="store_true",
        help="also time the quick-demo preset trained by 1 run x all cores and by 1 run per core (minutes)",
    )
    p.add_argument("--json", action="store_true")
    data_options(p)
    p.set_defaults(handler=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "download", False):
            from .data import ENV_DOWNLOAD

            os.environ[ENV_DOWNLOAD] = "1"
        if getattr(args, "seeds", 1) < 1 or getattr(args, "steps", 1) < 1 or getattr(args, "rounds", 1) < 1:
            raise UsageError("--seeds, --steps and --rounds must be at least 1")
        return args.handler(args, Workspace.from_env())
    except (
        UsageError,
        ConfigError,
        UnknownVariantError,
        DataError,
        catalog.CheckpointError,
        RunStateError,
        ImageError,
    ) as e:
        print(f"lenet: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ReproduceError as e:
        print(f"lenet: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130
