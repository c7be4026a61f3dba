"""The registry of LeNet-5's regularization variants: every per-variant fact, and nothing that needs
torch, so that the dashboard can draw its first page, charts and forms before torch is imported.
The network itself is in `models`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_DROPOUT = 0.5  # the notebook's rate, where a run sets none


@dataclass(frozen=True)
class Variant:
    """A registered regularization variant: every per-variant fact lives here and nowhere else."""

    name: str
    title: str
    summary: str
    color: str  # the same colour on every chart, so a regularizer looks the same everywhere
    dropout: bool = False  # a Dropout layer after the first fully connected layer
    batch_norm: bool = False  # BatchNorm after each convolution
    defaults: Mapping[str, float | int] = field(default_factory=dict)  # overrides TrainConfig's
    # Final (train, validation) accuracy the original notebook reported; None for variants it lacked.
    notebook: tuple[float, float] | None = None
    # Test accuracy this variant should reach on full data, or None when it is meant to fall short.
    test_goal: float | None = 0.88
    # oneDNN's NHWC convolutions for training, measured per variant (README, "Throughput").
    channels_last: bool = True

    # the network itself: models.create_model(name), which imports torch


_REGISTRY: dict[str, Variant] = {}


class UnknownVariantError(ValueError):
    pass


def register(name: str, *, title: str, summary: str, color: str, **facts) -> Variant:
    """Register a variant; `facts` fill the other Variant fields."""
    if name in _REGISTRY:
        raise ValueError(f"variant {name!r} is already registered")
    _REGISTRY[name] = Variant(name, title, summary, color, **facts)
    return _REGISTRY[name]


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_variant(name: str) -> Variant:
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(_REGISTRY)
        raise UnknownVariantError(f"unknown variant {name!r}; choose one of: {valid}") from None


register(
    "baseline",
    title="Baseline",
    summary="No regularization: the reference every other variant is compared against.",
    color="#4c78a8",
    notebook=(0.932, 0.892),
)


register(
    "dropout",
    title="Dropout",
    summary="Randomly zeroes a share of the first fully connected layer's outputs while training "
    f"({DEFAULT_DROPOUT:.0%} by default, as in the notebook), so no unit can rely on another.",
    color="#f58518",
    notebook=(0.889, 0.897),
    dropout=True,
)


register(
    "l2",
    title="L2 (weight decay 0.01)",
    summary="Adds 0.01 x weight to every gradient (Adam's weight decay), pulling weights toward zero.",
    color="#e45756",
    defaults={"weight_decay": 0.01},
    notebook=(0.843, 0.851),
    test_goal=None,  # the notebook's example of too strong a penalty
)


register(
    "l2_optimized",
    title="L2 optimized (0.001, 20 epochs)",
    summary="A gentler weight decay of 0.001, trained longer (20 epochs) to make up for it.",
    color="#72b7b2",
    defaults={"weight_decay": 0.001, "epochs": 20},
    notebook=(0.908, 0.887),
)


register(
    "batch_norm",
    title="Batch norm",
    summary="Normalizes each conv layer's outputs over the batch; the batch noise regularizes "
    "and training converges faster.",
    color="#54a24b",
    notebook=(0.945, 0.902),
    test_goal=0.90,
    channels_last=False,  # BatchNorm2d on NHWC took longer than the convolutions saved
    batch_norm=True,
)


register(
    "early_stopping",
    title="Early stopping",
    summary="Watches validation loss after every epoch and stops once it has not improved for 5 "
    "epochs, keeping the weights of the best epoch: the model is taken before it overfits.",
    color="#b279a2",
    defaults={"patience": 5},
)


register(
    "augment",
    title="Data augmentation",
    summary="Shows every training image shifted by up to 2 pixels and, half of the time, mirrored: "
    "more varied data, so memorizing the training set stops paying off.",
    color="#9d755d",
    defaults={"augment": True},
)


register(
    "label_smoothing",
    title="Label smoothing",
    summary="Trains towards 91% on the true class and 1% on each other one instead of 100%: the "
    "model is never pushed to be certain, so memorizing each training image pays off less.",
    color="#bcbd22",
    defaults={"label_smoothing": 0.1},
)
