"""Several LeNet-5s trained in lockstep as one stacked network (`StackedLeNet5`).

Runs of one experiment often see the same batches in the same order: the same seed, data and batch
size, differing in the optimizer's weight decay, the dropout rate, the loss, batch norm or
augmentation. Stacked, their conv1 is one convolution over the shared batch with every model's
filters, conv2 one grouped convolution and each fully connected layer one batched matrix product:
larger, fewer kernels than the models' own, which on a CPU train them faster (README,
"Throughput"). Each model keeps its own weights, gradients, Adam state, dropout masks, batch norm
statistics and augmented batches; `model_state(k)` is model k's `LeNet5` state_dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .models import LeNet5, Tanh, _block_weight, _MeanOfBlock, _sum_of_2x2, _TanhAvgPool, _to_blocks

_tanh = Tanh()


def _weight_layers(model: LeNet5) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _state_keys(model: LeNet5) -> list[tuple[str, str]]:
    """(weight key, bias key) of each weight layer, in order, as in the model's state_dict."""
    names = {module: name for name, module in model.named_modules()}
    return [(f"{names[m]}.weight", f"{names[m]}.bias") for m in _weight_layers(model)]


class _TanhMeanOfBlock(torch.autograd.Function):
    """tanh, then `_MeanOfBlock`, of a stack's NHWC conv1 output. The backward is one pass: each
    pooled gradient's quarter, broadcast over its block's 4 pixels, times tanh's derivative. That
    took half the time of tanh's and _MeanOfBlock's backwards, and unlike _MeanOfBlock's matrix
    product it never mixes the models' channels (0 x NaN is NaN: one diverging would end them all)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        y = _tanh(z)
        ctx.save_for_backward(y)
        return _MeanOfBlock.apply(y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        n, channels, h, w = grad.shape
        quarter = grad.permute(0, 2, 3, 1).mul(0.25).unsqueeze(3).expand(n, h, w, 4, channels)
        grad_z = torch.ops.aten.tanh_backward(quarter, y.permute(0, 2, 3, 1).view(n, h, w, 4, channels))
        return grad_z.view(n, h, w, 4 * channels).permute(0, 3, 1, 2)


class _ColumnBatchNorm(torch.autograd.Function):
    """Training-mode batch norm of some models' channels of a stack's NHWC convolution output, in
    place. y is seen as rows of `width` channels (conv1's 4 block pixels fold into the rows); each
    slice in `models` is a normed model's C channels, normalized over all rows as its own
    nn.BatchNorm2d would (the same to float tolerance, tested in float64).

    Written out because this torch's batch norm is slow on (rows, C) with C = 6 or 16: conv1's took
    1.3 ms forward and backward a step, and autograd's copies of the slices written back as long
    again. Here every pass is an elementwise op or column sum over (rows, C) seen as (rows / r, r x C),
    which vectorizes as well as a wide tensor does (5x faster than over C = 6)."""

    @staticmethod
    def forward(ctx, y, width, models, weight, bias, running_mean, running_var, momentum, eps):
        rows = y.permute(0, 2, 3, 1).view(-1, width)  # a view of y (NHWC)
        wide = _Wide(rows, models)
        x = wide.gather(rows)  # a copy, changed in place below
        mean = wide.column_sums(x) / wide.count
        centered = x.sub_(wide.repeat(mean))
        var = wide.column_sums(centered * centered) / wide.count
        invstd = torch.rsqrt(var + eps)
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var * (wide.count / (wide.count - 1)), alpha=momentum)
        wide.scatter(rows, torch.addcmul(wide.repeat(bias), centered, wide.repeat(weight * invstd)))
        ctx.mark_dirty(y)
        ctx.save_for_backward(centered, weight, invstd)
        ctx.width, ctx.models = width, models
        return y

    @staticmethod
    def backward(ctx, grad):
        centered, weight, invstd = ctx.saved_tensors
        grad_y = grad.clone(memory_format=torch.channels_last)  # the other channels' pass through
        rows = grad_y.permute(0, 2, 3, 1).view(-1, ctx.width)
        wide = _Wide(rows, ctx.models)
        g = wide.gather(rows)
        sum_g, sum_g_centered = wide.column_sums(g), wide.column_sums(g * centered)
        scale, mean_g, mean_g_centered = weight * invstd, sum_g / wide.count, sum_g_centered / wide.count
        # through the batch's statistics: w invstd (g - mean(g) - centered invstd^2 mean(g centered))
        grad_x = g.mul_(wide.repeat(scale))
        grad_x.addcmul_(centered, wide.repeat(scale * invstd.square() * mean_g_centered), value=-1)
        grad_x.sub_(wide.repeat(scale * mean_g))
        wide.scatter(rows, grad_x)
        return grad_y, None, None, sum_g_centered * invstd, sum_g, None, None, None, None


class _Wide:
    """The normed models' channels of rows (M, width), gathered as (M, C') and seen as
    (M / r, r x C'): elementwise ops and column sums over C' = 6 or 16 channels then vectorize
    as over a wide tensor."""

    def __init__(self, rows: torch.Tensor, models: list[slice]):
        self.models, self.count = models, len(rows)
        self.channels = sum(model.stop - model.start for model in models)
        self.r = math.gcd(self.count, 16)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        x = torch.cat([rows[:, model] for model in self.models], dim=1)  # (M, C'), model after model
        return x.view(-1, self.r * self.channels)

    def scatter(self, rows: torch.Tensor, x: torch.Tensor) -> None:
        x, start = x.view(self.count, self.channels), 0
        for model in self.models:
            end = start + model.stop - model.start
            rows[:, model].copy_(x[:, start:end])
            start = end

    def column_sums(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0).view(self.r, self.channels).sum(0)

    def repeat(self, v: torch.Tensor) -> torch.Tensor:
        """(C',) -> (r x C'), broadcast over the wide view's rows."""
        return v.repeat(self.r)


class StackedLeNet5(nn.Module):
    """K LeNet-5s (same batches) as one network.

    forward(x (N, 1, 28, 28), x_augmented) -> logits (K, N, 10): model k's logits are those of
    `models[k]` on x, or on x_augmented where `augmented[k]`, to float tolerance. conv1 runs on 2x2
    blocks as in `LeNet5._features_on_blocks`, in NHWC. A model with batch norm normalizes its own
    channels by their own batch statistics, as its `nn.BatchNorm2d` in training mode would.
    """

    def __init__(
        self,
        models: list[LeNet5],
        weight_decays: list[float],
        dropout_rngs: list[torch.Generator],
        augmented: list[bool],
    ):
        super().__init__()
        k = len(models)
        self.templates = list(models)  # their structure and state_dict keys, not their weights
        self.weight_decays = list(weight_decays)
        self.dropout_rngs = list(dropout_rngs)
        self.augmented = list(augmented)
        self.dropout_rates = [
            next((m.p for m in model.modules() if isinstance(m, nn.Dropout)), 0.0) for model in models
        ]
        self.normed = [i for i, model in enumerate(models) if model.use_batch_norm]
        layers = [_weight_layers(m) for m in models]

        def joined(i: int, attribute: str, join=torch.cat) -> torch.Tensor:  # layer i of every model
            return join([getattr(ls[i], attribute).detach() for ls in layers])

        # the convolutions as one (K x C_out, C_in, kh, kw) filter bank each, conv2's NHWC for oneDNN;
        # the fully connected layers' (out, in) weights as (K, out, in)
        self.conv1_w, self.conv1_b = nn.Parameter(joined(0, "weight")), nn.Parameter(joined(0, "bias"))
        self.conv2_w = nn.Parameter(joined(1, "weight").contiguous(memory_format=torch.channels_last))
        self.conv2_b = nn.Parameter(joined(1, "bias"))
        self.fc = nn.ParameterList(
            [nn.Parameter(joined(i, name, torch.stack)) for i in (2, 3, 4) for name in ("weight", "bias")]
        )
        models_of = torch.arange(k)
        # which model each row (dim 0) of a parameter or buffer belongs to, by its name
        self._owners = {
            **{f"conv{i}_{p}": models_of.repeat_interleave(c) for i, c in ((1, 6), (2, 16)) for p in "wb"},
            **{f"fc.{i}": models_of for i in range(6)},
        }
        if self.normed:
            self._join_batch_norms([_norms(models[i]) for i in self.normed])
        # each parameter's rows times their model's decay, made once
        decays = torch.tensor(self.weight_decays)
        self._decays = [
            decays[self._owners[name]].view(-1, *[1] * (p.dim() - 1)) for name, p in self.named_parameters()
        ]
        # conv1's filters of the augmented models read the augmented batch's blocks, the others the
        # batch's: (4 pixels x K x 6, 1, 1, 1), 1 where a filter reads the augmented batch
        self._reads_augmented = (
            torch.tensor(self.augmented, dtype=torch.float32).repeat_interleave(6).repeat(4).view(-1, 1, 1, 1)
        )

    def _join_batch_norms(self, norms: list[list[nn.BatchNorm2d]]) -> None:
        """The normed models' batch norms, each layer's model after model: parameters norm1_w,
        norm1_b (6 a model), norm2_w, norm2_b (16), and their running statistics and batch counts."""
        normed = torch.tensor(self.normed, dtype=torch.long)
        self.norm_momentum, self.norm_eps = norms[0][0].momentum, norms[0][0].eps
        for layer, channels in ((1, 6), (2, 16)):
            in_layer = [model_norms[layer - 1] for model_norms in norms]
            for name, attribute in (("w", "weight"), ("b", "bias")):
                joined = torch.cat([getattr(n, attribute).detach() for n in in_layer])
                self.register_parameter(f"norm{layer}_{name}", nn.Parameter(joined))
            for name, attribute in (("mean", "running_mean"), ("var", "running_var")):
                statistics = torch.cat([getattr(n, attribute) for n in in_layer])
                self.register_buffer(f"norm{layer}_{name}", statistics)
            batches = torch.stack([n.num_batches_tracked for n in in_layer])
            self.register_buffer(f"norm{layer}_batches", batches)
            rows = normed.repeat_interleave(channels)
            self._owners.update({f"norm{layer}_{p}": rows for p in ("w", "b", "mean", "var")})
            self._owners[f"norm{layer}_batches"] = normed
        # each layer's columns of the normed models in a row of the conv output (K x C channels)
        self._norm_columns = [
            [slice(k * channels, (k + 1) * channels) for k in self.normed] for channels in (6, 16)
        ]

    @property
    def size(self) -> int:
        return len(self.templates)

    def forward(self, x: torch.Tensor, x_augmented: torch.Tensor | None = None) -> torch.Tensor:
        k, n = self.size, len(x)
        blocks, conv1_w = _to_blocks(x), _block_weight(self.conv1_w)
        if any(self.augmented):
            # one convolution of 8 input channels: each filter's taps on the other batch are zero
            blocks = torch.cat([blocks, _to_blocks(x_augmented)], dim=1)
            reads = self._reads_augmented
            conv1_w = torch.cat([conv1_w * (1 - reads), conv1_w * reads], dim=1)
        y = F.conv2d(
            blocks.contiguous(memory_format=torch.channels_last),
            conv1_w.contiguous(memory_format=torch.channels_last),
            self.conv1_b.repeat(4),
        )  # (N, 4 pixels x K models x 6, 14, 14): model k's channels of pixel p at p x 6K + 6k
        if self.normed:
            y = self._batch_norm(y, 1)
        y = _TanhMeanOfBlock.apply(y)  # (N, K x 6, 14, 14), model by model
        y = F.conv2d(y, self.conv2_w, self.conv2_b, groups=k)  # (N, K x 16, 10, 10)
        if self.normed:
            y = self._batch_norm(y, 2)
        y = _TanhAvgPool.apply(y)  # (N, K x 16, 5, 5)
        h = y.reshape(n, k, 400).transpose(0, 1)  # (K, N, 400), flattened as LeNet5's Flatten
        w1, b1, w2, b2, w3, b3 = self.fc
        h = torch.baddbmm(b1.unsqueeze(1), h, w1.transpose(1, 2))
        if self.training:
            h = self._dropout(h)
        h = _tanh(h)
        h = _tanh(torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2)))
        return torch.baddbmm(b3.unsqueeze(1), h, w3.transpose(1, 2))

    def _batch_norm(self, y: torch.Tensor, layer: int) -> torch.Tensor:
        """Batch norm `layer` (1 or 2) of the normed models' channels of y, an NHWC convolution
        output (conv1's: 4 block pixels x K x 6 channels), seen as rows of each pixel's K x C
        channels, so a channel's statistics span the batch, its positions and a block's 4 pixels,
        as its own nn.BatchNorm2d's would. The other models' channels are left as they are."""
        width = len(self.conv1_b) if layer == 1 else len(self.conv2_b)  # K x 6 or K x 16
        y = _ColumnBatchNorm.apply(
            y,
            width,
            self._norm_columns[layer - 1],
            getattr(self, f"norm{layer}_w"),
            getattr(self, f"norm{layer}_b"),
            getattr(self, f"norm{layer}_mean"),  # running statistics, updated in place
            getattr(self, f"norm{layer}_var"),
            self.norm_momentum,
            self.norm_eps,
        )
        getattr(self, f"norm{layer}_batches").add_(1)
        return y

    def _dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Each model's dropout, its mask drawn from its own generator as nn.Dropout draws it."""
        rates = [(i, p) for i, p in enumerate(self.dropout_rates) if p > 0]
        if not rates:
            return h
        masks = torch.ones_like(h)
        for i, p in rates:
            masks[i] = torch.empty_like(h[i]).bernoulli_(1 - p, generator=self.dropout_rngs[i]).div_(1 - p)
        return h * masks

    def add_weight_decay(self) -> None:
        """Add each model's decay x weight to its gradients: Adam's (coupled) weight_decay, per model."""
        if any(self.weight_decays):
            with torch.no_grad():
                parameters = list(self.parameters())
                torch._foreach_addcmul_([p.grad for p in parameters], parameters, self._decays)

    def rows(self, keep: list[int], name: str) -> torch.Tensor:
        """Indices along dim 0 of a stacked parameter or buffer (or a parameter's Adam state), by
        its name, of the models in `keep`, in that order."""
        owners = self._owners[name]
        return torch.cat([(owners == k).nonzero().flatten() for k in keep])

    def subset(self, keep: list[int]) -> StackedLeNet5:
        """The models in `keep` only, as a new stack (gradients and all else left behind)."""
        decays, rngs = [self.weight_decays[k] for k in keep], [self.dropout_rngs[k] for k in keep]
        augmented = [self.augmented[k] for k in keep]
        stacked = StackedLeNet5([self.templates[k] for k in keep], decays, rngs, augmented)
        mine = dict(self.state_dict())
        with torch.no_grad():
            for name, new in stacked.state_dict().items():
                new.copy_(mine[name].index_select(0, self.rows(keep, name)))
        return stacked

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights (and batch norm's statistics) as its LeNet5 state_dict (copies)."""
        template = self.templates[k]
        mine = {}  # model k's rows of each tensor of the stack that it has rows in
        for name, tensor in self.state_dict().items():
            rows = self.rows([k], name)
            if len(rows):
                mine[name] = tensor[rows[0] : rows[-1] + 1].clone(memory_format=torch.contiguous_format)
        weights = [
            (mine["conv1_w"], mine["conv1_b"]),
            (mine["conv2_w"], mine["conv2_b"]),
            *((mine[f"fc.{2 * i}"][0], mine[f"fc.{2 * i + 1}"][0]) for i in range(3)),
        ]
        state = {}
        for (weight_key, bias_key), (weight, bias) in zip(_state_keys(template), weights, strict=True):
            state[weight_key], state[bias_key] = weight, bias
        norm_keys = (("weight", "w"), ("bias", "b"), ("running_mean", "mean"), ("running_var", "var"))
        for layer, prefix in enumerate(_norm_prefixes(template), start=1):
            for key, name in norm_keys:
                state[f"{prefix}.{key}"] = mine[f"norm{layer}_{name}"]
            state[f"{prefix}.num_batches_tracked"] = mine[f"norm{layer}_batches"][0]
        return state


class FoldedStack:
    """Eval-mode LeNet5s as one network: each model's `FoldedLeNet5` function in one pass over a
    batch, for the validation of a stack's runs (`train.validate_together`).

    As in `StackedLeNet5`, conv1 is one NHWC convolution with every model's filters on 2x2 blocks,
    conv2 one grouped convolution and each fully connected layer one batched matrix product. oneDNN
    runs conv1 for two models (48 filters) in NHWC in half the time of one model's 24 in NCHW, which
    it computes in a padded, blocked layout and then reorders: that reorder alone was a third of
    conv1's time. Two models at a time is the sweet spot (README, "Throughput"): with four, the
    batch's activations no longer fit in a core's cache.
    """

    def __init__(self, models: list[LeNet5]):
        folded = [model.folded() for model in models]
        self.size = len(folded)
        # model k's conv1 filter for channel c at pixel p of a block is at p x 6K + 6k + c
        conv1_w = torch.stack([f.conv1_w.unflatten(0, (4, -1)) for f in folded], dim=1)
        self.conv1_w = conv1_w.flatten(0, 2).contiguous(memory_format=torch.channels_last)
        self.conv1_b = torch.stack([f.conv1_b.unflatten(0, (4, -1)) for f in folded], dim=1).flatten()
        self.conv2_w = torch.cat([f.conv2_w for f in folded]).contiguous(memory_format=torch.channels_last)
        self.conv2_b = torch.cat([f.conv2_b for f in folded])
        # (K, in, out) weights and (K, 1, out) biases, as torch.baddbmm takes them
        layers = [*zip(*(f.linears for f in folded), strict=True), [f.logits for f in folded]]
        self.linears = [
            (torch.stack([w for w, _ in layer]).transpose(1, 2), torch.stack([b for _, b in layer])[:, None])
            for layer in layers
        ]

    @torch.inference_mode()
    def on_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """Logits (K, N, 10) of images in `_to_blocks` form, in NHWC (`torch.channels_last`)."""
        k, n = self.size, len(blocks)
        s = F.conv2d(blocks, self.conv1_w, self.conv1_b).sigmoid_()  # (N, 4 pixels x K x 6, H, W), NHWC
        h, w = s.shape[2:]
        pixels = s.permute(0, 2, 3, 1).view(n * h * w, 4, -1)
        pairs = pixels[:, 0:2] + pixels[:, 2:4]
        y = (pairs[:, 0] + pairs[:, 1]).mul_(0.5).sub_(1)  # the mean of each block's 4 tanh, as FoldedLeNet5
        y = y.view(n, h, w, -1).permute(0, 3, 1, 2)  # (N, K x 6, H, W), NHWC
        s = F.conv2d(y, self.conv2_w, self.conv2_b, groups=k).sigmoid_()
        x = _sum_of_2x2(s).mul_(0.5).sub_(1).reshape(n, k, -1).transpose(0, 1)  # (K, N, 400)
        *hidden, (weight, bias) = self.linears
        for weight_h, bias_h in hidden:
            x = torch.baddbmm(bias_h, x, weight_h).sigmoid_().mul_(2).sub_(1)
        return torch.baddbmm(bias, x, weight)


def _norms(model: LeNet5) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def _norm_prefixes(model: LeNet5) -> list[str]:
    names = {module: name for name, module in model.named_modules()}
    return [names[m] for m in _norms(model)]
