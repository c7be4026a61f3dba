"""Any image -> what LeNet-5 saw in training -> class probabilities.

Preprocessing follows how Zalando made FashionMNIST (arXiv:1708.07747, section 2): trim the edges
close to the corner colour, resize the longest edge to 28, sharpen, centre on 28x28, and make the
object light on a dark background; then the training normalization. A drawing or a photo becomes
an image that looks like the training data, and a dataset image comes out (nearly) unchanged.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from torch import nn

from . import CLASSES
from .data import IMAGE_SIZE, normalize
from .errors import ImageError  # noqa: F401 (raised here; the API)
from .models import layer_names

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000  # decoded size cap: a few KB of PNG can claim gigapixels (decompression bomb)
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
# Interactive inference is one image at a time: extra intra-op threads only wait on each other, and
# on a laptop whose cores are busy training they made a prediction 30x slower (300 ms vs 10 ms).
INFERENCE_THREADS = 1
TRIM_THRESHOLD = 0.1  # a pixel this far (0-1 scale) from the background colour belongs to the object


class BlankImageError(ImageError):
    """The image holds nothing to classify (an empty canvas, a flat colour)."""


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open and fully decode the first frame of a PNG/JPEG/GIF/WebP/BMP, within size limits."""
    payload = source if isinstance(source, bytes) else _read_capped(Path(source))
    if len(payload) > MAX_FILE_BYTES:
        raise ImageError(
            f"the file is {len(payload) / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB"
        )
    if not payload:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(payload))
            if image.format not in FORMATS:
                raise ImageError(f"{image.format} images are not supported; use PNG, JPEG, GIF, WebP or BMP")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"the image claims {width}x{height} pixels; the limit is {MAX_PIXELS:,}")
            image.seek(0)  # the first frame of an animation
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image file: use PNG, JPEG, GIF, WebP or BMP") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"the image claims more pixels than the limit is ({MAX_PIXELS:,}); refused as a possible "
            "decompression bomb"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"the image is damaged or truncated ({e})") from None
    return ImageOps.exif_transpose(image)


def _read_capped(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path} is {size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB")
        return path.read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None


def to_gray(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any mode (RGBA, palette, 16-bit, CMYK, float, ...) -> float32 (H, W) in [0, 1]."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values / top, 0, 1)
    if image.mode == "P":
        image = image.convert("RGBA")
    if "A" in image.mode or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        alpha = rgba[..., 3]
        if alpha.min() >= 0.999:
            return gray
        # Transparent areas become the colour that contrasts with what is drawn, so the object stays
        # visible whether it is dark ink or light ink.
        ink = gray[alpha > 0.5]
        backdrop = 1.0 if ink.size and ink.mean() < 0.5 else 0.0
        return gray * alpha + backdrop * (1 - alpha)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


@dataclass(frozen=True)
class Preprocessed:
    image28: np.ndarray  # uint8 (28, 28): what the model sees, before normalization
    tensor: torch.Tensor  # float32 (1, 1, 28, 28), normalized like the training data
    inverted: bool  # the input had a light background and was inverted


def to_model_input(image: Image.Image | np.ndarray) -> Preprocessed:
    """FashionMNIST's own conversion, applied to any image. Raises BlankImageError if empty."""
    gray = to_gray(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    inverted = background > 0.5
    if inverted:  # objects are light on dark in FashionMNIST
        gray, background = 1 - gray, 1 - background
    rows, cols = np.nonzero(np.abs(gray - background) > TRIM_THRESHOLD)
    if rows.size == 0:
        raise BlankImageError("nothing to classify: the image is blank (draw or upload a garment)")
    # Trim to the object; subtract the background so the surroundings become black.
    crop = np.clip(gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] - background, 0, 1)
    crop = crop / max(float(crop.max()), 1e-6) if crop.max() < 0.5 else crop  # faint sketch -> full range
    crop_image = Image.fromarray(np.round(crop * 255).astype(np.uint8))
    height, width = crop.shape
    # Within 2 px of 28 is left alone: resampling by a few percent would only blur the image.
    if not IMAGE_SIZE - 2 <= max(height, width) <= IMAGE_SIZE:
        scale = IMAGE_SIZE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        crop_image = crop_image.resize(size, Image.Resampling.LANCZOS)
        if scale < 1:  # Zalando sharpened after shrinking, to undo the resampling blur
            crop_image = crop_image.filter(ImageFilter.UnsharpMask(radius=1, percent=60, threshold=2))
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    canvas.paste(crop_image, ((IMAGE_SIZE - crop_image.width) // 2, (IMAGE_SIZE - crop_image.height) // 2))
    image28 = np.asarray(canvas, dtype=np.uint8)
    return Preprocessed(
        image28=image28, tensor=normalize(torch.from_numpy(image28.copy())[None]), inverted=inverted
    )


@dataclass(frozen=True)
class Prediction:
    model: str
    probabilities: dict[str, float]  # class name -> probability

    @property
    def top1(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.top1]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "top1": self.top1,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
        }


@torch.inference_mode()
def predict(models: dict[str, nn.Module], tensor: torch.Tensor) -> list[Prediction]:
    """Class probabilities of the same (1, 1, 28, 28) input under each model (all in eval mode)."""
    predictions = []
    for name, model in models.items():
        probs = model(tensor).softmax(dim=1)[0].tolist()
        predictions.append(Prediction(name, dict(zip(CLASSES, probs, strict=True))))
    return predictions


@torch.inference_mode()
def feature_maps(model: nn.Module, tensor: torch.Tensor) -> dict[str, np.ndarray]:
    """Activations after each conv layer's tanh, by layer name: {"conv1": (6, 28, 28), "conv2": (16, 10, 10)}.

    The feature layers run one by one instead of through forward hooks: models are shared by every
    dashboard session, and a hook on a shared model could hand one session another's activations.
    """
    names = layer_names(model)
    maps, layer, x = {}, None, tensor
    for index, module in enumerate(model.feature):
        x = module(x)
        layer = names.get(f"feature.{index}", layer)
        if isinstance(module, nn.Tanh):
            maps[layer] = x[0].numpy().copy()
    return maps


ATTRIBUTION_STEPS = 32  # Riemann steps of the path integral: a completeness gap of ~1% of the logit


@dataclass(frozen=True)
class Attribution:
    """What each pixel contributed to one class's score (Integrated Gradients)."""

    pixels: np.ndarray  # (28, 28), signed, in units of the class's logit
    target: int  # the class explained
    gap: float  # |sum(pixels) - (logit(image) - logit(black))|: how far from exact the integral is


def attributions(model: nn.Module, tensor: torch.Tensor, target: int | None = None) -> Attribution:
    """Integrated Gradients (Captum) of the predicted (or given) class's logit, from an all-black
    image, the dataset's background: the pixels' contributions add up to how much more the model
    believes in the class for this image than for a blank one. The model's weights get no .grad
    written (Captum differentiates with respect to the input only): models are shared."""
    from captum.attr import IntegratedGradients  # only the sandbox's "look inside" needs it

    with torch.no_grad():
        if target is None:
            target = int(model(tensor).argmax(dim=1))
    black = normalize(torch.zeros(1, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8))
    pixels, delta = IntegratedGradients(model).attribute(
        tensor,
        baselines=black,
        target=target,
        n_steps=ATTRIBUTION_STEPS,
        return_convergence_delta=True,
    )
    return Attribution(pixels[0, 0].detach().numpy(), target, abs(float(delta[0])))
