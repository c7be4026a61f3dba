import gzip
import struct

import numpy as np
import pytest
import torch

from lenet import data

from conftest import STEMS, make_dataset_dir, write_idx


def test_reads_gzip_and_raw_idx_alike(tmp_path):
    gz = make_dataset_dir(tmp_path / "gz", compress=True)
    raw = make_dataset_dir(tmp_path / "raw", compress=False)
    a, b = data.load_raw(gz), data.load_raw(raw)
    assert torch.equal(a.train_images, b.train_images)
    assert torch.equal(a.test_labels, b.test_labels)
    assert a.train_images.shape == (600, 28, 28) and a.train_images.dtype == torch.uint8
    assert a.fingerprint == b.fingerprint  # the hash is of contents, not of file bytes


def test_torchvision_raw_folder_layout_is_found(tmp_path):
    make_dataset_dir(tmp_path / "root" / "FashionMNIST" / "raw", compress=False)
    assert data.locate(tmp_path / "root") == tmp_path / "root"


def test_env_variable_names_the_folder(tmp_path, monkeypatch, idx_dir):
    monkeypatch.setenv(data.ENV_DIR, str(idx_dir))
    assert data.locate() == idx_dir


def test_explicit_folder_missing_files_names_them(tmp_path):
    folder = make_dataset_dir(tmp_path / "partial")
    (folder / (STEMS["test_labels"] + ".gz")).unlink()
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte"):
        data.locate(folder)


def test_no_source_names_the_three_ways(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DataError) as err:
        data.locate()
    message = str(err.value)
    assert "--data-dir" in message and "FASHION_MNIST_DIR" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--download" in message


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda b: b"\x00\x00\x09\x03" + b[4:], "magic number"),
        (lambda b: b[:-10], "header promises"),
        (lambda b: b[:6], "too short"),
        (lambda b: b[:8] + struct.pack(">II", 32, 32) + b[16:], "item shape"),
    ],
)
def test_malformed_image_file_is_refused(idx_dir, corrupt, match):
    path = idx_dir / (STEMS["train_images"] + ".gz")
    path.write_bytes(gzip.compress(corrupt(gzip.decompress(path.read_bytes()))))
    with pytest.raises(data.DataError, match=match):
        data.load_raw(idx_dir)


def test_corrupt_gzip_is_refused(idx_dir):
    path = idx_dir / (STEMS["train_labels"] + ".gz")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(data.DataError, match="cannot read"):
        data.load_raw(idx_dir)


def test_label_out_of_range_and_count_mismatch(tmp_path):
    folder = make_dataset_dir(tmp_path / "a")
    write_idx(folder / STEMS["test_labels"], np.full(200, 12, dtype=np.uint8))
    with pytest.raises(data.DataError, match="labels go up to 12"):
        data.load_raw(folder)
    folder = make_dataset_dir(tmp_path / "b")
    write_idx(folder / STEMS["test_labels"], np.zeros(150, dtype=np.uint8))
    with pytest.raises(data.DataError, match="200 images but 150 labels"):
        data.load_raw(folder)


def test_split_is_seeded_disjoint_and_ninety_ten(idx_dir):
    raw = data.load_raw(idx_dir)
    a, b = data.make_splits(raw, split_seed=3), data.make_splits(raw, split_seed=3)
    c = data.make_splits(raw, split_seed=4)
    assert (len(a.train), len(a.val), len(a.test)) == (540, 60, 200)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    train_rows = {tuple(r) for r in a.train.images.flatten(1).tolist()}
    assert not any(tuple(r) in train_rows for r in a.val.images.flatten(1).tolist())


def test_train_limit_keeps_validation_unchanged(idx_dir):
    raw = data.load_raw(idx_dir)
    full, limited = data.make_splits(raw), data.make_splits(raw, train_limit=100)
    assert len(limited.train) == 100
    assert torch.equal(full.val.images, limited.val.images)


def test_normalization_uses_training_statistics():
    images = torch.zeros(1, 28, 28, dtype=torch.uint8)
    images[0, 0, 1] = 255
    out = data.normalize(images)
    assert out.shape == (1, 1, 28, 28)
    assert out[0, 0, 0, 0].item() == pytest.approx((0 - data.MEAN) / data.STD)
    assert out[0, 0, 0, 1].item() == pytest.approx((1 - data.MEAN) / data.STD)


def test_batches_cover_every_sample_once(small_splits):
    seen = torch.cat(
        [y for _, y in data.iterate_batches(small_splits.train, 64, torch.Generator().manual_seed(0))]
    )
    assert sorted(seen.tolist()) == sorted(small_splits.train.labels.tolist())
    in_order = torch.cat([y for _, y in data.iterate_batches(small_splits.train, 64)])
    assert torch.equal(in_order, small_splits.train.labels)


def test_the_test_images_load_without_the_training_files(tmp_path):
    folder = make_dataset_dir(tmp_path / "only-test")
    for stem in (STEMS["train_images"], STEMS["train_labels"]):
        (folder / (stem + ".gz")).unlink()  # what galleries need must not touch these
    test = data.load_test(folder)
    assert test.images.shape == (200, 28, 28) and test.images.dtype == torch.uint8
    assert torch.equal(test.split.images, data.normalize(test.images))
    assert test.split.labels.shape == (200,)
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte"):
        data.load_raw(folder)


def test_augmentation_shifts_and_flips_whole_batches_as_tensors():
    images = data.normalize(torch.zeros(64, 28, 28, dtype=torch.uint8))
    images[:, 0, 10:18, 10:14] = 2.0  # a bright bar left of the centre
    out = data.augment_batch(images, torch.Generator().manual_seed(0), shift=2)
    assert out.shape == images.shape and out.dtype == images.dtype
    again = data.augment_batch(images, torch.Generator().manual_seed(0), shift=2)
    assert torch.equal(out, again)  # the same generator state gives the same batch
    assert not torch.equal(out, data.augment_batch(images, torch.Generator().manual_seed(1), shift=2))
    columns = [(img[0] == 2.0).any(0).nonzero().flatten() for img in out]
    assert all(len(c) == 4 and c.max() - c.min() == 3 for c in columns)  # the bar survives whole
    centres = torch.tensor([c.float().mean() for c in columns])
    mirrored = centres > 14  # flipped images have the bar right of the centre
    assert 10 < mirrored.sum() < 54  # about half
    # shifts of up to 2 px: 11.5 +- 2 unflipped, 15.5 +- 2 mirrored
    assert ((centres[~mirrored] - 11.5).abs() <= 2).all() and ((centres[mirrored] - 15.5).abs() <= 2).all()
    assert len(set(centres.tolist())) > 3
    background = (0 - data.MEAN) / data.STD
    assert torch.isclose(out[out != 2.0], torch.tensor(background)).all()  # uncovered border is black


def test_the_mirrored_split_flips_every_image_left_right(small_splits):
    mirrored = small_splits.test.mirrored()
    assert torch.equal(mirrored.images[:, :, :, 0], small_splits.test.images[:, :, :, -1])
    assert torch.equal(mirrored.labels, small_splits.test.labels)
