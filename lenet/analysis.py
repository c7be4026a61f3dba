"""What a trained model gets wrong, and what regularization did to its weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    import pandas as pd

from . import CLASSES
from .data import Split
from .models import layer_names


@dataclass(frozen=True)
class Mistake:
    index: int  # position in the split
    true_class: str
    predicted_class: str
    confidence: float  # probability the model gave its (wrong) answer


@torch.inference_mode()
def probabilities(model: nn.Module, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """(N, 10) class probabilities for every image of the split."""
    model.eval()
    return torch.cat(
        [model(split.images[i : i + batch_size]).softmax(dim=1) for i in range(0, len(split), batch_size)]
    )


def mistakes(model: nn.Module, split: Split, limit: int = 24, true_class: int | None = None) -> list[Mistake]:
    """The most confidently wrong predictions first: those are the instructive ones."""
    return confident_mistakes(probabilities(model, split), split.labels, limit, true_class)


def confident_mistakes(
    probs: torch.Tensor, labels: torch.Tensor, limit: int = 24, true_class: int | None = None
) -> list[Mistake]:
    """`mistakes` from a split's (N, 10) class probabilities, already computed."""
    confidence, predicted = probs.max(dim=1)
    wrong = predicted != labels
    if true_class is not None:
        wrong &= labels == true_class
    indices = wrong.nonzero().flatten()
    order = indices[confidence[indices].argsort(descending=True)][:limit]
    return [
        Mistake(int(i), CLASSES[int(labels[i])], CLASSES[int(predicted[i])], float(confidence[i]))
        for i in order
    ]


def _weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(conv1 ... fc3, weights): what weight decay acts on (biases and BatchNorm aside)."""
    modules = dict(model.named_modules())
    return [(name, modules[path].weight.detach()) for path, name in layer_names(model).items()]


def weight_values(model: nn.Module) -> np.ndarray:
    return torch.cat([w.flatten() for _, w in _weights(model)]).numpy()


def weight_report(models: dict[str, tuple[str, nn.Module]]) -> tuple[dict, pd.DataFrame]:
    """For models labelled {label: (variant, model)}: every weight value per model, and each layer's
    norms, as `charts.weight_histograms` and `charts.weight_norm_bars` draw them."""
    import pandas as pd

    values = {label: (variant, weight_values(model)) for label, (variant, model) in models.items()}
    norms = pd.concat(
        [
            layer_norms(model).assign(model=label, variant=variant)
            for label, (variant, model) in models.items()
        ]
    )
    return values, norms


def layer_norms(model: nn.Module) -> pd.DataFrame:
    """L2 norm and mean |w| of each conv/linear layer's weights."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"layer": name, "norm": w.norm().item(), "mean_abs": w.abs().mean().item(), "count": w.numel()}
            for name, w in _weights(model)
        ]
    )
