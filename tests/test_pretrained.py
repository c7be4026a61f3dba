"""The shipped pretrained checkpoints: present, honest about their accuracy, and listed by the app."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lenet import artifacts
from lenet.models import list_models
from lenet.train import evaluate
from lenet.workspace import Workspace

SHIPPED = artifacts.list_checkpoints(Workspace.from_env().pretrained_dir, "pretrained")

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.py"


def test_one_shipped_checkpoint_per_variant():
    assert sorted(c.variant for c in SHIPPED) == sorted(list_models())
    for checkpoint in SHIPPED:
        assert checkpoint.path.stat().st_size < 400_000
        assert 0 < checkpoint.test_accuracy < 1


@pytest.mark.parametrize("checkpoint", SHIPPED, ids=[c.variant for c in SHIPPED])
def test_shipped_accuracy_matches_its_metadata_on_the_real_test_set(checkpoint, real_test):
    model, metadata = artifacts.load_checkpoint(checkpoint.path)
    measured = evaluate(model, real_test.split).accuracy
    assert measured == pytest.approx(metadata["test_accuracy"], abs=0.001)  # within 0.1 point


def test_the_dashboard_lists_the_shipped_models():
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60).run()
    assert not app.exception
    shown = " ".join(str(frame.value.to_string()) for frame in app.dataframe)
    for checkpoint in SHIPPED:
        assert checkpoint.name in shown


def test_the_augmented_model_holds_up_on_mirrored_images_where_the_baseline_does_not(real_test):
    """What augmentation buys: shoes facing right, which the training set never shows."""
    shipped = {c.variant: c for c in SHIPPED}
    mirrored = real_test.split.mirrored()
    accuracy = {
        variant: evaluate(artifacts.load_checkpoint(shipped[variant].path)[0], mirrored).accuracy
        for variant in ("baseline", "augment")
    }
    assert accuracy["augment"] >= accuracy["baseline"] + 0.10
    assert accuracy["augment"] >= 0.85
