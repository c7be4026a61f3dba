import pytest
import torch
import torch.nn.functional as F

from lenet.models import (
    Tanh,
    UnknownVariantError,
    _TanhAvgPool,
    create_model,
    get_variant,
    infer_architecture,
    layer_names,
    list_models,
)
from lenet.variants import register


def test_registry_holds_the_notebooks_five_variants_then_three_more_regularizers():
    assert list_models() == [
        "baseline",
        "dropout",
        "l2",
        "l2_optimized",
        "batch_norm",
        "early_stopping",
        "augment",
        "label_smoothing",
    ]
    assert get_variant("early_stopping").defaults == {"patience": 5}
    assert get_variant("augment").defaults == {"augment": True}
    assert get_variant("label_smoothing").defaults == {"label_smoothing": 0.1}
    assert [n for n in list_models() if get_variant(n).notebook] == list_models()[:5]
    assert get_variant("l2").defaults == {"weight_decay": 0.01}
    assert get_variant("l2_optimized").defaults == {"weight_decay": 0.001, "epochs": 20}


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_finite(name):
    torch.manual_seed(0)
    model = create_model(name)
    logits = model(torch.randn(8, 1, 28, 28))
    assert logits.shape == (8, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(16, 1, 28, 28)), torch.arange(16) % 10)
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", list_models())
def test_variant_has_explanation_for_the_ui(name):
    variant = get_variant(name)
    assert variant.title and len(variant.summary) > 20
    assert variant.color.startswith("#") and len(variant.color) == 7


def test_the_registry_holds_the_notebooks_numbers_and_the_goals():
    assert get_variant("baseline").notebook == (0.932, 0.892)
    assert get_variant("batch_norm").notebook == (0.945, 0.902)
    assert get_variant("baseline").test_goal == 0.88 and get_variant("batch_norm").test_goal == 0.90
    assert get_variant("l2").test_goal is None  # too strong a penalty on purpose
    assert len({get_variant(n).color for n in list_models()}) == len(list_models())


@pytest.mark.parametrize("name", list_models())
def test_layer_names_line_up_across_variants(name):
    layers = layer_names(create_model(name))
    assert list(layers.values()) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    modules = dict(create_model(name).named_modules())
    kinds = [type(modules[path]).__name__ for path in layers]
    assert kinds == ["Conv2d", "Conv2d", "Linear", "Linear", "Linear"]
    assert [tuple(modules[p].weight.shape) for p in layers] == [
        (6, 1, 5, 5),
        (16, 6, 5, 5),
        (120, 400),
        (84, 120),
        (10, 84),
    ]


def test_layer_names_follow_the_shifted_indices():
    assert layer_names(create_model("baseline"))["classifier.3"] == "fc2"
    assert layer_names(create_model("dropout"))["classifier.4"] == "fc2"
    assert layer_names(create_model("baseline"))["feature.3"] == "conv2"
    assert layer_names(create_model("batch_norm"))["feature.4"] == "conv2"


def test_regularizers_change_the_layers():
    assert not any(isinstance(m, torch.nn.Dropout) for m in create_model("baseline").modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in create_model("dropout").modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in create_model("batch_norm").modules()) == 2


def test_unknown_variant_lists_the_valid_names():
    with pytest.raises(UnknownVariantError, match="choose one of: baseline, dropout, l2"):
        create_model("resnet")


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        register("baseline", title="x", summary="y", color="#000000")


