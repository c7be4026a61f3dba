"""Runs trained together as one stacked network agree with the same runs trained alone."""

import copy
import math
import os
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from lenet import catalog, data
from lenet.models import _to_blocks, create_model
from lenet.records import RunStatus, runs_frame
from lenet.runs import Heartbeat, execute_together
from lenet.stacked import FoldedStack, StackedLeNet5
from lenet.tables import run_table
from lenet.train import TrainConfig, TrainTask, stack_key, train, train_together
from lenet.variants import get_variant, list_models
from lenet.worker import MAX_STACKED, _stack_key
from tests.test_notebook_compat import _notebook_layout

# Stacked kernels sum in another order than a model's own: equal to float tolerance, step by step.
METRIC_TOLERANCE = 1e-4
# Batch norm's too, and more loosely: a convolution's bias before batch norm has no gradient in exact
# arithmetic, so it moves by Adam's normalized float noise (full steps of lr), which the order of
# addition changes; its running mean follows it. The metrics and probabilities agree to 1e-3.
NORMED_TOLERANCE = 1e-3


def assert_same_run(together, alone, images=None):
    """`images`: for batch norm, the kept models' probabilities on them are compared instead of the
    weights (see NORMED_TOLERANCE)."""
    tolerance = METRIC_TOLERANCE if images is None else NORMED_TOLERANCE
    assert together.status == alone.status and together.message == alone.message
    assert together.kept_epoch == alone.kept_epoch
    assert len(together.history) == len(alone.history)
    for mine, theirs in zip(together.history, alone.history, strict=True):
        for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert getattr(mine, name) == pytest.approx(getattr(theirs, name), abs=tolerance), name
    if alone.model is None:
        assert together.model is None and together.test is None
        return
    assert together.test_accuracy == pytest.approx(alone.test_accuracy, abs=tolerance)
    state, reference = together.model.state_dict(), alone.model.state_dict()
    assert state.keys() == reference.keys()
    if images is not None:
        with torch.no_grad():
            mine, theirs = together.model(images).softmax(1), alone.model(images).softmax(1)
        torch.testing.assert_close(mine, theirs, atol=tolerance, rtol=0)
        return
    assert together.test.confusion_matrix == alone.test.confusion_matrix
    for key, value in reference.items():
        torch.testing.assert_close(state[key], value, atol=1e-4, rtol=1e-3, msg=key)


def configs(**overrides):
    """The demo's variants: dropout masks, weight decays, augmented batches and label smoothing of
    their own."""
    names = ("baseline", "dropout", "l2", "augment", "l2_optimized", "label_smoothing")
    return [TrainConfig.for_variant(name, **{"epochs": 3, **overrides}) for name in names]


def test_runs_trained_together_get_what_each_gets_alone(small_splits):
    runs = configs()
    together = train_together([TrainTask(config) for config in runs], small_splits)
    for config, result in zip(runs, together, strict=True):
        assert result.config == config
        assert_same_run(result, train(config, small_splits))


def test_batch_norm_trained_together_gets_what_it_gets_alone(small_splits):
    """Two normed runs, not side by side in the stack, beside an augmented and a plain one."""
    runs = [TrainConfig.for_variant(name, epochs=3) for name in ("batch_norm", "augment", "baseline")]
    runs.insert(2, replace(runs[0], weight_decay=1e-3))
    together = train_together([TrainTask(config) for config in runs], small_splits)
    for config, result in zip(runs, together, strict=True):
        normed = get_variant(config.variant).batch_norm
        assert_same_run(result, train(config, small_splits), small_splits.test.images if normed else None)


