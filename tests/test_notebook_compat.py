"""Checkpoints move both ways between this project and the original notebook's LeNet5V1."""

import json

import pytest
import torch
from torch import nn

from lenet import artifacts
from lenet.cli import main
from lenet.models import create_model, get_variant, list_models


class LeNet5V1(nn.Module):
    """The original notebook's model, as it defined it."""

    def __init__(self, use_dropout=False, use_batch_norm=False):
        super().__init__()
        layers = [nn.Conv2d(1, 6, kernel_size=5, padding=2)]
        if use_batch_norm:
            layers.append(nn.BatchNorm2d(6))
        layers += [nn.Tanh(), nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(6, 16, kernel_size=5)]
        if use_batch_norm:
            layers.append(nn.BatchNorm2d(16))
        layers += [nn.Tanh(), nn.AvgPool2d(kernel_size=2, stride=2)]
        self.feature = nn.Sequential(*layers)
        classifier = [nn.Flatten(), nn.Linear(16 * 5 * 5, 120)]
        if use_dropout:
            classifier.append(nn.Dropout(0.5))
        classifier += [nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10)]
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x):
        return self.classifier(self.feature(x))


NOTEBOOK_KWARGS = {
    "baseline": {},
    "l2": {},
    "l2_optimized": {},
    "dropout": {"use_dropout": True},
    "batch_norm": {"use_batch_norm": True},
}


def _randomized_notebook_model(kwargs, seed=0):
    torch.manual_seed(seed)
    model = LeNet5V1(**kwargs)
    for module in model.modules():  # non-trivial BatchNorm statistics too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("variant", NOTEBOOK_KWARGS)
def test_same_state_dict_keys_shapes_and_outputs(variant):
    notebook = _randomized_notebook_model(NOTEBOOK_KWARGS[variant])
    ours = create_model(variant)
    assert list(ours.state_dict()) == list(notebook.state_dict())
    ours.load_state_dict(notebook.state_dict())
    ours.eval()
    x = torch.randn(5, 1, 28, 28)
    # the same function to float tolerance; ours is computed another way (see models.FoldedLeNet5)
    torch.testing.assert_close(ours(x), notebook(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["baseline", "dropout", "batch_norm"])
def test_notebook_pth_loads_with_inferred_variant(tmp_path, variant):
    notebook = _randomized_notebook_model(NOTEBOOK_KWARGS[variant])
    path = tmp_path / "homework.pth"
    torch.save(notebook.state_dict(), path)
    model, metadata = artifacts.load_checkpoint(path)
    assert metadata == {"variant": variant, "inferred": True}
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model(x), notebook(x), rtol=1e-5, atol=1e-6)


def _notebook_layout(variant: str) -> LeNet5V1:
    """The notebook's model with the layers the variant has (every variant is one of its layouts)."""
    facts = get_variant(variant)
    return LeNet5V1(use_dropout=facts.dropout, use_batch_norm=facts.batch_norm)


@pytest.mark.parametrize("variant", list_models())
def test_our_checkpoint_loads_into_the_notebook_model(tmp_path, variant):
    torch.manual_seed(1)
    ours = create_model(variant).eval()
    path = artifacts.save_checkpoint(ours, {"variant": variant}, tmp_path / "ours.pth")
    notebook = _notebook_layout(variant).eval()
    notebook.load_state_dict(torch.load(path, weights_only=True))  # strict: every key matches
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(notebook(x), ours(x), rtol=1e-5, atol=1e-6)


def test_a_label_smoothing_run_from_the_cli_loads_into_the_notebook_model(capsys, idx_dir, workspace):
    code = main(
        ["train", "--variant", "label_smoothing", "--epochs", "1", "--train-limit", "400"]
        + ["--data-dir", str(idx_dir), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["config"]["label_smoothing"] == 0.1
    notebook = _notebook_layout("label_smoothing").eval()
    notebook.load_state_dict(torch.load(report["checkpoint"], weights_only=True))
    ours, _ = artifacts.load_checkpoint(report["checkpoint"])
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(notebook(x), ours(x), rtol=1e-5, atol=1e-6)
