"""Image preprocessing and prediction: any image in, FashionMNIST-like 28x28 out, bad files refused."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lenet import CLASSES, artifacts
from lenet.cli import main
from lenet.data import normalize
from lenet.models import create_model
from lenet.predict import (
    BlankImageError,
    ImageError,
    attributions,
    feature_maps,
    open_image,
    predict,
    to_model_input,
)


def shirt(size=(300, 240), ink=255, paper=0, mode="L") -> Image.Image:
    image = Image.new("L", size, paper)
    w, h = size
    ImageDraw.Draw(image).polygon(
        [
            (0.3 * w, 0.1 * h),
            (0.7 * w, 0.1 * h),
            (0.9 * w, 0.3 * h),
            (0.75 * w, 0.4 * h),
            (0.72 * w, 0.9 * h),
            (0.28 * w, 0.9 * h),
            (0.25 * w, 0.4 * h),
            (0.1 * w, 0.3 * h),
        ],
        fill=ink,
    )
    return image.convert(mode) if mode != "L" else image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def bbox(image28: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(image28 > 30)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_a_drawing_becomes_a_centred_28x28_light_on_dark_image():
    result = to_model_input(shirt())
    assert result.image28.shape == (28, 28) and result.image28.dtype == np.uint8
    assert result.tensor.shape == (1, 1, 28, 28)
    top, bottom, left, right = bbox(result.image28)
    assert bottom - top + 1 == 28 or right - left + 1 == 28  # longest edge is 28
    assert abs((left + right) / 2 - 13.5) <= 1 and abs((top + bottom) / 2 - 13.5) <= 1
    assert result.image28[0, 0] == 0 and not result.inverted


def test_a_dark_object_on_white_paper_is_inverted():
    dark_on_light = to_model_input(shirt(ink=20, paper=250))
    light_on_dark = to_model_input(shirt())
    assert dark_on_light.inverted
    assert np.abs(dark_on_light.image28.astype(int) - light_on_dark.image28.astype(int)).mean() < 12
    assert dark_on_light.image28[0, 0] == 0 and dark_on_light.image28[14, 14] > 180


def test_aspect_ratio_is_kept():
    wide = Image.new("L", (400, 200), 0)
    ImageDraw.Draw(wide).rectangle([50, 70, 349, 129], fill=255)  # 300 x 60: 5 to 1
    top, bottom, left, right = bbox(to_model_input(wide).image28)
    assert (right - left + 1, bottom - top + 1) == (28, 6)


@pytest.mark.parametrize(
    "blank",
    [
        np.zeros((280, 280, 4), dtype=np.uint8),  # an untouched, transparent canvas
        np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)]),  # black canvas
        np.full((50, 80), 255, dtype=np.uint8),
        np.full((50, 80), 128, dtype=np.uint8),
    ],
)
def test_blank_input_is_nothing_to_classify(blank):
    with pytest.raises(BlankImageError, match="nothing to classify"):
        to_model_input(blank)


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: im.convert("RGBA"),
        lambda im: im.convert("P"),
        lambda im: im.convert("1"),
        lambda im: im.convert("CMYK"),
        lambda im: Image.fromarray(np.asarray(im, dtype=np.uint16) * 257),  # 16-bit
        lambda im: im.convert("F"),
        lambda im: im.convert("LA"),
    ],
    ids=["RGBA", "palette", "1-bit", "CMYK", "16-bit", "float", "LA"],
)
def test_every_image_mode_gives_the_same_picture(convert):
    reference = to_model_input(shirt()).image28.astype(int)
    assert np.abs(to_model_input(convert(shirt())).image28.astype(int) - reference).mean() < 6


def test_transparent_background_with_dark_ink_is_handled():
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[40:160, 60:140] = (10, 10, 10, 255)  # dark opaque object, everything else transparent
    result = to_model_input(rgba)
    assert result.image28[0, 0] == 0 and result.image28[14, 14] > 200


@pytest.mark.parametrize(
    "fmt, options",
    [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {}), ("BMP", {}), ("GIF", {})],
)
def test_supported_formats_open(fmt, options):
    image = open_image(encode(shirt().convert("RGB"), fmt, **options))
    assert to_model_input(image).image28.max() > 200


def test_an_animation_uses_its_first_frame():
    frames = [shirt(), Image.new("L", (300, 240), 0)]
    payload = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert to_model_input(open_image(payload)).image28.max() > 200  # frame 2 would be blank


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "empty"),
        (b"definitely not an image" * 10, "not an image file"),
        (_png_claiming(100_000, 100_000), "limit is"),  # a decompression bomb: tiny file, huge claim
        (encode(shirt(), "PNG")[:200], "damaged or truncated"),
        (encode(shirt(), "TIFF"), "not supported"),
    ],
    ids=["empty", "garbage", "bomb", "truncated", "tiff"],
)
def test_hostile_and_odd_files_are_refused(payload, match):
    with pytest.raises(ImageError, match=match):
        open_image(payload)


def test_files_over_the_size_cap_are_refused_unread(tmp_path, monkeypatch):
    import lenet.predict as predict_module

    monkeypatch.setattr(predict_module, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.png"
    path.write_bytes(encode(shirt(), "PNG") + b"\0" * 2000)
    with pytest.raises(ImageError, match="the limit is"):
        open_image(path)


def test_predictions_are_probabilities_for_every_model():
    torch.manual_seed(0)
    models = {"a": create_model("baseline").eval(), "b": create_model("batch_norm").eval()}
    predictions = predict(models, to_model_input(shirt()).tensor)
    assert [p.model for p in predictions] == ["a", "b"]
    for p in predictions:
        assert list(p.probabilities) == list(CLASSES)
        assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert p.top1 in CLASSES and p.confidence == max(p.probabilities.values())


def test_feature_maps_and_attributions_leave_the_model_untouched():
    model = create_model("batch_norm").eval()
    tensor = to_model_input(shirt()).tensor
    maps = feature_maps(model, tensor)
    assert {layer: m.shape for layer, m in maps.items()} == {"conv1": (6, 28, 28), "conv2": (16, 10, 10)}
    # the same activations as the model's own forward pass computes, layer by layer
    with torch.inference_mode():
        expected = model.feature[:3](tensor)[0]  # conv, batch norm, tanh
    assert np.allclose(maps["conv1"], expected.numpy())
    why = attributions(model, tensor)
    assert why.pixels.shape == (28, 28) and why.target == int(model(tensor).argmax())
    assert all(p.grad is None for p in model.parameters())
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


def test_real_test_images_come_through_preprocessing_nearly_unchanged(real_raw):
    images = real_raw.test_images[:500].numpy()

    def distance(a, b):  # centring may move an object by one pixel: compare the best alignment
        return min(
            np.abs(np.roll(a, (dy, dx), (0, 1)).astype(int) - b.astype(int)).mean()
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        )

    distances = np.array([distance(to_model_input(im).image28, im) for im in images])
    assert np.mean(distances < 1.0) >= 0.99  # mean difference under one grey level of 255


def _checkpoint(tmp_path, variant="baseline"):
    torch.manual_seed(0)
    return artifacts.save_checkpoint(create_model(variant), {"variant": variant}, tmp_path / f"{variant}.pth")


def test_cli_predict_json(capsys, tmp_path):
    image = tmp_path / "shirt.png"
    image.write_bytes(encode(shirt(ink=0, paper=255).convert("RGB"), "PNG"))
    a, b = _checkpoint(tmp_path, "baseline"), _checkpoint(tmp_path, "dropout")
    assert main(["predict", str(image), "--model", str(a), "--model", str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in result] == ["baseline", "dropout"]
    for r in result:
        assert r["top1"] in CLASSES and set(r["probabilities"]) == set(CLASSES)
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("content", [b"", b"GIF89a broken", _png_claiming(90_000, 90_000)])
def test_cli_predict_refuses_bad_images_with_one_line(capsys, tmp_path, content):
    image = tmp_path / "bad.png"
    image.write_bytes(content)
    assert main(["predict", str(image), "--model", str(_checkpoint(tmp_path))]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("lenet: error:")


def test_cli_predict_blank_and_missing(capsys, tmp_path):
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode(Image.new("L", (50, 50), 0), "PNG"))
    assert main(["predict", str(blank), "--model", str(_checkpoint(tmp_path))]) == 2
    assert "nothing to classify" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.png")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_two_threads_sharing_one_cached_model_each_get_their_own_feature_maps():
    """As two sandbox sessions do: the dashboard caches one model for everyone."""
    import threading

    torch.manual_seed(0)
    model = create_model("dropout").eval()
    inputs = [to_model_input(shirt()).tensor, to_model_input(shirt(ink=120).rotate(90)).tensor]
    expected = [feature_maps(model, x) for x in inputs]
    assert not np.allclose(expected[0]["conv2"], expected[1]["conv2"])
    barrier, results, errors = threading.Barrier(2), [[], []], []

    def look(i):
        try:
            barrier.wait()
            for _ in range(50):
                results[i].append(feature_maps(model, inputs[i]))
        except Exception as e:  # any error in a thread fails the test
            errors.append(e)

    threads = [threading.Thread(target=look, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(2):
        for maps in results[i]:
            assert all(np.array_equal(maps[layer], expected[i][layer]) for layer in ("conv1", "conv2"))


def test_attributions_add_up_to_the_score_difference_from_a_black_image():
    """Integrated Gradients' completeness: the pixels' shares sum to logit(image) - logit(black)."""
    torch.manual_seed(0)
    model = create_model("baseline").eval()
    tensor = to_model_input(shirt()).tensor
    why = attributions(model, tensor, target=4)
    black = normalize(torch.zeros(1, 28, 28, dtype=torch.uint8))
    with torch.no_grad():
        difference = float(model(tensor)[0, 4] - model(black)[0, 4])
    assert why.target == 4
    assert why.pixels.sum() == pytest.approx(difference, abs=0.02 * abs(difference) + 1e-3)
    assert why.gap == pytest.approx(abs(why.pixels.sum() - difference), abs=1e-4)
    # the black background outside the garment contributes nothing (its input equals the baseline)
    assert np.abs(why.pixels[to_model_input(shirt()).image28 == 0]).max() < 1e-6