def test_batch_norm_in_a_stack_is_its_own_batch_norm_in_float64():
    """Where the order of addition no longer shows, a stacked normed model's logits, every gradient
    and its running statistics are those of its own nn.BatchNorm2d's, after two steps."""
    torch.manual_seed(0)
    models = [create_model(name).double() for name in ("batch_norm", "baseline", "batch_norm")]
    stack = StackedLeNet5(copy.deepcopy(models), [0.0] * 3, [torch.Generator()] * 3, [False] * 3)
    labels = torch.arange(16) % 10
    for _ in range(2):
        images = torch.randn(16, 1, 28, 28, dtype=torch.float64)
        stack.zero_grad()
        logits = stack(images)
        sum(F.cross_entropy(logits[k], labels) for k in range(3)).backward()
        for k, model in enumerate(models):
            model.zero_grad()
            alone = model(images)
            F.cross_entropy(alone, labels).backward()
            torch.testing.assert_close(logits[k], alone, atol=1e-12, rtol=0)
    gradients = stack.subset([0, 1, 2])  # a copy of the stack that holds its gradients as weights
    with torch.no_grad():
        for name, parameter in gradients.named_parameters():
            parameter.copy_(stack.get_parameter(name).grad)
    for k, model in enumerate(models):
        state, stacked_gradients = stack.model_state(k), gradients.model_state(k)
        for key, value in model.state_dict().items():
            if key in dict(model.named_parameters()):
                expected = model.get_parameter(key).grad
                torch.testing.assert_close(stacked_gradients[key], expected, atol=1e-12, rtol=0, msg=key)
            else:  # running statistics and the batches they have seen
                torch.testing.assert_close(state[key], value, atol=1e-12, rtol=0, msg=key)


def test_a_stacks_validation_is_each_models_own_in_float64():
    """FoldedStack, which validates a stack's models two at a time, gives each eval-mode model's
    logits from its plain layers: batch norm's running statistics and dropout (off) included."""
    torch.manual_seed(0)
    models = [create_model(name).double().eval() for name in ("batch_norm", "dropout", "baseline")]
    for module in models[0].modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics of its own, not the initial 0 and 1
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    images = torch.randn(8, 1, 28, 28, dtype=torch.float64)
    for group in (models[:2], models[1:], models):
        blocks = _to_blocks(images).contiguous(memory_format=torch.channels_last)
        logits = FoldedStack(group).on_blocks(blocks)
        with torch.no_grad():
            for k, model in enumerate(group):
                alone = model.classifier(model.feature(images))
                torch.testing.assert_close(logits[k], alone, atol=1e-12, rtol=0)


def test_a_stack_of_three_validates_a_pair_and_one_alone_as_each_alone(small_splits):
    runs = [TrainConfig.for_variant(name, epochs=2) for name in ("dropout", "batch_norm", "baseline")]
    together = train_together([TrainTask(config) for config in runs], small_splits)
    for config, result in zip(runs, together, strict=True):
        normed = get_variant(config.variant).batch_norm
        assert_same_run(result, train(config, small_splits), small_splits.test.images if normed else None)


def test_a_stacked_checkpoint_loads_into_the_notebooks_lenet5v1(small_splits):
    runs = [*configs(epochs=1), TrainConfig.for_variant("batch_norm", epochs=1)]
    for config, result in zip(runs, train_together([TrainTask(c) for c in runs], small_splits), strict=True):
        notebook = _notebook_layout(config.variant)
        notebook.load_state_dict(result.model.state_dict())  # strict: every key, every shape
        notebook.eval()
        images = small_splits.test.images[:50]
        with torch.no_grad():
            torch.testing.assert_close(notebook(images), result.model(images), atol=1e-5, rtol=1e-4)


def test_each_run_reports_its_own_progress(small_splits):
    steps = {name: [] for name in ("baseline", "dropout")}
    epochs = {name: [] for name in steps}
    tasks = [
        TrainTask(
            TrainConfig.for_variant(name, epochs=2), on_step=steps[name].append, on_epoch=epochs[name].append
        )
        for name in steps
    ]
    results = train_together(tasks, small_splits, log_every=3)
    for name, result in zip(steps, results, strict=True):
        assert epochs[name] == result.history and len(result.history) == 2
        assert steps[name][-1].global_step == steps[name][-1].total_steps == 2 * math.ceil(540 / 64)
        assert 0 <= steps[name][-1].eta_s < steps[name][0].eta_s  # left: the last validation
    assert [s.loss for s in steps["baseline"]] != [s.loss for s in steps["dropout"]]


