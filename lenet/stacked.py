"""Several LeNet-5s trained in lockstep as one stacked network (`StackedLeNet5`).

Runs of one experiment often see the same batches in the same order: the same seed, data and batch
size, differing only in the optimizer's weight decay, the dropout rate or the loss. Stacked, their
conv1 is one convolution over the shared batch with every model's filters, conv2 one grouped
convolution and each fully connected layer one batched matrix product: larger, fewer kernels than
the models' own, which on a CPU train them faster (README, "Throughput"). Each model keeps its own
weights, gradients, Adam state and dropout masks; `model_state(k)` is model k's `LeNet5` state_dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models import LeNet5, Tanh, _block_weight, _MeanOfBlock, _TanhAvgPool, _to_blocks

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


class StackedLeNet5(nn.Module):
    """K LeNet-5s without batch norm (same input, same batches) as one network.

    forward(x (N, 1, 28, 28)) -> logits (K, N, 10): model k's logits are those of `models[k]`,
    to float tolerance. conv1 runs on 2x2 blocks as in `LeNet5._features_on_blocks`, in NHWC.
    """

    def __init__(self, models: list[LeNet5], weight_decays: list[float], dropout_rngs: list[torch.Generator]):
        super().__init__()
        if any(m.use_batch_norm for m in models):
            raise ValueError("batch norm's statistics are per model and per batch: it trains alone")
        self.templates = list(models)  # their structure and state_dict keys, not their weights
        self.weight_decays = list(weight_decays)
        self.dropout_rngs = list(dropout_rngs)
        self.dropout_rates = [
            next((m.p for m in model.modules() if isinstance(m, nn.Dropout)), 0.0) for model in models
        ]
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
        # each parameter's rows of each model times that model's decay, made once
        self._decays = [
            torch.tensor(self.weight_decays)
            .repeat_interleave(len(p) // len(models))
            .view(-1, *[1] * (p.dim() - 1))
            for p in self.parameters()
        ]

    @property
    def size(self) -> int:
        return len(self.templates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n = self.size, len(x)
        blocks = _to_blocks(x).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(
            blocks,
            _block_weight(self.conv1_w).contiguous(memory_format=torch.channels_last),
            self.conv1_b.repeat(4),
        )  # (N, 4 pixels x K models x 6, 14, 14): model k's channels of pixel p at p x 6K + 6k
        y = _TanhMeanOfBlock.apply(y)  # (N, K x 6, 14, 14), model by model
        y = F.conv2d(y, self.conv2_w, self.conv2_b, groups=k)  # (N, K x 16, 10, 10)
        y = _TanhAvgPool.apply(y)  # (N, K x 16, 5, 5)
        h = y.reshape(n, k, 400).transpose(0, 1)  # (K, N, 400), flattened as LeNet5's Flatten
        w1, b1, w2, b2, w3, b3 = self.fc
        h = torch.baddbmm(b1.unsqueeze(1), h, w1.transpose(1, 2))
        if self.training:
            h = self._dropout(h)
        h = _tanh(h)
        h = _tanh(torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2)))
        return torch.baddbmm(b3.unsqueeze(1), h, w3.transpose(1, 2))

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

    def rows(self, keep: list[int], parameter: torch.Tensor) -> torch.Tensor:
        """Indices along dim 0 of a stacked parameter (or its Adam state) of the models in `keep`."""
        per_model = len(parameter) // self.size
        return torch.tensor([k * per_model + r for k in keep for r in range(per_model)])

    def subset(self, keep: list[int]) -> StackedLeNet5:
        """The models in `keep` only, as a new stack (gradients and all else left behind)."""
        decays, rngs = [self.weight_decays[k] for k in keep], [self.dropout_rngs[k] for k in keep]
        stacked = StackedLeNet5([self.templates[k] for k in keep], decays, rngs)
        with torch.no_grad():
            for new, old in zip(stacked.parameters(), self.parameters(), strict=True):
                new.copy_(old.index_select(0, self.rows(keep, old)))
        return stacked

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as its LeNet5 state_dict (copies; no batch norm, so nothing else)."""
        state = {}
        c1, c2 = len(self.conv1_w) // self.size, len(self.conv2_w) // self.size
        tensors = [
            (self.conv1_w[k * c1 : (k + 1) * c1], self.conv1_b[k * c1 : (k + 1) * c1]),
            (self.conv2_w[k * c2 : (k + 1) * c2], self.conv2_b[k * c2 : (k + 1) * c2]),
            *((self.fc[2 * i][k], self.fc[2 * i + 1][k]) for i in range(3)),
        ]
        for (weight_key, bias_key), (weight, bias) in zip(
            _state_keys(self.templates[k]), tensors, strict=True
        ):
            state[weight_key] = weight.detach().contiguous().clone()
            state[bias_key] = bias.detach().clone()
        return state
