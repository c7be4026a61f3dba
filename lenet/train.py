"""The training loop: pure, callback-driven, stoppable and device-aware.

`train(config, splits)` returns a `TrainResult`; it writes nothing. Callers (the CLI, the worker)
observe progress through `on_step` / `on_epoch` and stop a run through `should_stop`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import analysis, data
from .config import (  # noqa: F401 (re-exported: the training API)
    DIVERGED_LOSS,
    MAX_STEP_POINTS,
    SHIFT_PIXELS,
    ConfigError,
    EpochMetrics,
    StepMetrics,
    TrainConfig,
    check_train_limit,
)
from .models import LeNet5, _to_blocks, create_model
from .stacked import FoldedStack, StackedLeNet5
from .variants import get_variant


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit choice that is unavailable is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but MPS is not available; use --device cpu")
    return torch.device(name)


def make_run_splits(config: TrainConfig, raw: data.RawDataset) -> data.Splits:
    """The train / validation / test splits this config trains on (its subset size checked first)."""
    check_train_limit(config, len(raw.train_labels))
    return data.make_splits(raw, config.val_fraction, config.split_seed, config.train_limit)


@dataclass(frozen=True)
class EvalMetrics:
    loss: float
    accuracy: float
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    mistakes: list[analysis.Mistake]  # the most confident first (analysis.mistakes)


@dataclass
class TrainResult:
    status: str  # finished | stopped | diverged
    config: TrainConfig
    history: list[EpochMetrics] = field(default_factory=list)
    model: nn.Module | None = None  # eval mode, on cpu; None when no epoch completed
    test: EvalMetrics | None = None
    message: str = ""
    seconds: float = 0.0
    device: str = "cpu"
    kept_epoch: int | None = None  # whose weights the model has: the last, or the best with early stopping
    error: Exception | None = None  # what failed a run of `train_together` (status "failed")

    @property
    def kept(self) -> EpochMetrics | None:
        return self.history[self.kept_epoch - 1] if self.kept_epoch else None

    @property
    def train_accuracy(self) -> float | None:
        return self.kept.train_accuracy if self.kept else None

    @property
    def val_accuracy(self) -> float | None:
        return self.kept.val_accuracy if self.kept else None

    @property
    def test_accuracy(self) -> float | None:
        return self.test.accuracy if self.test else None


# Evaluation batches small enough that a batch's activations stay in a core's cache (~4 MB): 6,000
# validation images went 1.3-2x faster in batches of 250 than of 1,000 (see README, "Throughput").
EVAL_BATCH = 250


@torch.inference_mode()
def _predict_split(
    model: LeNet5, split: data.Split, batch_size: int, blocks: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, logits (N, 10)) over the whole split, in eval mode. `blocks`: on a
    CPU, the split's images already in conv1's block form (`split_blocks`)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predict, inputs = model, split.images.to(device)
    if device.type == "cpu":  # folded once for the whole split
        folded = model.folded()
        predict, inputs = (folded, inputs) if blocks is None else (folded.on_blocks, blocks)
    labels = split.labels.to(device)
    loss_sum = torch.zeros((), device=device)
    outputs = []
    for start in range(0, len(split), batch_size):
        logits = predict(inputs[start : start + batch_size])
        loss_sum += F.cross_entropy(logits, labels[start : start + batch_size], reduction="sum")
        outputs.append(logits)
    model.train(was_training)
    return loss_sum, torch.cat(outputs)


def split_blocks(split: data.Split) -> torch.Tensor:
    """A CPU split's images in the form the folded network reads (`FoldedLeNet5.on_blocks`): made
    once for a split validated every epoch, that saves 3-6% of each validation (README, "Throughput")."""
    return _to_blocks(split.images)


def validate(
    model: LeNet5, split: data.Split, batch_size: int = EVAL_BATCH, blocks: torch.Tensor | None = None
) -> tuple[float, float]:
    """(mean loss, accuracy) over the whole split: what every epoch reports. `blocks`: see
    `split_blocks`."""
    loss_sum, logits = _predict_split(model, split, batch_size, blocks)
    return _scores(loss_sum, logits, split.labels.to(logits.device))


# How many of a stack's models are validated in one pass: oneDNN's fastest (see FoldedStack)
VALIDATION_GROUP = 2


def validate_together(
    models: list[LeNet5], split: data.Split, blocks: torch.Tensor, batch_size: int = EVAL_BATCH
) -> list[tuple[float, float]]:
    """`validate` of each model, on a CPU, as one `FoldedStack` (fastest for `VALIDATION_GROUP`
    models). `blocks`: the split's `split_blocks`, in NHWC (`torch.channels_last`)."""
    stack = FoldedStack(models)
    loss_sums = torch.zeros(len(models))
    outputs = []
    for start in range(0, len(split), batch_size):
        logits = stack.on_blocks(blocks[start : start + batch_size])  # (K, batch, 10)
        labels = split.labels[start : start + batch_size]
        for k, model_logits in enumerate(logits):
            loss_sums[k] += F.cross_entropy(model_logits, labels, reduction="sum")
        outputs.append(logits)
    logits = torch.cat(outputs, dim=1)
    return [_scores(loss, each, split.labels) for loss, each in zip(loss_sums, logits, strict=True)]


