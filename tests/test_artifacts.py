import json
import os
import pickle
import random

import pytest
import torch

from lenet import artifacts
from lenet.models import create_model


def _saved(tmp_path, variant="dropout", name="run"):
    torch.manual_seed(0)
    model = create_model(variant).eval()
    path = artifacts.save_checkpoint(
        model, {"variant": variant, "test_accuracy": 0.5}, tmp_path / f"{name}.pth"
    )
    return model, path


def test_round_trip_restores_weights_and_metadata(tmp_path):
    model, path = _saved(tmp_path, "batch_norm")
    loaded, metadata = artifacts.load_checkpoint(path)
    assert metadata == {"variant": "batch_norm", "test_accuracy": 0.5}
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.pth"]  # no temp files left


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path):
    _, path = _saved(tmp_path, "baseline")
    torch.manual_seed(5)
    other = create_model("baseline")
    artifacts.save_checkpoint(other, {"variant": "baseline"}, path)
    loaded, _ = artifacts.load_checkpoint(path)
    assert torch.equal(loaded.state_dict()["feature.0.weight"], other.state_dict()["feature.0.weight"])


def test_wrapped_and_dataparallel_state_dicts_load(tmp_path):
    model = create_model("baseline")
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "dp.pth")
    for name in ("wrapped.pth", "dp.pth"):
        loaded, metadata = artifacts.load_checkpoint(tmp_path / name)
        assert metadata["variant"] == "baseline"
        assert torch.equal(
            loaded.state_dict()["classifier.5.weight"], model.state_dict()["classifier.5.weight"]
        )


def test_another_architecture_is_refused(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Linear(784, 10)).state_dict(), tmp_path / "mlp.pth")
    with pytest.raises(
        artifacts.CheckpointError,
        match="not a LeNet-5 checkpoint.*missing classifier.1.bias.*unexpected 0.bias",
    ):
        artifacts.load_checkpoint(tmp_path / "mlp.pth")


def test_wrong_tensor_shape_is_refused(tmp_path):
    state = create_model("baseline").state_dict()
    state["classifier.5.weight"] = torch.zeros(26, 84)  # e.g. trained for 26 letters
    state["classifier.5.bias"] = torch.zeros(26)
    torch.save(state, tmp_path / "letters.pth")
    with pytest.raises(
        artifacts.CheckpointError,
        match=r"classifier.5.weight has shape \(26, 84\), LeNet-5 expects \(10, 84\)",
    ):
        artifacts.load_checkpoint(tmp_path / "letters.pth")


def test_metadata_naming_another_variant_is_checked_against_the_weights(tmp_path):
    _, path = _saved(tmp_path, "baseline")
    path.with_suffix(".json").write_text(json.dumps({"variant": "batch_norm"}))
    with pytest.raises(artifacts.CheckpointError, match="missing feature.1.bias"):
        artifacts.load_checkpoint(path)
    path.with_suffix(".json").write_text(json.dumps({"variant": "alexnet"}))
    with pytest.raises(artifacts.CheckpointError, match="unknown variant 'alexnet'"):
        artifacts.load_checkpoint(path)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "not a PyTorch checkpoint"),
        (b"hello, this is a text file\n", "not a PyTorch checkpoint"),
        (b"\x00" + random.Random(1).randbytes(4096), "not a PyTorch checkpoint"),
        (b"PK\x03\x04" + random.Random(2).randbytes(200), "damaged"),  # looks like a zip, isn't one
        (b"\x80\x02" + random.Random(0).randbytes(200), "refused"),  # a pickle stream, not of tensors
    ],
)
def test_non_checkpoint_files_are_refused(tmp_path, payload, match):
    path = tmp_path / "junk.pth"
    path.write_bytes(payload)
    with pytest.raises(artifacts.CheckpointError, match=match):
        artifacts.load_checkpoint(path)


def test_any_garbage_after_a_pickle_header_is_refused_with_a_message(tmp_path):
    """The unpickler fails on garbage in many ways (IndexError, KeyError, UnicodeDecodeError...);
    every one of them must come out as a CheckpointError, never as a traceback."""
    path = tmp_path / "garbage.pth"
    for seed in range(300):
        path.write_bytes(b"\x80\x02" + random.Random(seed).randbytes(200))
        with pytest.raises(artifacts.CheckpointError, match="refused|damaged"):
            artifacts.load_checkpoint(path)


def test_a_pickled_whole_module_is_refused(tmp_path):
    torch.save(create_model("baseline"), tmp_path / "module.pth")  # torch.save(model): the anti-pattern
    with pytest.raises(artifacts.CheckpointError, match="refused to load.*state_dict"):
        artifacts.load_checkpoint(tmp_path / "module.pth")


class _Hostile:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("via", ["torch.save", "raw pickle"])
def test_hostile_pickle_is_refused_without_running_it(tmp_path, via):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if via == "torch.save":
        torch.save({"feature.0.weight": _Hostile(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Hostile(marker)))
    with pytest.raises(artifacts.CheckpointError):
        artifacts.load_checkpoint(path)
    assert not marker.exists()


def test_a_file_far_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "MAX_CHECKPOINT_BYTES", 1000)
    _, path = _saved(tmp_path)
    with pytest.raises(artifacts.CheckpointError, match="far larger than a LeNet-5 checkpoint"):
        artifacts.load_checkpoint(path)


def test_missing_file_and_bad_metadata(tmp_path):
    with pytest.raises(artifacts.CheckpointError, match="no such file"):
        artifacts.load_checkpoint(tmp_path / "nothing.pth")
    _, path = _saved(tmp_path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(artifacts.CheckpointError, match="not valid JSON"):
        artifacts.load_checkpoint(path)


def test_listing_skips_weights_without_metadata(tmp_path):
    _saved(tmp_path, "baseline", "complete")
    torch.save(create_model("baseline").state_dict(), tmp_path / "half-written.pth")
    (tmp_path / "broken.pth").write_bytes(b"x")
    (tmp_path / "broken.json").write_text("[")
    listed = artifacts.list_checkpoints(tmp_path)
    assert [c.path.name for c in listed] == ["complete.pth"]
    assert listed[0].variant == "baseline" and listed[0].test_accuracy == 0.5


def test_lenet_home_moves_runs(isolated_home):
    from lenet.workspace import Workspace

    workspace = Workspace.from_env()
    assert workspace.home == isolated_home and workspace.runs_dir == isolated_home / "runs"
    assert workspace.store.path == isolated_home / "runs.db"
    assert workspace.pretrained_dir.parts[-2:] == ("artifacts", "pretrained")
    assert workspace.checkpoint_path(7, "my run/../x").name == "0007-my_run_.._x.pth"