def test_the_registry_and_the_configs_load_without_torch():
    """The dashboard's first page draws before torch is imported: nothing on its path needs it."""
    import subprocess
    import sys

    code = (
        "import sys; import lenet.variants, lenet.config, lenet.store, lenet.workspace, lenet.presets, "
        "lenet.experiments, lenet.charts, lenet.catalog; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_queuing_runs_and_starting_workers_never_import_torch_or_pandas(tmp_path):
    """`preset`, `sweep`, `reproduce` and the dashboard queue runs and start the workers before any
    torch import (~2 s, on the cores the workers start on): the CLI's queue commands and the pool's
    management run without it, and without pandas (0.3 s), which a worker's training and `preset
    --json`'s last lines never need either; `runs` prints a table, with pandas but still no torch."""
    import os
    import subprocess
    import sys

    loaded = "print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    code = (
        "import sys; from lenet.cli import main; from lenet.worker import ensure_workers, wait_for_runs; "
        "from lenet.reproduce import reproduce, aggregate, markdown_table; "
        "from lenet.experiments import launch_preset, runs_with_history; "
        "from lenet.workspace import Workspace; "
        "store = Workspace.from_env().store; queued = launch_preset(store, 'quick_demo', 1, None, {}); "
        # what `preset --json` prints once its runs have ended
        "runs_with_history(store.read_experiment(queued)); "
        f"main(['preset', '--list']); {loaded}; main(['runs']); {loaded}"
    )
    env = {**os.environ, "LENET_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().splitlines()[-1] == "['pandas']"
    assert "quick_demo" in result.stdout and "[]" in result.stdout.splitlines()

    code = f"import sys; import lenet.worker, lenet.runs, lenet.train, lenet.stacked; {loaded}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "['torch']"


def test_every_variants_facts_match_the_network_it_builds():
    for name in list_models():
        modules = list(create_model(name).modules())
        variant = get_variant(name)
        assert variant.dropout == any(isinstance(m, torch.nn.Dropout) for m in modules)
        assert variant.batch_norm == any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)


@pytest.mark.parametrize("name", list_models())
def test_architecture_is_inferred_from_state_dict_keys(name):
    keys = set(create_model(name).state_dict())
    inferred = infer_architecture(keys)
    assert set(create_model(inferred).state_dict()) == keys
    assert list_models().index(inferred) <= list_models().index(name)  # the first with that layout


def test_a_layout_of_no_variant_is_not_inferred():
    keys = set(create_model("baseline").state_dict())
    assert infer_architecture(keys | {"classifier.9.weight"}) is None


def _trained_like(name: str) -> torch.nn.Module:
    """A model with weights and batch-norm statistics of a trained one's size (tanh saturating)."""
    torch.manual_seed(0)
    model = create_model(name)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.3, 3.0)
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_eval_inference_is_the_plain_layers_function(name):
    """Without gradients an eval-mode LeNet5 computes `FoldedLeNet5`. It must stay the notebook's
    function: as close to the exact (float64) outputs as the plain layers' own float32 are."""
    model = _trained_like(name)
    exact = create_model(name).double().eval()
    exact.load_state_dict(model.state_dict())
    images = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        fast = model(images).double()
        plain = model.classifier(model.feature(images)).double()
        truth = exact.classifier(exact.feature(images.double()))
    plain_error = (plain - truth).abs().max().item()
    assert 0 < plain_error < 1e-5
    assert (fast - truth).abs().max().item() <= 2 * plain_error
    assert torch.equal(fast.argmax(1), plain.argmax(1))


@pytest.mark.parametrize("name", ["baseline", "batch_norm"])
def test_training_mode_without_gradients_is_the_plain_layers(name):
    """Batch norm in training mode normalizes by the batch and updates its statistics: no folding."""
    torch.manual_seed(0)
    model = _trained_like(name).train()
    reference = _trained_like(name).train()
    images = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        torch.manual_seed(1)  # the same dropout mask for both
        out = model(images)
        torch.manual_seed(1)
        expected = reference.classifier(reference.feature(images))
    assert torch.equal(out, expected)
    for key, value in reference.state_dict().items():  # running statistics, batches tracked
        assert torch.equal(model.state_dict()[key], value)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list_models())
