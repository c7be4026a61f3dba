"""One-click sets of runs for a class: every registered variant, on full data or as a quick demo."""

from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig
from .variants import get_variant, list_models


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    overrides: dict
    notebook_only: bool = False  # just the original notebook's five variants

    def configs(self, seed: int = 0, overrides: dict | None = None) -> list[TrainConfig]:
        """One run per variant; `overrides` (not None) replace the preset's own settings."""
        variants = [v for v in list_models() if not self.notebook_only or get_variant(v).notebook]
        settings = {**self.overrides, **{k: v for k, v in (overrides or {}).items() if v is not None}}
        return [TrainConfig.for_variant(v, seed=seed, **settings) for v in variants]


PRESETS = {
    preset.key: preset
    for preset in (
        Preset(
            "quick_demo",
            "Quick class demo",
            "Every variant on 1,000 training images for 40 epochs (validated on the usual 6,000). With "
            "so few images the baseline memorizes them: training accuracy climbs towards 100% while "
            "validation stalls and validation loss turns back up, so what each regularizer does to "
            "that gap is plain to see.",
            {"epochs": 40, "train_limit": 1_000},
        ),
        Preset(
            "notebook",
            "The original notebook's five runs",
            "Baseline, dropout, L2 0.01, L2 0.001 for 20 epochs and batch norm on all 54,000 training "
            "images, as in the course notebook: about 15 minutes on a laptop CPU, 1-2 on a GPU.",
            {},
            notebook_only=True,
        ),
    )
}
