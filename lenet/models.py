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


def _tanh_by_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.mul(x, 2).sigmoid_().mul_(2).sub_(1)  # one new tensor, the rest in place


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) computed as 2 sigmoid(2x) - 1, with tanh's own backward (from its output)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = _tanh_by_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Tanh):
    """nn.Tanh (the same module in a state_dict), 2-4x faster on a CPU, where this torch's sigmoid
    is much faster than its tanh; the same to float tolerance (tested)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SigmoidTanh.apply(x) if x.device.type == "cpu" else torch.tanh(x)


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
            Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            *([nn.BatchNorm2d(16)] if use_batch_norm else []),
            Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        # (N,16,5,5) -> (N,400) -> 120 -> 84 -> 10 logits
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(400, 120),
            *([nn.Dropout(DEFAULT_DROPOUT)] if use_dropout else []),
            Tanh(),
            nn.Linear(120, 84),
            Tanh(),
            nn.Linear(84, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On a CPU, 28x28 images take faster forms of the same function (tested to float tolerance):
        # with gradients (training, attributions) conv1 on 2x2 blocks, and eval-mode inference
        # (validation, test, the sandbox's answers) `folded()`. GPUs and other input sizes take the
        # plain layers.
        if x.device.type != "cpu" or x.shape[1:] != (1, 28, 28):
            return self.classifier(self.feature(x))
        if torch.is_grad_enabled():
            return self.classifier(self._features_on_blocks(x))
        if self.training:  # without gradients, e.g. batch norm's statistics updated under no_grad
            return self.classifier(self.feature(x))
        return self.folded()(x)

    def _features_on_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """`self.feature(x)` with conv1 on 2x2 blocks, differentiable: oneDNN trains a 3x3
        convolution of 4 channels much faster than a 5x5 one of a single channel, and the first
        pooling becomes the mean of each block's 4 outputs (see FoldedLeNet5). conv2's tanh and
        pooling are one `_TanhAvgPool`."""
        if self.use_batch_norm:
            conv1, norm1, tanh1, _, conv2, norm2, _, _ = self.feature
        else:
            conv1, tanh1, _, conv2, _, _ = self.feature
            norm1 = norm2 = None
        # the model's layout (train() picks it per variant); conv1's one-channel weight fits both
        nhwc = conv2.weight.is_contiguous(memory_format=torch.channels_last)
        layout = torch.channels_last if nhwc else torch.contiguous_format
        y = F.conv2d(
            _to_blocks(x).contiguous(memory_format=layout),
            _block_weight(conv1.weight).contiguous(memory_format=layout),  # gradients reach the 5x5 taps
            conv1.bias.repeat(4),
        )
        if norm1 is not None:
            # Batch norm's statistics of a channel span all 4 pixels of a block: (N, 4 x C, H, W) seen
            # as (4N, C, H, W) (a view in NCHW) holds the same values per channel, so the same mean,
            # variance and count.
            n, channels, h, w = y.shape
            y = norm1(y.reshape(4 * n, channels // 4, h, w)).reshape(n, channels, h, w)
        y = conv2(_MeanOfBlock.apply(tanh1(y)))
        if norm2 is not None:
            y = norm2(y)
        return _TanhAvgPool.apply(y)  # tanh2, then pool2

    def folded(self) -> FoldedLeNet5:
        """This eval-mode network as a `FoldedLeNet5`: fold once, then call it on many batches."""
        convs = [m for m in self.feature if isinstance(m, nn.Conv2d)]
        norms = [m for m in self.feature if isinstance(m, nn.BatchNorm2d)] or [None, None]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]  # dropout: identity in eval
        return FoldedLeNet5(*_affine(convs[0], norms[0]), *_affine(convs[1], norms[1]), linears)


def _affine(conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of conv followed by its eval-mode batch norm, which is a per-channel affine map."""
    if norm is None:
        return conv.weight, conv.bias
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return conv.weight * scale.view(-1, 1, 1, 1), (conv.bias - norm.running_mean) * scale + norm.bias


