"""LeNet-5 as in the original course notebook (its variants are registered in `variants`).

The layer order reproduces the notebook's `LeNet5V1`, so state_dict keys (`feature.<i>.*`,
`classifier.<i>.*`) match and checkpoints load in both directions.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .variants import DEFAULT_DROPOUT, UnknownVariantError, Variant, get_variant, list_models  # noqa: F401 (the API)

NUM_CLASSES = 10


class LeNet5(nn.Module):
    """LeNet-5 for 1x28x28 inputs: two tanh conv blocks with average pooling, then 400-120-84-10."""

    def __init__(self, use_dropout: bool = False, use_batch_norm: bool = False) -> None:
        super().__init__()
        self.use_dropout = use_dropout
        self.use_batch_norm = use_batch_norm
        # (N,1,28,28) -> conv pad 2 -> (N,6,28,28) -> pool -> (N,6,14,14)
        #              -> conv -> (N,16,10,10) -> pool -> (N,16,5,5)
        self.feature = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),
            *([nn.BatchNorm2d(6)] if use_batch_norm else []),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            *([nn.BatchNorm2d(16)] if use_batch_norm else []),
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        # (N,16,5,5) -> (N,400) -> 120 -> 84 -> 10 logits
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(400, 120),
            *([nn.Dropout(DEFAULT_DROPOUT)] if use_dropout else []),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Inference on a CPU (validation, test, the sandbox's answers) takes `_features`, the same
        # function in a faster form (tested to float tolerance). Training, gradients (attributions),
        # GPUs and other input sizes take the plain layers: with gradients, oneDNN's own backward of
        # the plain layers in NHWC was as fast on one thread and faster on two.
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.shape[1:] != (1, 28, 28):
            return self.classifier(self.feature(x))
        return self.classifier(self._features(x))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 [bn] tanh pool conv2 [bn] tanh pool, as `self.feature` computes it, without gradients.

        A 5x5 convolution of a single-channel image is the slowest layer of the network on a CPU
        (oneDNN has little to vectorize over one input channel). Seen on a grid of 2x2 blocks, the
        same convolution is a 3x3 one with 4 input channels and 4 outputs per filter, one for each
        pixel of the block, which runs several times faster; the 2x2 average pooling that follows is
        then the mean of those 4 outputs, with no strided window to gather.
        """
        layers = iter(self.feature)
        conv1 = next(layers)
        bn1 = next(layers) if self.use_batch_norm else None
        next(layers), next(layers)  # tanh, pool: computed below
        conv2 = next(layers)
        bn2 = next(layers) if self.use_batch_norm else None
        n = len(x)
        y = _conv_on_blocks(conv1, x)  # (N, 6, 4, 14, 14): per channel, the 4 pixels of each block
        if bn1 is not None:  # statistics over N x 28 x 28 per channel, as on the plain layout
            y = bn1(y.view(n, 6, 4 * 14, 14)).view(n, 6, 4, 14, 14)
        # (N, 6, 14, 14): the 2x2 pool, one reduction (1.7x faster than adding the 4 pixels' slices)
        y = torch.tanh_(y).mean(dim=2)
        y = conv2(y)  # (N, 16, 10, 10)
        if bn2 is not None:
            y = bn2(y)
        y = torch.tanh(y)
        return (y[:, :, 0::2, 0::2] + y[:, :, 0::2, 1::2] + y[:, :, 1::2, 0::2] + y[:, :, 1::2, 1::2]) * 0.25


def _block_taps() -> torch.Tensor:
    """Index into conv1's 25 taps (25: a zero) giving its 3x3 kernel on 2x2 blocks, shape (4, 4, 3, 3):
    [output pixel (a, b) of the block, input pixel (r, c) of a block, block row offset, block column
    offset] -> tap (2 * row offset + r - a, 2 * column offset + c - b) of the 5x5 kernel."""
    taps = torch.full((4, 4, 3, 3), 25, dtype=torch.long)
    for a, b, r, c, dr, dc in itertools.product(range(2), range(2), range(2), range(2), range(3), range(3)):
        i, j = 2 * dr + r - a, 2 * dc + c - b
        if 0 <= i < 5 and 0 <= j < 5:
            taps[2 * a + b, 2 * r + c, dr, dc] = 5 * i + j
    return taps


_BLOCK_TAPS = _block_taps()


def _conv_on_blocks(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv (1 -> O channels, 5x5, padding 2) of x (N, 1, H, W), H and W even: (N, O, 4, H/2, W/2),
    the 4 being the pixels (0,0) (0,1) (1,0) (1,1) of each 2x2 block of the output."""
    n, _, h, w = x.shape
    out = conv.out_channels
    padded = F.pad(x, (2, 2, 2, 2))  # (N, 1, H+4, W+4)
    blocks = padded.view(n, (h + 4) // 2, 2, (w + 4) // 2, 2).permute(0, 2, 4, 1, 3)
    blocks = blocks.reshape(n, 4, (h + 4) // 2, (w + 4) // 2)  # (N, 4 pixels of a block, H/2+2, W/2+2)
    taps = torch.cat([conv.weight.reshape(out, 25), conv.weight.new_zeros(out, 1)], dim=1)
    weight = taps[:, _BLOCK_TAPS].reshape(4 * out, 4, 3, 3)
    y = F.conv2d(blocks, weight, conv.bias.repeat_interleave(4))  # (N, O*4, H/2, W/2)
    return y.view(n, out, 4, h // 2, w // 2)


def create_model(name: str) -> LeNet5:
    variant = get_variant(name)
    return LeNet5(use_dropout=variant.dropout, use_batch_norm=variant.batch_norm)


def layer_names(model: nn.Module) -> dict[str, str]:
    """Human names of the weight layers, counted by kind: conv1, conv2, fc1, fc2, fc3.

    Dropout and BatchNorm shift the `Sequential` indices, so "classifier.3" is fc2 in one variant
    and a Tanh in another; counting layers of each kind gives names that line up across variants.
    """
    names, counts = {}, {"conv": 0, "fc": 0}
    for path, module in model.named_modules():
        kind = "conv" if isinstance(module, nn.Conv2d) else "fc" if isinstance(module, nn.Linear) else None
        if kind:
            counts[kind] += 1
            names[path] = f"{kind}{counts[kind]}"
    return names


def infer_architecture(keys: set[str]) -> str | None:
    """Which variant's layout a bare state_dict has (the notebook saved no metadata): the first
    registered variant with the same parameter and buffer names, or None. Variants that differ only
    in training (baseline, both L2s, ...) share a layout; the first registered of them names it."""
    for name in list_models():
        if set(create_model(name).state_dict()) == keys:
            return name
    return None
