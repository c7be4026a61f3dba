"""What defines a run and what it reports, without torch: the dashboard's forms, the run store and
the presets use these before (or without) loading the network.

Every hyperparameter is declared once, as a `TrainConfig` field with its `Knob`: label, short label,
help, bounds, and whether it sweeps, is a table column or a CLI flag. Validation, the CLI flags of
`train`, `sweep` and `preset`, the store's and Results' columns, the sweep choices, the legends'
short labels and the Train page's bounds are all read from there."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .variants import DEFAULT_DROPOUT, get_variant, list_models

# Mean cross-entropy over a logging window above this is divergence (chance level is ln 10 = 2.3).
# Adam's bounded steps rarely reach inf/NaN: a huge learning rate shows as an exploding finite loss.
DIVERGED_LOSS = 100.0
SHIFT_PIXELS = 2  # augmentation: random shifts of up to 2 px each way, like a slightly off-centre photo
MAX_STEP_POINTS = 1000  # progress points per run: a smooth live curve, a bounded store
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A hyperparameter is out of range; the message says which and why."""


@dataclass(frozen=True)
class Knob:
    """How one TrainConfig field is named, bounded, shown and varied."""

    label: str  # "Weight decay": a widget's label; lower-cased in error messages
    help: str
    kind: type  # int, float, bool or str
    short: str | None = None  # in legends that tell runs apart ("wd 0.003"); None: never shown there
    low: float | None = None
    high: float | None = None
    above_low: bool = False  # the bound itself is refused (a learning rate of 0)
    below_high: bool = False
    none: str | None = None  # what None means, where None is allowed ("all of them")
    none_short: str = "–"  # the same in a legend ("images all")
    step: float | None = None  # a form's +/- step (whole numbers: 1)
    needs: str | None = None  # a Variant flag without which the field must stay None ("dropout")
    sweepable: bool = False
    column: bool = False  # a column of its own in the run table, Results and the CSV
    # "every": a flag of train, sweep and preset (the same for every run); "train": of train only
    flag: str | None = "every"

    @property
    def noun(self) -> str:
        """The label inside a sentence: "weight decay must be ..."."""
        return self.label[0].lower() + self.label[1:]

    def bounds_text(self) -> str:
        """'from 1 to 200', 'between 0 and 1', 'above 0 and at most 100', ..."""
        low, high = _number(self.low), _number(self.high)
        if self.low is None:
            return ""
        if self.high is None:
            return f"above {low}" if self.above_low else f"of at least {low}"
        if self.kind is int:
            return f"from {low} to {high}"
        if self.above_low and self.below_high:
            return f"strictly between {low} and {high}"
        if self.above_low:
            return f"above {low} and at most {high}"
        return f"between {low} and {high}"

    def labelled_range(self) -> str:
        """A widget's label with its bounds: 'Epochs (1-200)'."""
        if self.low is None or self.high is None:
            return self.label
        if self.above_low:
            return f"{self.label} (up to {_number(self.high)})"
        return f"{self.label} ({_number(self.low)}-{_number(self.high)})"

    def check(self, value) -> str | None:
        """Why `value` is refused, or None."""
        if value is None and self.none is not None:
            return None
        fits = {int: _is_int, float: _is_number, bool: _is_bool, str: _is_text}[self.kind](value)
        in_range = (
            fits
            and self.kind in (int, float)
            and (
                (self.low is None or (value > self.low if self.above_low else value >= self.low))
                and (self.high is None or (value < self.high if self.below_high else value <= self.high))
            )
        )
        if in_range or (fits and self.kind in (bool, str)):
            return None
        what = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}[self.kind]
        if fits and self.kind is float:  # "must be between 0 and 1" says it is a number
            what = ""
        return " ".join(filter(None, [self.noun, "must be", what, self.bounds_text()])) + f", got {value!r}"

    def show(self, value) -> str:
        """A value in a legend or a one-line config: '0.003', 'all', 'on'."""
        return self.none_short if value is None or value != value else _number(value)

    def parse(self, text: str):
        """A value typed on a command line or in a form ('0.001', '1000')."""
        try:
            return self.kind(text.strip())
        except ValueError:
            what = "a whole number" if self.kind is int else "a number"
            raise ConfigError(f"{self.noun} must be {what}, got {text.strip()!r}") from None


def _knob(default, label: str, help: str, kind: type, **facts):
    return field(default=default, metadata={"knob": Knob(label, help, kind, **facts)})


