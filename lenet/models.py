"""LeNet-5 as in the original course notebook (its variants are registered in `variants`).

The layer order reproduces the notebook's `LeNet5V1`, so state_dict keys (`feature.<i>.*`,
`classifier.<i>.*`) match and checkpoints load in both directions.
"""

from __future__ import annotations

import torch
from torch import nn

from .variants import UnknownVariantError, Variant, get_variant, list_models  # noqa: F401 (the API)

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


def create_model(name: str) -> LeNet5:
    variant = get_variant(name)
    return LeNet5(use_dropout=variant.dropout, use_batch_norm=variant.batch_norm)


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