def test_with_gradients_forward_is_the_plain_layers_function_with_their_gradients(name, training):
    """With gradients (training, attributions) LeNet5 computes conv1 on 2x2 blocks; it must stay the
    notebook's function: the same outputs, and the same gradients for the images and every weight,
    to float tolerance. Batch norm in training mode also updates its running statistics alike."""
    torch.manual_seed(0)
    model = _trained_like(name).train(training)
    plain = _trained_like(name).train(training)
    images = torch.randn(32, 1, 28, 28, requires_grad=True)
    labels = torch.arange(32) % 10
    torch.manual_seed(1)  # the same dropout mask for both
    fast_loss = F.cross_entropy(model(images), labels)
    torch.manual_seed(1)
    plain_loss = F.cross_entropy(plain.classifier(plain.feature(images)), labels)
    torch.testing.assert_close(fast_loss, plain_loss, rtol=1e-6, atol=1e-6)
    for key, value in plain.state_dict().items():  # batch norm's running statistics, batches tracked
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-5, atol=1e-7)
    fast_grads = torch.autograd.grad(fast_loss, [images, *model.parameters()])
    plain_grads = torch.autograd.grad(plain_loss, [images, *plain.parameters()])
    for fast_grad, plain_grad in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-4, atol=1e-6)


def test_training_on_blocks_works_in_either_memory_layout():
    """train() keeps most variants in NHWC; the block form gives the same loss in both layouts."""
    torch.manual_seed(0)
    model = create_model("baseline").train()
    images = torch.randn(8, 1, 28, 28)
    contiguous = model(images)
    nhwc = model.to(memory_format=torch.channels_last)(images)
    torch.testing.assert_close(nhwc, contiguous, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list_models())
def test_training_keeps_each_variant_in_its_memory_layout(name):
    """Every activation saved for the backward stays in the layout train() gives the variant: a
    stray reshape into the other layout costs a copy and slow mixed-layout ops in every step."""
    layout = torch.channels_last if get_variant(name).channels_last else torch.contiguous_format
    model = create_model(name).train().to(memory_format=layout)
    saved = []

    def pack(tensor):
        if tensor.is_floating_point() and tensor.dim() == 4 and min(tensor.shape[1:]) > 1:
            saved.append((tuple(tensor.shape), tensor.is_contiguous(memory_format=layout)))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        F.cross_entropy(model(torch.rand(8, 1, 28, 28)), torch.arange(8)).backward()
    assert any(shape == (8, 24, 14, 14) for shape, _ in saved)  # conv1's outputs on blocks
    assert all(in_layout for _, in_layout in saved), saved


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_conv2s_tanh_and_pooling_in_one_pass_are_torchs_with_their_gradient(layout):
    """_TanhAvgPool, which trains conv2's activation and pooling, against nn.Tanh then AvgPool2d: the
    same values and gradients, in the layout it was given (a stack's conv2 is NHWC)."""
    torch.manual_seed(0)
    z = (3 * torch.randn(4, 12, 10, 10)).contiguous(memory_format=layout).requires_grad_()
    upstream = torch.randn(4, 12, 5, 5)
    ours = _TanhAvgPool.apply(z)
    (ours_grad,) = torch.autograd.grad(ours, z, upstream)
    plain = F.avg_pool2d(torch.tanh(z), 2)
    (plain_grad,) = torch.autograd.grad(plain, z, upstream)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=3e-7)
    torch.testing.assert_close(ours_grad, plain_grad, rtol=1e-5, atol=3e-7)
    assert ours.is_contiguous(memory_format=layout) and ours_grad.is_contiguous(memory_format=layout)


def test_the_networks_tanh_is_torch_tanh_with_its_gradient():
    x = torch.linspace(-12, 12, 100_001, dtype=torch.float64).float().requires_grad_()
    ours = Tanh()(x)
    torch.testing.assert_close(ours, torch.tanh(x), rtol=0, atol=2.5e-7)  # float32 at 1: 1.2e-7 apart
    (grad,) = torch.autograd.grad(ours.sum(), x)
    torch.testing.assert_close(grad, 1 - ours.detach() ** 2)  # tanh's derivative, from its output
    assert all(
        isinstance(m, Tanh) for m in create_model("batch_norm").modules() if isinstance(m, torch.nn.Tanh)
    )
