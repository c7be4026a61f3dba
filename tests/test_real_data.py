"""A few tests on the real FashionMNIST (the Debian package dataset-fashion-mnist)."""

import json

import pytest
import torch

from lenet import data
from lenet.cli import main


def test_real_dataset_matches_the_published_facts(real_raw):
    assert real_raw.train_images.shape == (60_000, 28, 28)
    assert real_raw.test_images.shape == (10_000, 28, 28)
    assert torch.bincount(real_raw.train_labels).tolist() == [6000] * 10
    assert torch.bincount(real_raw.test_labels).tolist() == [1000] * 10
    pixels = real_raw.train_images.float() / 255
    assert pixels.mean().item() == pytest.approx(data.MEAN, abs=5e-4)
    assert pixels.std().item() == pytest.approx(data.STD, abs=5e-4)


def test_short_real_run_learns_and_its_checkpoint_evaluates_identically(capsys, real_data_dir):
    code = main(
        [
            "train",
            "--variant",
            "batch_norm",
            "--epochs",
            "2",
            "--train-limit",
            "6000",
            "--data-dir",
            str(real_data_dir),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["val_accuracy"] > 0.80  # 6,000 images, 2 epochs; chance is 0.10
    assert report["history"][1]["val_loss"] < report["history"][0]["val_loss"]

    code = main(["evaluate", report["checkpoint"], "--data-dir", str(real_data_dir), "--json"])
    evaluated = json.loads(capsys.readouterr().out)
    assert code == 0
    assert evaluated["test_accuracy"] == pytest.approx(report["test_accuracy"], abs=1e-6)
    assert evaluated["variant"] == "batch_norm" and not evaluated["variant_inferred"]
