import math
import time

import pytest
import torch

from lenet import analysis, data
from lenet import train as train_module
from lenet.models import UnknownVariantError
from lenet.train import (
    MAX_STEP_POINTS,
    ConfigError,
    TrainConfig,
    build_model,
    default_log_interval,
    evaluate,
    make_run_splits,
    split_blocks,
    train,
    validate,
)


def test_variant_defaults_and_overrides():
    assert TrainConfig.for_variant("l2").weight_decay == 0.01
    c = TrainConfig.for_variant("l2_optimized")
    assert (c.epochs, c.weight_decay, c.lr, c.batch_size) == (20, 0.001, 1e-3, 64)
    assert TrainConfig.for_variant("l2", weight_decay=0.0, epochs=None).weight_decay == 0.0
    assert TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 100_000}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"weight_decay": -0.1}, "weight decay"),
        ({"weight_decay": float("nan")}, "weight decay"),
        ({"lr": 0.0}, "learning rate"),
        ({"lr": 1e9}, "learning rate"),
        ({"batch_size": 0}, "batch size"),
        ({"seed": -1}, "seed"),
        ({"train_limit": 0}, "training images"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_absurd_hyperparameters_are_refused_with_the_reason(overrides, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.for_variant("baseline", **overrides)


def test_unknown_variant_in_config():
    with pytest.raises(UnknownVariantError):
        TrainConfig(variant="vgg").validated()


def test_train_limit_larger_than_the_data(idx_dir):
    with pytest.raises(ConfigError, match="exceeds the 540 training images"):
        make_run_splits(TrainConfig(train_limit=10_000), data.load_raw(idx_dir))


def test_an_evaluation_finds_the_same_mistakes_as_a_pass_of_their_own(small_splits):
    model = build_model(TrainConfig()).eval()  # untrained: wrong about most images
    found = evaluate(model, small_splits.test).mistakes
    assert len(found) == 24 and found == analysis.mistakes(model, small_splits.test)


def test_training_learns_and_reports_progress(small_splits):
    steps, epochs = [], []
    config = TrainConfig(variant="batch_norm", epochs=3, batch_size=32, lr=3e-3)
    result = train(config, small_splits, on_step=steps.append, on_epoch=epochs.append, log_every=5)
    assert result.status == "finished"
    assert [e.epoch for e in result.history] == [1, 2, 3] and epochs == result.history
    assert result.val_accuracy > 0.9  # the synthetic classes are easy
    assert result.test is not None and result.test_accuracy > 0.9
    assert len(result.test.confusion_matrix) == 10 and sum(map(sum, result.test.confusion_matrix)) == 200
    # progress arrives often (every 5 batches and at epoch ends) with a shrinking ETA
    assert len(steps) >= 3 * 3
    assert steps[-1].global_step == steps[-1].total_steps == 3 * math.ceil(540 / 32)
    assert 0 <= steps[-1].eta_s < steps[0].eta_s  # after the last step, only its validation is left
    assert not result.model.training


def test_the_eta_counts_each_epochs_validation_not_only_its_steps(small_splits, monkeypatch):
    """Validation is two thirds of a quick-demo epoch: an ETA from the steps' pace alone, which
    leaves it out, was a third short in the first epochs."""
    validate = train_module.validate

    def slow_validate(*args, **kwargs):
        time.sleep(0.3)
        return validate(*args, **kwargs)

    monkeypatch.setattr(train_module, "validate", slow_validate)
    steps = []
    train(TrainConfig(epochs=4, batch_size=64), small_splits, on_step=steps.append, log_every=2)
    last_of_third = [step for step in steps if step.epoch == 3][-1]
    # left: the third epoch's validation and the whole fourth epoch, 0.6 s of validation alone
    assert last_of_third.eta_s >= 0.5


@pytest.mark.parametrize("variant", ["baseline", "batch_norm"])
def test_validating_on_blocks_made_once_is_validating_the_images(small_splits, variant):
    """Training makes the validation split's conv1 blocks once for all its epochs. With them,
    validation must report what it reports from the images, in batches that do not divide the
    split, and that is the plain layers' loss and accuracy."""
    torch.manual_seed(0)
    model = build_model(TrainConfig(variant=variant))
    split = small_splits.val
    assert len(split) % 7
    from_images = validate(model, split, batch_size=7)
    assert validate(model, split, batch_size=7, blocks=split_blocks(split)) == from_images
    with torch.no_grad():
        logits = model.eval().classifier(model.feature(split.images))
    plain_loss = torch.nn.functional.cross_entropy(logits, split.labels).item()
    assert from_images[0] == pytest.approx(plain_loss, rel=1e-5)
    assert from_images[1] == (logits.argmax(1) == split.labels).float().mean().item()


def test_same_seed_same_metrics(small_splits):
    config = TrainConfig(variant="dropout", epochs=2)
    a, b = train(config, small_splits), train(config, small_splits)
    assert a.history[-1].train_loss == b.history[-1].train_loss
    assert [h.val_accuracy for h in a.history] == [h.val_accuracy for h in b.history]
    c = train(TrainConfig(variant="dropout", epochs=2, seed=1), small_splits)
    assert c.history[-1].train_loss != a.history[-1].train_loss


def test_stop_keeps_the_last_completed_epoch(small_splits):
    steps_per_epoch = math.ceil(540 / 64)
    calls = {"n": 0}

    def stop_in_second_epoch():
        calls["n"] += 1
        return calls["n"] > steps_per_epoch + 2

    stopped = train(TrainConfig(epochs=5), small_splits, should_stop=stop_in_second_epoch)
    assert stopped.status == "stopped" and "epoch 2" in stopped.message
    assert len(stopped.history) == 1
    assert calls["n"] == steps_per_epoch + 3  # checked before every batch: it stopped at once
    one_epoch = train(TrainConfig(epochs=1), small_splits)
    for key, value in one_epoch.model.state_dict().items():
        assert torch.equal(stopped.model.state_dict()[key], value), key
    assert stopped.test_accuracy == one_epoch.test_accuracy


def test_stop_before_any_epoch_leaves_no_model(small_splits):
    result = train(TrainConfig(epochs=2), small_splits, should_stop=lambda: True)
    assert result.status == "stopped" and result.model is None and result.test is None


def test_exploding_learning_rate_ends_as_diverged(small_splits):
    result = train(TrainConfig(epochs=5, lr=100.0), small_splits, log_every=2)
    assert result.status == "diverged"
    assert "diverged" in result.message and "smaller learning rate" in result.message
    assert result.model is None and result.test is None


def test_non_finite_loss_ends_as_diverged(small_splits):
    images = small_splits.train.images.clone()
    images[3] = float("nan")
    poisoned = data.Splits(
        data.Split(images, small_splits.train.labels), small_splits.val, small_splits.test, "x", "x"
    )
    result = train(TrainConfig(epochs=1), poisoned)
    assert result.status == "diverged" and "nan" in result.message


def test_accuracy_is_over_the_whole_split_not_a_mean_of_batches(small_splits):
    torch.manual_seed(0)
    model = train(TrainConfig(epochs=1), small_splits).model
    with torch.no_grad():
        preds = model(small_splits.test.images).argmax(1)
    exact = (preds == small_splits.test.labels).float().mean().item()
    # a batch size that leaves a small last batch, where a mean of batch accuracies would differ
    metrics = evaluate(model, small_splits.test, batch_size=63)
    assert metrics.accuracy == pytest.approx(exact, abs=1e-6)
    per_class = torch.tensor(metrics.confusion_matrix).diag() / torch.tensor(metrics.confusion_matrix).sum(1)
    assert metrics.per_class_accuracy == pytest.approx(per_class.tolist(), abs=1e-6)


def test_warm_start_begins_from_the_given_weights(small_splits):
    first = train(TrainConfig(epochs=2), small_splits)
    warm = train(TrainConfig(epochs=1, lr=1e-9), small_splits, init_state=first.model.state_dict())
    # with a negligible learning rate the weights stay where the warm start put them
    assert warm.val_accuracy == pytest.approx(first.val_accuracy, abs=0.02)
    cold = train(TrainConfig(epochs=1, lr=1e-9), small_splits)
    assert cold.val_accuracy < first.val_accuracy


@pytest.mark.parametrize("total_steps", [10, 395, 10_128, 168_800, 10_800_000])
def test_progress_reports_are_frequent_but_bounded(total_steps):
    interval = default_log_interval(total_steps)
    assert interval >= 5
    assert total_steps / interval <= MAX_STEP_POINTS
    if total_steps <= 20_000:  # a notebook-sized run gets a point every dozen batches or so
        assert interval <= 25


def test_early_stopping_keeps_the_best_epoch_and_says_so(small_splits):
    # half the training labels scrambled: the model first learns the bands, then memorizes the
    # noise, and validation loss turns back up (the overfitting U-curve)
    labels = small_splits.train.labels.clone()
    labels[::2] = labels[::2][torch.randperm(len(labels[::2]), generator=torch.Generator().manual_seed(0))]
    noisy = data.Splits(
        data.Split(small_splits.train.images, labels), small_splits.val, small_splits.test, "x", "x"
    )
    result = train(TrainConfig(epochs=40, lr=0.003, patience=2), noisy)
    losses = [h.val_loss for h in result.history]
    best = losses.index(min(losses)) + 1
    assert result.status == "finished" and result.kept_epoch == best
    assert len(result.history) == best + 2 < 40  # stopped two epochs after its best
    assert "early stopping" in result.message and f"epoch {best}" in result.message
    assert result.val_accuracy == result.history[best - 1].val_accuracy
    # the model holds the best epoch's weights: its validation loss is the best one
    assert evaluate(result.model, noisy.val).loss == pytest.approx(min(losses), rel=1e-5)


def test_without_early_stopping_the_last_epoch_is_kept(small_splits):
    result = train(TrainConfig(epochs=3), small_splits)
    assert result.kept_epoch == 3 and result.val_accuracy == result.history[-1].val_accuracy


def test_dropout_rate_is_a_hyperparameter_of_the_dropout_variant(small_splits):
    from lenet.train import build_model

    model = build_model(TrainConfig.for_variant("dropout", dropout=0.2))
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.2]
    assert [m.p for m in build_model(TrainConfig.for_variant("dropout")).modules() if hasattr(m, "p")] == [
        0.5
    ]
    with pytest.raises(ConfigError, match="no dropout layer"):
        TrainConfig.for_variant("baseline", dropout=0.3)
    with pytest.raises(ConfigError, match="dropout rate must be between 0 and 0.9"):
        TrainConfig.for_variant("dropout", dropout=0.95)
    a = train(TrainConfig.for_variant("dropout", dropout=0.0, epochs=1), small_splits)
    b = train(TrainConfig.for_variant("dropout", dropout=0.9, epochs=1), small_splits)
    assert a.history[0].train_loss != b.history[0].train_loss


def test_augmentation_changes_training_batches_only(small_splits, monkeypatch):
    seen = []
    original = data.augment_batch
    monkeypatch.setattr(data, "augment_batch", lambda *a: seen.append(a[0].shape) or original(*a))
    plain = train(TrainConfig(epochs=1), small_splits)
    augmented = train(TrainConfig(epochs=1, augment=True), small_splits)
    assert len(seen) == math.ceil(540 / 64)  # every training batch, and nothing else
    assert augmented.history[0].train_loss != plain.history[0].train_loss
    again = train(TrainConfig(epochs=1, augment=True), small_splits)
    assert again.history[0].train_loss == augmented.history[0].train_loss  # deterministic under a seed


@pytest.mark.parametrize("variant", ["baseline", "dropout", "batch_norm"])
def test_training_on_blocks_gives_the_metrics_of_the_plain_layers(small_splits, monkeypatch, variant):
    """Training, validation and test run conv1 on 2x2 blocks (batch norm too). Through them or
    through the notebook's plain layers, a run reports the same curves to float tolerance: the
    faster engine tells the same story."""
    from lenet.models import LeNet5

    config = TrainConfig.for_variant(variant, epochs=3, batch_size=16)
    fast = train(config, small_splits)
    monkeypatch.setattr(LeNet5, "forward", lambda self, x: self.classifier(self.feature(x)))
    plain = train(config, small_splits)
    for mine, theirs in zip(fast.history, plain.history, strict=True):
        for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert getattr(mine, name) == pytest.approx(getattr(theirs, name), abs=1e-4), (mine.epoch, name)
    assert fast.test.confusion_matrix == plain.test.confusion_matrix


def test_label_smoothing_reports_the_plain_loss_and_makes_the_model_less_sure(small_splits):
    # Weights that barely move: the reported training loss is the plain cross-entropy, as without
    # smoothing (a smoothed loss would read higher), so the train and validation curves compare.
    still = {s: train(TrainConfig(epochs=1, lr=1e-12, label_smoothing=s), small_splits) for s in (0.0, 0.3)}
    assert still[0.3].history[0].train_loss == pytest.approx(still[0.0].history[0].train_loss, rel=1e-4)

    plain = train(TrainConfig(epochs=8, lr=3e-3), small_splits)
    smoothed = train(TrainConfig.for_variant("label_smoothing", epochs=8, lr=3e-3), small_splits)
    with torch.no_grad():
        sureness = {
            name: torch.softmax(result.model(small_splits.val.images), dim=1).amax(dim=1).mean().item()
            for name, result in (("plain", plain), ("smoothed", smoothed))
        }
    assert sureness["smoothed"] < sureness["plain"] - 0.02
    assert sureness["smoothed"] <= 0.91 + 0.01  # its target for the true class: 0.9 + 0.1/10
