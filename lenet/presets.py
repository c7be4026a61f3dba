"""One-click sets of runs for a class: every registered variant, on full data or as a quick demo."""

from __future__ import annotations

from dataclasses import dataclass

from .models import list_models
from .train import TrainConfig


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    overrides: dict

    def configs(self, seed: int = 0) -> list[TrainConfig]:
        return [TrainConfig.for_variant(v, seed=seed, **self.overrides) for v in list_models()]


PRESETS = {
    preset.key: preset
    for preset in (
        Preset(
            "quick_demo",
            "Quick class demo",
            "All five variants on 3,000 training images for 15 epochs: about 2-3 minutes in all on a "
            "laptop CPU. With so few images the baseline overfits (training accuracy pulls away from "
            "validation), so what each regularizer does to that gap is easy to see.",
            {"epochs": 15, "train_limit": 3_000},
        ),
        Preset(
            "notebook",
            "The original notebook's five runs",
            "Baseline, dropout, L2 0.01, L2 0.001 for 20 epochs and batch norm on all 54,000 training "
            "images, as in the course notebook: about 15 minutes on a laptop CPU, 1-2 on a GPU.",
            {},
        ),
    )
}