def _scores(loss_sum: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean loss, accuracy) of one model's summed loss and logits over the whole split."""
    # Imported here: torchmetrics loads torchvision and all its image metrics (~2 s), which processes
    # that only read or queue runs (the store, `lenet runs`, the dashboard's first paint) never need.
    from torchmetrics.functional.classification import multiclass_accuracy

    preds = logits.argmax(dim=1)
    accuracy = multiclass_accuracy(preds, labels, num_classes=data.NUM_CLASSES, average="micro")
    return loss_sum.item() / len(labels), accuracy.item()


def evaluate(model: LeNet5, split: data.Split, batch_size: int = EVAL_BATCH) -> EvalMetrics:
    """Loss, accuracy, per-class accuracy, confusion matrix and most confident mistakes over the
    whole split, from one pass over it."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

    loss_sum, logits = _predict_split(model, split, batch_size)
    labels, preds = split.labels.to(logits.device), logits.argmax(dim=1)
    scores = {"num_classes": data.NUM_CLASSES}
    return EvalMetrics(
        loss=loss_sum.item() / len(split),
        accuracy=multiclass_accuracy(preds, labels, average="micro", **scores).item(),
        per_class_accuracy=multiclass_accuracy(preds, labels, average=None, **scores).tolist(),
        confusion_matrix=multiclass_confusion_matrix(preds, labels, **scores).tolist(),
        mistakes=analysis.confident_mistakes(logits.softmax(dim=1).cpu(), labels.cpu()),
    )


def default_log_interval(total_steps: int) -> int:
    """Batches between progress reports: every 11 batches for a 12-epoch run, at most
    MAX_STEP_POINTS reports per run however long it is."""
    return max(5, math.ceil(total_steps / MAX_STEP_POINTS))


def build_model(config: TrainConfig) -> nn.Module:
    """The config's variant, with its dropout rate when it sets one (the layers stay the same, so
    checkpoints still load into the notebook's LeNet5V1)."""
    model = create_model(config.variant)
    if config.dropout is not None:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = config.dropout
    return model