def test_a_stopped_run_keeps_its_last_epoch_and_the_others_train_on(small_splits):
    def stop_in_second_epoch():
        calls = iter(range(10**6))
        return lambda: next(calls) >= math.ceil(540 / 64) + 2

    stopping, going = configs()[:2]
    stopped, finished = train_together(
        [TrainTask(stopping, should_stop=stop_in_second_epoch()), TrainTask(going)], small_splits
    )
    assert stopped.status == "stopped" and "epoch 2" in stopped.message and len(stopped.history) == 1
    assert_same_run(stopped, train(stopping, small_splits, should_stop=stop_in_second_epoch()))
    assert_same_run(finished, train(going, small_splits))


def test_early_stopping_ends_one_run_and_the_others_train_on(small_splits):
    # validation labels one class off: validation loss rises clearly once the model learns
    val = data.Split(small_splits.val.images, (small_splits.val.labels + 1) % 10)
    misleading = data.Splits(small_splits.train, val, small_splits.test, "x", "x")
    patient = TrainConfig.for_variant("early_stopping", epochs=6, patience=2)
    others = [TrainConfig.for_variant(name, epochs=6) for name in ("baseline", "batch_norm", "dropout")]
    results = train_together([TrainTask(c) for c in [patient, *others]], misleading)
    assert "early stopping after epoch 4" in results[0].message and results[0].kept_epoch == 2
    assert [len(r.history) for r in results] == [4, 6, 6, 6]
    for config, result in zip([patient, *others], results, strict=True):
        normed = get_variant(config.variant).batch_norm  # its Adam state moved to the smaller stack
        assert_same_run(result, train(config, misleading), small_splits.test.images if normed else None)


def test_a_diverging_run_ends_as_diverged_and_the_others_train_on(small_splits):
    baseline, dropout = configs()[:2]
    poisoned = train(TrainConfig(epochs=1), small_splits).model.state_dict()
    poisoned["classifier.5.bias"][0] = float("nan")  # fc3: every logit of class 0 is NaN
    diverged, finished = train_together(
        [TrainTask(baseline, init_state=poisoned), TrainTask(dropout)], small_splits, log_every=2
    )
    assert diverged.status == "diverged" and "nan" in diverged.message and diverged.model is None
    assert_same_run(finished, train(dropout, small_splits))


def test_a_run_failing_leaves_the_others_training(small_splits):
    failing, going = configs()[:2]

    def broken_store(metrics):
        if metrics.epoch == 2:
            raise OSError("disk full")

    failed, finished = train_together(
        [TrainTask(failing, on_epoch=broken_store), TrainTask(going)], small_splits
    )
    assert failed.status == "failed" and isinstance(failed.error, OSError) and "disk full" in failed.message
    assert failed.model is None and len(failed.history) == 2
    assert_same_run(finished, train(going, small_splits))


def test_only_runs_that_share_batches_and_steps_train_together():
    base = TrainConfig.for_variant("baseline")
    for partner in ("l2_optimized", "batch_norm", "augment"):  # each normalizes or augments by itself
        assert stack_key(base) == stack_key(TrainConfig.for_variant(partner)) is not None
    for different in ({"seed": 1}, {"lr": 0.01}, {"batch_size": 32}, {"train_limit": 100}):
        assert stack_key(TrainConfig.for_variant("baseline", **different)) != stack_key(base), different
    with pytest.raises(ValueError, match="stack_key"):
        train_together([TrainTask(base), TrainTask(TrainConfig.for_variant("dropout", seed=1))], None)


def test_a_worker_claims_its_share_of_the_runs_that_train_together(workspace, idx_dir):
    store = workspace.store
    names = ("baseline", "dropout", "batch_norm", "l2", "label_smoothing", "early_stopping", "augment")
    ids = {name: store.enqueue(TrainConfig.for_variant(name), data_dir=str(idx_dir)) for name in names}
    alone = store.enqueue(TrainConfig.for_variant("baseline", seed=1), data_dir=str(idx_dir))
    # 8 runs of equal epochs over 2 workers make a share of 4 runs': the first 4 that stack, in
    # queue order, and the run of another seed is left for later
    first = store.claim_together(101, 2, _stack_key, MAX_STACKED)
    assert first == [ids[name] for name in ("baseline", "dropout", "batch_norm", "l2")]
    second = store.claim_together(102, 2, _stack_key, MAX_STACKED)
    assert second == [ids[name] for name in ("label_smoothing", "early_stopping", "augment")]
    assert store.claim_together(103, 2, _stack_key, MAX_STACKED) == []  # 2 workers busy
    assert store.work_left() == 1 + 2  # what shares the cores: 1 queued run and 2 processes
    for run_id in second:
        store.finish(run_id, "finished")
    assert store.claim_together(102, 2, _stack_key, MAX_STACKED) == [alone]  # no partner: alone
    assert all(store.get_run(i).status == RunStatus.RUNNING for i in [*first, alone])