class FoldedLeNet5:
    """LeNet5's eval-mode function, rewritten for a CPU without changing what it computes.

    - tanh(u) = 2 sigmoid(2u) - 1, and this torch's sigmoid is 3-4x faster than its tanh. Each layer
      before a tanh has its weights and bias doubled (exact in floating point), so the activation
      is an in-place sigmoid; the "2s - 1" is then taken after the pooling, on 4x fewer values.
    - Batch norm in eval mode is a per-channel affine map, folded into the convolution before it.
    - conv1, a 5x5 convolution of one channel, is the slowest layer on a CPU (oneDNN has little to
      vectorize over one input channel). Seen on a grid of 2x2 blocks, it is a 3x3 convolution with 4
      input channels and 4 outputs per filter, one for each pixel of a block, which runs several
      times faster; the 2x2 average pooling that follows is then the sum of those 4 outputs.
    """

    def __init__(self, conv1_w, conv1_b, conv2_w, conv2_b, linears: list[nn.Linear]) -> None:
        with torch.no_grad():
            self.conv1_w = _block_weight(2 * conv1_w).contiguous()
            self.conv1_b = (2 * conv1_b).repeat(4)
            self.conv2_w, self.conv2_b = (2 * conv2_w).contiguous(), 2 * conv2_b
            self.linears = [(2 * m.weight, 2 * m.bias) for m in linears[:-1]]
            self.logits = (linears[-1].weight, linears[-1].bias)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of x (N, 1, 28, 28)."""
        return self.on_blocks(_to_blocks(x))

    @torch.inference_mode()
    def on_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """Logits of images already in `_to_blocks` form (N, 4, H/2 + 2, W/2 + 2): a split that is
        validated every epoch is put in this form once."""
        s = F.conv2d(blocks, self.conv1_w, self.conv1_b).sigmoid_()  # (N, 4 x 6, H/2, W/2)
        s = s.unflatten(1, (4, -1))  # (N, 4 pixels of a block, 6, H/2, W/2)
        y = s[:, 0] + s[:, 1]
        y += s[:, 2]
        y += s[:, 3]
        y = y.mul_(0.5).sub_(1)  # the mean of the block's 4 tanh = 2 (sum of 4 sigmoids) / 4 - 1
        s = F.conv2d(y, self.conv2_w, self.conv2_b).sigmoid_()  # (N, 16, 10, 10)
        y = _sum_of_2x2(s).flatten(1).mul_(0.5).sub_(1)
        for weight, bias in self.linears:
            y = F.linear(y, weight, bias).sigmoid_().mul_(2).sub_(1)
        return F.linear(y, *self.logits)


def _as_2x2_squares(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> a view (N, C, H/2, 2, W/2, 2) of its 2x2 squares, in either memory layout."""
    h, w = x.shape[2:]
    return x.unflatten(2, (h // 2, 2)).unflatten(4, (w // 2, 2))


def _sum_of_2x2(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H/2, W/2), in x's memory layout: the sum of each 2x2 square, as two rows
    added, then two columns. That is 4% of a validation faster than adding four strided slices."""
    squares = _as_2x2_squares(x)
    rows = squares[:, :, :, 0] + squares[:, :, :, 1]
    return rows[..., 0] + rows[..., 1]


class _TanhAvgPool(torch.autograd.Function):
    """tanh, then 2x2 average pooling, in the input's memory layout: conv2's activation and pooling
    while training. The backward is one pass, each pooled gradient's quarter spread over its square
    times tanh's derivative: AvgPool2d's own backward took 2x longer on a stack's NHWC gradients,
    which made it 3-7% of a stacked step."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        y = _tanh_by_sigmoid(z)
        ctx.save_for_backward(y)
        return _sum_of_2x2(y).mul_(0.25)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        quarters = torch.empty_like(y)
        squares = _as_2x2_squares(quarters)
        squares.copy_(grad.mul(0.25)[:, :, :, None, :, None].expand(squares.shape))
        return torch.ops.aten.tanh_backward(quarters, y)


def _to_blocks(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) images, padded by 2 as conv1 pads them, as a grid of 2x2 blocks:
    (N, 4 pixels of a block, H/2 + 2, W/2 + 2)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (2, 2, 2, 2))
    blocks = padded.view(n, (h + 4) // 2, 2, (w + 4) // 2, 2).permute(0, 2, 4, 1, 3)
    return blocks.reshape(n, 4, (h + 4) // 2, (w + 4) // 2)


def _block_weight(conv1_w: torch.Tensor) -> torch.Tensor:
    """conv1's (C, 1, 5, 5) kernel as the (4 x C, 4, 3, 3) kernel of the same convolution on 2x2
    blocks (`_to_blocks`): output channel p x C + c is channel c at pixel p of a block."""
    out = conv1_w.shape[0]
    taps = torch.cat([conv1_w.reshape(out, 25), conv1_w.new_zeros(out, 1)], dim=1)
    return taps[:, _BLOCK_TAPS].transpose(0, 1).reshape(4 * out, 4, 3, 3)


class _MeanOfBlock(torch.autograd.Function):
    """(N, 4 x C, H, W) -> (N, C, H, W): the mean of each channel's 4 block pixels, which is conv1's
    2x2 average pooling on blocks, in the layout it is given. Written out because autograd's backward
    of slicing scatters into zeros, and AvgPool2d on 6 channels is slow in either layout."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        n, channels, h, w = y.shape
        ctx.nchw = y.is_contiguous()
        if ctx.nchw:
            pixels = y.view(n, 4, channels // 4, h, w)
        else:
            pixels = y.permute(0, 2, 3, 1).reshape(n * h * w, 4, channels // 4)  # a view in NHWC
        pairs = pixels[:, 0:2] + pixels[:, 2:4]  # two adds of halves: faster than sum() over 4
        mean = (pairs[:, 0] + pairs[:, 1]).mul_(0.25)
        return mean if ctx.nchw else mean.view(n, h, w, channels // 4).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, channels, h, w = grad.shape
        if ctx.nchw:  # the same quarter for each of the 4 pixels, as one broadcast copy
            return grad.mul(0.25).unsqueeze(1).expand(n, 4, channels, h, w).reshape(n, 4 * channels, h, w)
        spread = torch.eye(channels, dtype=grad.dtype).repeat(1, 4).mul_(0.25)  # (C, 4 x C)
        grad_y = torch.mm(grad.permute(0, 2, 3, 1).reshape(n * h * w, channels), spread)
        return grad_y.view(n, h, w, 4 * channels).permute(0, 3, 1, 2)


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