def _make_optimizer(params, lr: float, weight_decay: float, device: torch.device):
    # The notebook's optimizer: Adam with L2 as weight_decay (added to the gradient, not AdamW).
    fused = device.type in ("cpu", "cuda")  # one kernel for all parameters instead of a loop
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def warm_up() -> None:
    """Import now what a run's first epoch would (a standby worker's start-up, lenet.worker):
    torchmetrics, which loads torchvision and through it torch._dynamo, and the optimizer, whose
    first parameter group imports torch._dynamo too: 2-3 s of CPU together."""
    from torchmetrics.functional.classification import multiclass_accuracy  # noqa: F401

    _make_optimizer([nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.0, device=torch.device("cpu"))


def _seeded_model(config: TrainConfig, init_state: dict[str, torch.Tensor] | None) -> nn.Module:
    """The run's model, initialized from its seed (or its warm start); leaves the global RNG where
    its dropout masks start."""
    torch.manual_seed(config.seed)  # weight init and dropout masks
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    return model


@dataclass
class TrainTask:
    """One run to train, with the callbacks that watch it (see `train`)."""

    config: TrainConfig
    on_step: Callable[[StepMetrics], None] | None = None
    on_epoch: Callable[[EpochMetrics], None] | None = None
    should_stop: Callable[[], bool] | None = None
    init_state: dict[str, torch.Tensor] | None = None
    on_end: Callable[[TrainResult], None] | None = None  # as soon as the run has ended, test included


def stack_key(config: TrainConfig) -> tuple | None:
    """Runs with the same key see the same batches in the same order and take the same Adam steps,
    so they can train together as one `StackedLeNet5`, batch norm and augmented runs included;
    None: this run trains alone (on a GPU, where one model already fills the device)."""
    if resolve_device(config.device).type != "cpu":
        return None
    return (
        config.seed,
        config.batch_size,
        config.lr,
        config.train_limit,
        config.val_fraction,
        config.split_seed,
    )


class _Alone:
    """One model and its own optimizer: any variant, on any device."""

    def __init__(self, task: TrainTask, device: torch.device):
        config = task.config
        model = _seeded_model(config, task.init_state)
        # NHWC weights make oneDNN pick its faster training convolutions for some variants, not all
        # (see the registry); the values are the same either way. A 1-channel input is already
        # NHWC-contiguous.
        layout = torch.channels_last if get_variant(config.variant).channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=layout).train()  # validate() restores train mode
        self.config = config
        self.optimizer = _make_optimizer(self.model.parameters(), config.lr, config.weight_decay, device)

    def step(
        self, images: torch.Tensor, labels: torch.Tensor, augmented: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train one batch (`augmented`: the same batch augmented, for an augmented run); (logits
        (1, N, 10), loss (1,)), detached."""
        logits = self.model(augmented if self.config.augment else images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logits.detach().unsqueeze(0), loss.detach().unsqueeze(0)

    def eval_model(self, index: int) -> nn.Module:
        return self.model


class _Stacked:
    """Several runs of one `stack_key` as one `StackedLeNet5` under one fused Adam: each model's
    weights, gradients, Adam state and dropout masks are its own, as if it trained alone."""

    def __init__(self, tasks: list[TrainTask], device: torch.device):
        models, rngs = [], []
        for task in tasks:
            models.append(_seeded_model(task.config, task.init_state))
            rngs.append(torch.Generator().set_state(torch.get_rng_state()))  # as nn.Dropout's, alone
        self.configs = [task.config for task in tasks]
        self.device = device
        decays, augmented = [c.weight_decay for c in self.configs], [c.augment for c in self.configs]
        self.stack = StackedLeNet5(models, decays, rngs, augmented)
        self.optimizer = _make_optimizer(self.stack.parameters(), self.configs[0].lr, 0.0, device)

    def step(
        self, images: torch.Tensor, labels: torch.Tensor, augmented: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.stack(images, augmented)  # (K, N, 10)
        losses = torch.stack(
            [
                F.cross_entropy(logits[k], labels, label_smoothing=c.label_smoothing)
                for k, c in enumerate(self.configs)
            ]
        )
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # each model's weights have their own loss's gradient only
        self.stack.add_weight_decay()
        self.optimizer.step()
        return logits.detach(), losses.detach()

    def eval_model(self, index: int) -> nn.Module:
        """Model `index` as a `LeNet5` of its own, for its validation and its kept weights."""
        model = build_model(self.configs[index])
        model.load_state_dict(self.stack.model_state(index))
        return model.to(self.device)

    def keep(self, indices: list[int]) -> None:
        """Go on with these models only, each with its own Adam state."""
        old, old_params = self.stack, dict(self.stack.named_parameters())
        self.stack = old.subset(indices)
        self.configs = [self.configs[i] for i in indices]
        optimizer = _make_optimizer(self.stack.parameters(), self.configs[0].lr, 0.0, self.device)
        for key, new in self.stack.named_parameters():
            state = self.optimizer.state.get(old_params[key])
            if state:
                rows = old.rows(indices, key)
                # in the parameter's memory layout: the fused kernel walks both alike
                optimizer.state[new] = {
                    name: value if name == "step" else torch.empty_like(new).copy_(value[rows])
                    for name, value in state.items()
                }
        self.optimizer = optimizer


RECENT_EPOCHS = 3  # whose pace an ETA extrapolates: a stack that loses a run speeds up


class _Member:
    """One run's bookkeeping in the loop: its metrics, kept weights, end and callbacks."""

    def __init__(self, task: TrainTask, device: torch.device, steps_per_epoch: int, log_every: int | None):
        self.task, self.config = task, task.config
        self.result = TrainResult(status="finished", config=task.config, device=str(device))
        self.kept_state: dict[str, torch.Tensor] | None = None
        self.total_steps = steps_per_epoch * task.config.epochs
        self.log_every = log_every or default_log_interval(self.total_steps)
        self.ended = False
        self.device = device
        self.epoch_marks: list[float] = []  # see _eta_s

    def start_epoch(self) -> None:
        # Every prediction of the epoch, scored once at its end: an accuracy over the whole split
        # without a metric update (~0.2-0.4 ms) in each ~10 ms step.
        if not self.epoch_marks:
            self.epoch_marks.append(time.perf_counter())
        self.epoch_preds, self.epoch_labels = [], []
        self.epoch_loss = torch.zeros((), device=self.device)
        self.window_loss = torch.zeros((), device=self.device)
        self.window_correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.window_count = 0

    def record_batch(self, logits: torch.Tensor, loss: torch.Tensor, labels: torch.Tensor) -> None:
        preds = logits.argmax(dim=1)
        self.epoch_preds.append(preds)
        self.epoch_labels.append(labels)
        # Reported: the plain cross-entropy, comparable with validation's and with other runs'
        # (a smoothed target cannot be met exactly, so its loss never falls near 0).
        if self.config.label_smoothing:
            loss = F.cross_entropy(logits, labels)
        batch_loss = loss * len(labels)
        self.epoch_loss += batch_loss
        self.window_loss += batch_loss
        self.window_correct += (preds == labels).sum()
        self.window_count += len(labels)

    def report_window(self, progress: dict, global_step: int, elapsed: float) -> None:
        """The batches since the last report: diverged, or one StepMetrics for on_step."""
        mean_loss = self.window_loss.item() / self.window_count
        if not math.isfinite(mean_loss) or mean_loss > DIVERGED_LOSS:
            self.end(
                "diverged",
                f"training diverged: loss reached {mean_loss:.4g} at epoch {progress['epoch']}, batch "
                f"{progress['step']} (chance level is 2.3). "
                f"Try a smaller learning rate than {self.config.lr:g}.",
            )
            return
        self.call(
            self.task.on_step,
            StepMetrics(
                **progress,
                global_step=global_step,
                total_steps=self.total_steps,
                loss=mean_loss,
                accuracy=self.window_correct.item() / self.window_count,
                elapsed_s=elapsed,
                eta_s=self._eta_s(global_step, elapsed),
            ),
        )
        self.window_loss.zero_()
        self.window_correct.zero_()
        self.window_count = 0

    def _eta_s(self, global_step: int, elapsed: float) -> float:
        """Seconds left, at the pace of this run's last whole epochs: from one epoch's end to the
        next, validation included, and in a stack the other runs' validation too. The steps' own
        pace leaves validation out, which is two thirds of a quick-demo epoch: that ETA was a third
        short in a stack's first epochs. Before the first epoch has ended it is all there is."""
        marks = self.epoch_marks  # when training started, then when each epoch ended
        if len(marks) < 2:
            return elapsed / global_step * (self.total_steps - global_step)
        recent = min(RECENT_EPOCHS, len(marks) - 1)
        pace = (marks[-1] - marks[-1 - recent]) / recent
        epochs_left = self.config.epochs - (len(marks) - 1)
        return max(0.0, pace * epochs_left - (time.perf_counter() - marks[-1]))

    def end_epoch(self, metrics: EpochMetrics, model: nn.Module) -> None:
        """The epoch's metrics, scored by `model` (the run's weights now)."""
        result = self.result
        result.history.append(metrics)
        self.epoch_marks.append(time.perf_counter())
        # Keep the last epoch, or with early stopping the one of lowest validation loss so far.
        if self.config.patience is None or result.kept is None or metrics.val_loss < result.kept.val_loss:
            result.kept_epoch = metrics.epoch
            self.kept_state = copy.deepcopy(model.state_dict())
        self.call(self.task.on_epoch, metrics)
        if self.ended:
            return
        if self.config.patience is not None and metrics.epoch - result.kept_epoch >= self.config.patience:
            self.end(
                "finished",
                f"early stopping after epoch {metrics.epoch}: validation loss has not improved for "
                f"{self.config.patience} epochs; kept the weights of epoch {result.kept_epoch}, its best",
            )
        elif metrics.epoch == self.config.epochs:
            self.end("finished")

    def call(self, callback: Callable | None, *args) -> None:
        """A callback of this run; its error ends this run (failed), not the others."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as e:
            self.result.error = e
            self.end("failed", f"{type(e).__name__}: {e}")

    def end(self, status: str, message: str = "") -> None:
        self.result.status, self.result.message, self.ended = status, message, True


def train(
    config: TrainConfig,
    splits: data.Splits,
    *,
    on_step: Callable[[StepMetrics], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log_every: int | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train one model. Same config, seed and device give the same metrics.

    `should_stop` is polled between batches; when it returns True the run ends with the weights
    of the last completed epoch. A non-finite loss ends the run as diverged. An error raised by a
    callback is raised again, once training has stopped.
    """
    task = TrainTask(
        config, on_step=on_step, on_epoch=on_epoch, should_stop=should_stop, init_state=init_state
    )
    (result,) = train_together([task], splits, log_every=log_every)
    if result.error is not None:
        raise result.error
    return result


def train_together(
    tasks: list[TrainTask], splits: data.Splits, *, log_every: int | None = None
) -> list[TrainResult]:
    """Train several runs in lockstep: as one `StackedLeNet5` when they share a `stack_key`, or a
    single run alone. Each run gets what it would get alone, to float tolerance (tested): its own
    metrics, kept epoch, stop, early stopping and divergence. A run that ends, or fails in a
    callback (status "failed", `error` set), leaves the others training.
    """
    from torchmetrics.functional.classification import multiclass_accuracy  # see evaluate()

    configs = [task.config.validated() for task in tasks]
    keys = {stack_key(config) for config in configs}
    if len(tasks) > 1 and (None in keys or len(keys) > 1):
        raise ValueError("only runs with one stack_key can train together")
    device = resolve_device(configs[0].device)
    started = time.perf_counter()
    engine = _Stacked(tasks, device) if len(tasks) > 1 else _Alone(tasks[0], device)
    train_split, val_split = splits.train.to(device), splits.val.to(device)
    val_blocks = split_blocks(val_split) if device.type == "cpu" else None  # once, for every epoch
    # a stack's models validated in groups (FoldedStack), on these blocks; a model left over alone on
    # val_blocks, as a run alone
    group_blocks = val_blocks.contiguous(memory_format=torch.channels_last) if len(tasks) > 1 else None
    batch_size = configs[0].batch_size
    steps_per_epoch = math.ceil(len(train_split) / batch_size)
    members = [_Member(task, device, steps_per_epoch, log_every) for task in tasks]
    active = list(members)  # the runs still training, in the engine's order
    shuffle = torch.Generator().manual_seed(configs[0].seed)  # the same batches for all of them
    # the augmented runs' batches: one draw a step while one of them trains, as each would draw alone
    augment = torch.Generator().manual_seed(configs[0].seed + 1) if any(c.augment for c in configs) else None
    global_step = 0

    def settle() -> None:
        """Finish the runs that have ended; the engine goes on with the others."""
        nonlocal active
        if not any(member.ended for member in active):
            return
        still = [i for i, member in enumerate(active) if not member.ended]
        if still:  # (a run alone has none left)
            engine.keep(still)
        for member in active:
            if member.ended:
                _finish(member, splits, started)
        active = [active[i] for i in still]

    for epoch in range(1, max(config.epochs for config in configs) + 1):
        epoch_started = time.perf_counter()
        for member in active:
            member.start_epoch()
        for step, (images, labels) in enumerate(
            data.iterate_batches(train_split, batch_size, shuffle), start=1
        ):
            for member in active:
                if member.task.should_stop is not None and member.task.should_stop():
                    kept = member.result.kept_epoch or 0
                    member.end(
                        "stopped", f"stopped during epoch {epoch}; kept the weights after epoch {kept}"
                    )
            settle()
            if not active:
                break
            augmented = None  # training batches only: validation and test stay as they are
            if augment is not None and any(member.config.augment for member in active):
                augmented = data.augment_batch(images, augment, SHIFT_PIXELS)
            logits, losses = engine.step(images, labels, augmented)
            global_step += 1
            for member, member_logits, loss in zip(active, logits, losses, strict=True):
                member.record_batch(member_logits, loss, labels)
                if step % member.log_every == 0 or step == steps_per_epoch:
                    progress = {"epoch": epoch, "step": step, "steps_per_epoch": steps_per_epoch}
                    member.report_window(progress, global_step, time.perf_counter() - started)
            settle()
        if not active:
            break
        for first in range(0, len(active), VALIDATION_GROUP):
            group = range(first, min(first + VALIDATION_GROUP, len(active)))
            models = [engine.eval_model(index) for index in group]
            if len(models) == 1:
                scores = [validate(models[0], val_split, blocks=val_blocks)]
            else:
                scores = validate_together(models, val_split, group_blocks)
            for index, model, (val_loss, val_accuracy) in zip(group, models, scores, strict=True):
                member = active[index]
                train_preds, train_labels = torch.cat(member.epoch_preds), torch.cat(member.epoch_labels)
                metrics = EpochMetrics(
                    epoch=epoch,
                    train_loss=member.epoch_loss.item() / len(train_split),
                    train_accuracy=multiclass_accuracy(
                        train_preds, train_labels, num_classes=data.NUM_CLASSES, average="micro"
                    ).item(),
                    val_loss=val_loss,
                    val_accuracy=val_accuracy,
                    seconds=time.perf_counter() - epoch_started,
                )
                member.end_epoch(metrics, model)
        settle()
    return [member.result for member in members]


def _finish(member: _Member, splits: data.Splits, started: float) -> None:
    """An ended run's final model (its kept epoch) and its one look at the test set."""
    result = member.result
    if member.kept_state is not None and result.status not in ("diverged", "failed"):
        model = build_model(member.config)
        model.load_state_dict(member.kept_state)
        # The test set is touched once, here, after every choice has been made.
        result.test = evaluate(model.to(member.device), splits.test)
        result.model = model.to("cpu").eval()
    result.seconds = time.perf_counter() - started
    member.call(member.task.on_end, result)