def test_a_worker_claims_the_runs_that_balance_the_pools_epochs(workspace, idx_dir):
    """reproduce's eight runs: 12 epochs each, l2_optimized 20. Stacked 3 and 3, the stack with
    l2_optimized ran on alone while the other core finished its single run and then idled."""
    store = workspace.store
    names = list_models()  # as reproduce queues them
    ids = {name: store.enqueue(TrainConfig.for_variant(name), data_dir=str(idx_dir)) for name in names}
    assert store.get_run(ids["l2_optimized"]).config.epochs > store.get_run(ids["baseline"]).config.epochs
    # 104 epochs to train over 2 workers: 4 runs of 12 (48) come nearest 52; the longest waits
    first = store.claim_together(101, 2, _stack_key, MAX_STACKED)
    assert first == [ids[n] for n in ("baseline", "dropout", "l2", "batch_norm")]
    # 20 + 3 x 12 queued and 48 training: all four (56) come nearer 52 than three (44)
    assert store.claim_together(102, 2, _stack_key, MAX_STACKED) == [
        ids[n] for n in ("l2_optimized", "early_stopping", "augment", "label_smoothing")
    ]


def test_runs_trained_together_are_recorded_each_as_it_ends(workspace, idx_dir):
    store = workspace.store
    runs = [TrainConfig.for_variant(name, epochs=2) for name in ("baseline", "dropout", "l2")]
    ids = [store.enqueue(config, data_dir=str(idx_dir)) for config in runs]
    claimed = store.claim_together(os.getpid(), 1, _stack_key, MAX_STACKED)
    assert claimed == ids
    store.request_stop(ids[1])  # before its first batch: nothing to keep
    with Heartbeat(store, worker_pid=os.getpid()) as heartbeat:
        results = execute_together(workspace, claimed, heartbeat=heartbeat)
    assert [r.status for r in results] == ["finished", "stopped", "finished"]
    recorded = [store.get_run(i) for i in ids]
    assert [r.status for r in recorded] == [RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FINISHED]
    assert recorded[0].checkpoint and recorded[2].checkpoint and recorded[1].checkpoint is None
    assert recorded[0].epochs_completed == 2 and recorded[0].test_accuracy == results[0].test_accuracy
    # a stacked run's time is the stack's: where it trained says so, in the store and the checkpoint
    assert {r.trained_on for r in recorded} == {"local, 3 together"}
    assert catalog.read_metadata(recorded[0].checkpoint)["trained_on"] == "local, 3 together"
    assert "trained on" in run_table(runs_frame(recorded), every_setting=False).columns
    splits = data.make_splits(data.load_raw(idx_dir))
    assert_same_run(results[2], train(runs[2], splits))


def test_a_run_that_cannot_start_fails_alone_and_its_partners_train(workspace, idx_dir, tmp_path):
    store = workspace.store
    wrong = tmp_path / "batch_norm.pth"  # a warm start of another architecture
    torch.save(_notebook_layout("batch_norm").state_dict(), wrong)
    broken = TrainConfig.for_variant("baseline", epochs=1, init_from=str(wrong))
    ids = [store.enqueue(c, data_dir=str(idx_dir)) for c in (broken, TrainConfig.for_variant("l2", epochs=1))]
    claimed = store.claim_together(os.getpid(), 1, _stack_key, MAX_STACKED)
    assert claimed == ids
    with Heartbeat(store, worker_pid=os.getpid()) as heartbeat:
        results = execute_together(workspace, claimed, heartbeat=heartbeat)
    failed, trained = map(store.get_run, ids)
    assert failed.status == RunStatus.FAILED and failed.checkpoint is None and failed.message
    assert trained.status == RunStatus.FINISHED and trained.checkpoint
    assert [r.config.variant for r in results] == ["l2"]
