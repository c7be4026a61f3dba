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
from .models import LeNet5, create_model
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
def _predict_split(model: LeNet5, split: data.Split, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, logits (N, 10)) over the whole split, in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predict = model.folded() if device.type == "cpu" else model  # folded once for the whole split
    loss_sum = torch.zeros((), device=device)
    outputs = []
    for images, labels in data.iterate_batches(split.to(device), batch_size):
        logits = predict(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        outputs.append(logits)
    model.train(was_training)
    return loss_sum, torch.cat(outputs)


def validate(model: LeNet5, split: data.Split, batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(mean loss, accuracy) over the whole split: what every epoch reports."""
    # Imported here: torchmetrics loads torchvision and all its image metrics (~2 s), which processes
    # that only read or queue runs (the store, `lenet runs`, the dashboard's first paint) never need.
    from torchmetrics.functional.classification import multiclass_accuracy

    loss_sum, logits = _predict_split(model, split, batch_size)
    labels, preds = split.labels.to(logits.device), logits.argmax(dim=1)
    accuracy = multiclass_accuracy(preds, labels, num_classes=data.NUM_CLASSES, average="micro")
    return loss_sum.item() / len(split), accuracy.item()


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


def _make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device):
    # The notebook's optimizer: Adam with L2 as weight_decay (added to the gradient, not AdamW).
    fused = device.type in ("cpu", "cuda")  # one kernel for all parameters instead of a loop
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)


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
    of the last completed epoch. A non-finite loss ends the run as diverged.
    """
    from torchmetrics.functional.classification import multiclass_accuracy  # see evaluate()

    config.validated()
    device = resolve_device(config.device)
    started = time.perf_counter()
    torch.manual_seed(config.seed)  # weight init and dropout masks
    shuffle = torch.Generator().manual_seed(config.seed)

    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    # NHWC weights make oneDNN pick its faster training convolutions for some variants, not all (see
    # the registry); the values are the same either way. A 1-channel input is already NHWC-contiguous.
    layout = torch.channels_last if get_variant(config.variant).channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout)
    optimizer = _make_optimizer(model, config, device)
    train_split, val_split = splits.train.to(device), splits.val.to(device)

    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if log_every is None:
        log_every = default_log_interval(total_steps)
    result = TrainResult(status="finished", config=config, device=str(device))
    kept_state: dict[str, torch.Tensor] | None = None
    augment = torch.Generator().manual_seed(config.seed + 1) if config.augment else None
    global_step = 0

    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        # Every prediction of the epoch, scored once at its end: an accuracy over the whole split
        # without a metric update (~0.2-0.4 ms) in each ~10 ms step.
        epoch_preds, epoch_labels = [], []
        epoch_loss = torch.zeros((), device=device)
        window_loss = torch.zeros((), device=device)
        window_correct = torch.zeros((), device=device, dtype=torch.long)
        window_count = 0
        for step, (images, labels) in enumerate(
            data.iterate_batches(train_split, config.batch_size, shuffle), start=1
        ):
            if should_stop is not None and should_stop():
                result.status = "stopped"
                result.message = (
                    f"stopped during epoch {epoch}; kept the weights after epoch {result.kept_epoch or 0}"
                )
                break
            if augment is not None:  # training batches only: validation and test stay as they are
                images = data.augment_batch(images, augment, SHIFT_PIXELS)
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            preds = logits.detach().argmax(dim=1)
            epoch_preds.append(preds)
            epoch_labels.append(labels)
            # Reported: the plain cross-entropy, comparable with validation's and with other runs'
            # (a smoothed target cannot be met exactly, so its loss never falls near 0).
            if config.label_smoothing:
                loss = F.cross_entropy(logits.detach(), labels)
            batch_loss = loss.detach() * len(labels)
            epoch_loss += batch_loss
            window_loss += batch_loss
            window_correct += (preds == labels).sum()
            window_count += len(labels)
            global_step += 1
            if step % log_every == 0 or step == steps_per_epoch:
                mean_loss = window_loss.item() / window_count
                if not math.isfinite(mean_loss) or mean_loss > DIVERGED_LOSS:
                    result.status = "diverged"
                    result.message = (
                        f"training diverged: loss reached {mean_loss:.4g} at epoch {epoch}, batch "
                        f"{step} (chance level is 2.3). Try a smaller learning rate than {config.lr:g}."
                    )
                    break
                if on_step is not None:
                    elapsed = time.perf_counter() - started
                    on_step(
                        StepMetrics(
                            epoch=epoch,
                            step=step,
                            steps_per_epoch=steps_per_epoch,
                            global_step=global_step,
                            total_steps=total_steps,
                            loss=mean_loss,
                            accuracy=window_correct.item() / window_count,
                            elapsed_s=elapsed,
                            eta_s=elapsed / global_step * (total_steps - global_step),
                        )
                    )
                window_loss.zero_()
                window_correct.zero_()
                window_count = 0
        if result.status != "finished":
            break

        val_loss, val_accuracy = validate(model, val_split)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=epoch_loss.item() / len(train_split),
            train_accuracy=multiclass_accuracy(
                torch.cat(epoch_preds), torch.cat(epoch_labels), num_classes=data.NUM_CLASSES, average="micro"
            ).item(),
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            seconds=time.perf_counter() - epoch_started,
        )
        result.history.append(metrics)
        # Keep the last epoch, or with early stopping the one of lowest validation loss so far.
        if config.patience is None or result.kept is None or metrics.val_loss < result.kept.val_loss:
            result.kept_epoch = epoch
            kept_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(metrics)
        if config.patience is not None and epoch - result.kept_epoch >= config.patience:
            result.message = (
                f"early stopping after epoch {epoch}: validation loss has not improved for "
                f"{config.patience} epochs; kept the weights of epoch {result.kept_epoch}, its best"
            )
            break

    if kept_state is not None and result.status != "diverged":
        model.load_state_dict(kept_state)
        # The test set is touched once, here, after every choice has been made.
        result.test = evaluate(model, splits.test)
        result.model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    result.seconds = time.perf_counter() - started
    return result
