"""What defines a run and what it reports, without torch: the dashboard's forms, the run store and
the presets use these before (or without) loading the network."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .variants import get_variant

# Bounds on hyperparameters: wide enough for any classroom experiment, narrow enough to refuse
# typos (epochs=1000) that would tie up a laptop for days.
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 8192
MAX_LR = 100.0  # absurd for Adam, but allowed: watching a run blow up is a lesson too
# Mean cross-entropy over a logging window above this is divergence (chance level is ln 10 = 2.3).
# Adam's bounded steps rarely reach inf/NaN: a huge learning rate shows as an exploding finite loss.
DIVERGED_LOSS = 100.0
MAX_WEIGHT_DECAY = 1.0
MAX_DROPOUT = 0.9  # a higher rate leaves too few units to learn anything
SHIFT_PIXELS = 2  # augmentation: random shifts of up to 2 px each way, like a slightly off-centre photo
MAX_STEP_POINTS = 1000  # progress points per run: a smooth live curve, a bounded store
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A hyperparameter is out of range; the message says which and why."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; saved with every checkpoint so it can be rebuilt."""

    variant: str = "baseline"
    epochs: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 0
    train_limit: int | None = None  # train on a random subset of this many images
    val_fraction: float = 0.1
    split_seed: int = 0  # fixed by default so every run is validated on the same images
    device: str = "auto"
    init_from: str | None = None  # warm start: checkpoint whose weights training starts from
    dropout: float | None = None  # rate of the dropout layer (variants that have one; None: 0.5)
    # Early stopping: end the run when validation loss has not improved for this many epochs,
    # and keep the weights of its best epoch. None: train every epoch, keep the last.
    patience: int | None = None
    augment: bool = False  # random 2-px shifts and horizontal flips of every training batch

    @classmethod
    def for_variant(cls, variant: str, **overrides) -> TrainConfig:
        """The variant's defaults (e.g. l2 -> weight decay 0.01), then any non-None overrides."""
        values = {"variant": variant, **get_variant(variant).defaults}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known}).validated()

    def to_dict(self) -> dict:
        return asdict(self)

    def validated(self) -> TrainConfig:
        """Return self, or raise ConfigError naming the first bad value."""
        get_variant(self.variant)  # raises UnknownVariantError (a ValueError) listing valid names
        checks = [
            (
                _is_int(self.epochs) and 1 <= self.epochs <= MAX_EPOCHS,
                f"epochs must be a whole number from 1 to {MAX_EPOCHS}, got {self.epochs!r}",
            ),
            (
                _is_number(self.lr) and 0 < self.lr <= MAX_LR,
                f"learning rate must be a positive number (at most {MAX_LR:g}), got {self.lr!r}",
            ),
            (
                _is_number(self.weight_decay) and 0 <= self.weight_decay <= MAX_WEIGHT_DECAY,
                f"weight decay must be between 0 and {MAX_WEIGHT_DECAY:g} "
                f"(the notebook's L2 used 0.01), got {self.weight_decay!r}",
            ),
            (
                _is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH_SIZE,
                f"batch size must be a whole number from 1 to {MAX_BATCH_SIZE}, got {self.batch_size!r}",
            ),
            (
                _is_int(self.seed) and 0 <= self.seed < 2**32,
                f"seed must be a whole number from 0 to 2**32-1, got {self.seed!r}",
            ),
            (
                self.train_limit is None or (_is_int(self.train_limit) and self.train_limit >= 1),
                f"training subset size must be a whole number of images >= 1, got {self.train_limit!r}",
            ),
            (
                _is_number(self.val_fraction) and 0 < self.val_fraction < 0.5,
                f"validation fraction must be between 0 and 0.5, got {self.val_fraction!r}",
            ),
            (
                _is_int(self.split_seed) and 0 <= self.split_seed < 2**32,
                f"split seed must be a whole number from 0 to 2**32-1, got {self.split_seed!r}",
            ),
            (
                self.device in DEVICES or str(self.device).startswith("cuda:"),
                f"device must be one of {', '.join(DEVICES)}, got {self.device!r}",
            ),
            (
                self.dropout is None or (_is_number(self.dropout) and 0 <= self.dropout <= MAX_DROPOUT),
                f"dropout rate must be between 0 and {MAX_DROPOUT:g}, got {self.dropout!r}",
            ),
            (
                self.dropout is None or get_variant(self.variant).has_dropout,
                f"variant {self.variant!r} has no dropout layer; a dropout rate needs --variant dropout",
            ),
            (
                self.patience is None or (_is_int(self.patience) and 1 <= self.patience <= MAX_EPOCHS),
                f"early-stopping patience must be a whole number of epochs from 1 to {MAX_EPOCHS}, "
                f"got {self.patience!r}",
            ),
            (isinstance(self.augment, bool), f"augment must be true or false, got {self.augment!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def check_train_limit(config: TrainConfig, dataset_size: int) -> None:
    """Refuse a training subset larger than what the split leaves for training."""
    available = dataset_size - int(round(dataset_size * config.val_fraction))
    if config.train_limit is not None and config.train_limit > available:
        raise ConfigError(
            f"training subset size {config.train_limit} exceeds the {available} training images"
        )


@dataclass(frozen=True)
class StepMetrics:
    """Progress reported every `log_every` batches; loss/accuracy are means over that window."""

    epoch: int  # 1-based
    step: int  # batches done in this epoch
    steps_per_epoch: int
    global_step: int
    total_steps: int
    loss: float
    accuracy: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float  # over every training image seen this epoch, while the weights moved
    val_loss: float
    val_accuracy: float
    seconds: float
