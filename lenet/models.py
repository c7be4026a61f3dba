"""LeNet-5 as in the original course notebook, and the registry of its regularization variants.

The layer order reproduces the notebook's `LeNet5V1`, so state_dict keys (`feature.<i>.*`,
`classifier.<i>.*`) match and checkpoints load in both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

NUM_CLASSES = 10


class LeNet5(nn.Module):
    """LeNet-5 for 1x28x28 inputs: two tanh conv blocks with average pooling, then 400-120-84-10."""

    def __init__(self, use_dropout: bool = False, use_batch_norm: bool = False) -> None:
        super().__init__()
        self.use_dropout = use_dropout
        self.use_batch_norm = use_batch_norm
        # (N,1,28,28) -> conv pad 2 -> (N,6,28,28) -> pool -> (N,6,14,14)
        #              -> conv -> (N,16,10,10) -> pool -> (N,16,5,5)
        self.feature = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),
            *([nn.BatchNorm2d(6)] if use_batch_norm else []),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            *([nn.BatchNorm2d(16)] if use_batch_norm else []),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        # (N,16,5,5) -> (N,400) -> 120 -> 84 -> 10 logits
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(400, 120),
            *([nn.Dropout(0.5)] if use_dropout else []),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature(x))


@dataclass(frozen=True)
class Variant:
    """A registered regularization variant: every per-variant fact lives here and nowhere else."""

    name: str
    title: str
    summary: str
    color: str  # the same colour on every chart, so a regularizer looks the same everywhere
    build: Callable[[], LeNet5]
    defaults: Mapping[str, float | int] = field(default_factory=dict)  # overrides TrainConfig's
    # Final (train, validation) accuracy the original notebook reported; None for variants it lacked.
    notebook: tuple[float, float] | None = None
    # Test accuracy this variant should reach on full data, or None when it is meant to fall short.
    test_goal: float | None = 0.88
    # oneDNN's NHWC convolutions: measured per variant by `python -m lenet bench`.
    channels_last: bool = True

    @cached_property
    def has_dropout(self) -> bool:
        return any(isinstance(m, nn.Dropout) for m in self.build().modules())

    @cached_property
    def layers(self) -> dict[str, str]:
        """Module path -> human layer name, e.g. {"feature.0": "conv1", "classifier.4": "fc2"}."""
        return layer_names(self.build())


_REGISTRY: dict[str, Variant] = {}


class UnknownVariantError(ValueError):
    pass


def register(name: str, *, title: str, summary: str, color: str, **facts):
    """Decorator registering a model factory as a variant; `facts` fill the other Variant fields."""

    def decorator(build: Callable[[], LeNet5]) -> Callable[[], LeNet5]:
        if name in _REGISTRY:
            raise ValueError(f"variant {name!r} is already registered")
        _REGISTRY[name] = Variant(name, title, summary, color, build, **facts)
        return build

    return decorator


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_variant(name: str) -> Variant:
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(_REGISTRY)
        raise UnknownVariantError(f"unknown variant {name!r}; choose one of: {valid}") from None


def create_model(name: str) -> LeNet5:
    return get_variant(name).build()


def layer_names(model: nn.Module) -> dict[str, str]:
    """Human names of the weight layers, counted by kind: conv1, conv2, fc1, fc2, fc3.

    Dropout and BatchNorm shift the `Sequential` indices, so "classifier.3" is fc2 in one variant
    and a Tanh in another; counting layers of each kind gives names that line up across variants.
    """
    names, counts = {}, {"conv": 0, "fc": 0}
    for path, module in model.named_modules():
        kind = "conv" if isinstance(module, nn.Conv2d) else "fc" if isinstance(module, nn.Linear) else None
        if kind:
            counts[kind] += 1
            names[path] = f"{kind}{counts[kind]}"
    return names


@register(
    "baseline",
    title="Baseline",
    summary="No regularization: the reference every other variant is compared against.",
    color="#4c78a8",
    notebook=(0.932, 0.892),
)
def baseline() -> LeNet5:
    return LeNet5()


@register(
    "dropout",
    title="Dropout",
    summary="Randomly zeroes a share of the first fully connected layer's outputs while training "
    "(half of them by default, as in the notebook), so no unit can rely on another.",
    color="#f58518",
    notebook=(0.889, 0.897),
)
def dropout() -> LeNet5:
    return LeNet5(use_dropout=True)


@register(
    "l2",
    title="L2 (weight decay 0.01)",
    summary="Adds 0.01 x weight to every gradient (Adam's weight decay), pulling weights toward zero.",
    color="#e45756",
    defaults={"weight_decay": 0.01},
    notebook=(0.843, 0.851),
    test_goal=None,  # the notebook's example of too strong a penalty
)
def l2() -> LeNet5:
    return LeNet5()


@register(
    "l2_optimized",
    title="L2 optimized (0.001, 20 epochs)",
    summary="A gentler weight decay of 0.001, trained longer (20 epochs) to make up for it.",
    color="#72b7b2",
    defaults={"weight_decay": 0.001, "epochs": 20},
    notebook=(0.908, 0.887),
)
def l2_optimized() -> LeNet5:
    return LeNet5()


@register(
    "batch_norm",
    title="Batch norm",
    summary="Normalizes each conv layer's outputs over the batch; the batch noise regularizes "
    "and training converges faster.",
    color="#54a24b",
    notebook=(0.945, 0.902),
    test_goal=0.90,
    channels_last=False,  # BatchNorm2d on NHWC took longer than the convolutions saved (bench)
)
def batch_norm() -> LeNet5:
    return LeNet5(use_batch_norm=True)


@register(
    "early_stopping",
    title="Early stopping",
    summary="Watches validation loss after every epoch and stops once it has not improved for 5 "
    "epochs, keeping the weights of the best epoch: the model is taken before it overfits.",
    color="#b279a2",
    defaults={"patience": 5},
)
def early_stopping() -> LeNet5:
    return LeNet5()


@register(
    "augment",
    title="Data augmentation",
    summary="Shows every training image shifted by up to 2 pixels and, half of the time, mirrored: "
    "more varied data, so memorizing the training set stops paying off.",
    color="#9d755d",
    defaults={"augment": True},
)
def augment() -> LeNet5:
    return LeNet5()


def infer_architecture(keys: set[str]) -> str:
    """Guess which variant's layout a bare state_dict has (the notebook saved no metadata).

    BatchNorm running stats -> batch_norm; the second Linear at classifier.4 (Dropout shifts it
    from index 3) -> dropout; otherwise the plain layout, which baseline and both L2 variants share.
    """
    if "feature.1.running_mean" in keys:
        return "batch_norm"
    if "classifier.4.weight" in keys:
        return "dropout"
    return "baseline"