MAX_EPOCHS = 200  # refuses typos (epochs=1000) that would tie up a laptop for days
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; saved with every checkpoint so it can be rebuilt."""

    variant: str = "baseline"  # a registered variant; its own defaults override the ones below
    epochs: int = _knob(
        12,
        "Epochs",
        "passes over the training images",
        int,
        short="epochs",
        low=1,
        high=MAX_EPOCHS,
        sweepable=True,
        column=True,
    )
    lr: float = _knob(
        1e-3,
        "Learning rate",
        "Adam's step size",
        float,
        short="lr",
        low=0,
        above_low=True,
        high=100.0,
        step=0.0005,
        column=True,
    )  # 100 is absurd for Adam, but allowed: watching a run blow up is a lesson too
    weight_decay: float = _knob(
        0.0,
        "Weight decay",
        "L2 penalty: Adam adds this x weight to every gradient (the notebook's L2 used 0.01; 0 is off)",
        float,
        short="wd",
        low=0,
        high=1.0,
        step=0.001,
        sweepable=True,
        column=True,
    )
    batch_size: int = _knob(
        64, "Batch size", "images per training step", int, short="batch", low=1, high=8192, column=True
    )
    seed: int = _knob(
        0,
        "Seed",
        "weight init, shuffling and dropout masks: the same seed and settings give the same run",
        int,
        short="seed",
        low=0,
        high=MAX_SEED,
        column=True,
        flag="train",
    )
    train_limit: int | None = _knob(
        None,
        "Training images",
        "train on a random subset of this many images; a subset trains faster and overfits more",
        int,
        short="images",
        low=1,
        step=1000,
        none="all of them",
        none_short="all",
        sweepable=True,
        column=True,
    )
    val_fraction: float = _knob(
        0.1,
        "Validation share",
        "share of the training file held out for validation",
        float,
        low=0,
        above_low=True,
        high=0.5,
        below_high=True,
        flag=None,
    )
    split_seed: int = _knob(  # fixed, so that every run is validated on the same images
        0,
        "Split seed",
        "which images are held out for validation",
        int,
        low=0,
        high=MAX_SEED,
        flag=None,
    )
    device: str = _knob("auto", "Device", f"one of {', '.join(DEVICES)} (or cuda:N)", str)
    init_from: str | None = _knob(
        None,
        "Warm start",
        "checkpoint whose weights training starts from",
        str,
        none="random weights",
        flag="train",
    )
    dropout: float | None = _knob(
        None,
        "Dropout rate",
        "share of the first fully connected layer's outputs zeroed at each "
        "training step, in variants with a dropout layer",
        float,
        short="dropout",
        low=0,
        high=0.9,
        step=0.1,
        needs="dropout",
        none=f"the layer's own {DEFAULT_DROPOUT:g}",
        none_short=f"{DEFAULT_DROPOUT:g}",
        sweepable=True,
        column=True,
    )  # above 0.9 too few units are left to learn anything
    patience: int | None = _knob(
        None,
        "Early-stopping patience",
        "stop once validation loss has not improved for this many epochs, keeping the best epoch's weights",
        int,
        short="patience",
        low=1,
        high=MAX_EPOCHS,
        none="train every epoch, keep the last",
        none_short="off",
        sweepable=True,
        column=True,
    )
    label_smoothing: float = _knob(
        0.0,
        "Label smoothing",
        "share of each training target spread evenly over all ten classes, so that the model is "
        "never pushed towards 100% confidence (0 is off)",
        float,
        short="smoothing",
        low=0,
        high=0.5,
        step=0.05,
        sweepable=True,
        column=True,
    )
    augment: bool = _knob(
        False,
        "Augmentation",
        f"random {SHIFT_PIXELS}-px shifts and horizontal flips of every training batch",
        bool,
        short="augment",
        column=True,
    )

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
        for name, knob in KNOBS.items():
            problem = knob.check(getattr(self, name))
            if problem:
                raise ConfigError(problem)
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name, knob in KNOBS.items():
            if getattr(self, name) is not None and not applies(name, self.variant):
                having = [v for v in list_models() if getattr(get_variant(v), knob.needs)]
                raise ConfigError(
                    f"variant {self.variant!r} has no {knob.needs} layer; a {knob.noun} needs "
                    f"--variant {' or '.join(having)}"
                )
        return self


def applies(name: str, variant: str) -> bool:
    """Whether the field means something for this variant (a dropout rate needs a dropout layer)."""
    needs = KNOBS[name].needs
    return needs is None or bool(getattr(get_variant(variant), needs))


# Every declared hyperparameter, in declaration order, and the derived sets.
KNOBS: dict[str, Knob] = {f.name: f.metadata["knob"] for f in fields(TrainConfig) if "knob" in f.metadata}
SWEEPABLE: tuple[str, ...] = tuple(name for name, knob in KNOBS.items() if knob.sweepable)
CONFIG_COLUMNS: tuple[str, ...] = tuple(name for name, knob in KNOBS.items() if knob.column)
# Legends name only what tells runs apart, most telling first (seed last: the least interesting)
TELLING_APART: tuple[str, ...] = tuple(
    sorted((n for n, k in KNOBS.items() if k.short), key=lambda n: (not KNOBS[n].sweepable, n == "seed"))
)


def default_of(name: str):
    """A field's default, before any variant's own."""
    return next(f.default for f in fields(TrainConfig) if f.name == name)


def default_text(name: str) -> str:
    """'default 12; l2_optimized: 20': the field's default and every variant's own."""
    default = default_of(name)
    text = f"default: {KNOBS[name].none}" if default is None else f"default {_number(default)}"
    own = [
        f"{v}: {_number(get_variant(v).defaults[name])}"
        for v in list_models()
        if name in get_variant(v).defaults
    ]
    return "; ".join([text, *own])


def _number(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) or value is None:
        return value or ""
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _is_text(value) -> bool:
    return isinstance(value, str)


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
