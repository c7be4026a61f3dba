"""FashionMNIST: find the IDX files, decode them once, split, normalize, and serve batches.

Sources are tried in order: an explicit directory (argument or $FASHION_MNIST_DIR), the Debian
package `dataset-fashion-mnist`, then the workspace's download folder (torchvision downloads there
only when allowed). Everything lives in memory as tensors; batches are index slices, with no
per-sample transforms. Galleries and sampling read the test files alone (`load_test`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import DataError  # noqa: F401 (raised here; the API)

MEAN, STD = 0.2860, 0.3530  # training-set statistics, as the original notebook normalized with
IMAGE_SIZE = 28
NUM_CLASSES = 10

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_DIR = "FASHION_MNIST_DIR"
ENV_DOWNLOAD = "LENET_ALLOW_DOWNLOAD"

# (stem, IDX magic number, expected dimensions after the count)
_FILES = {
    ("train", "images"): ("train-images-idx3-ubyte", 0x0803, (IMAGE_SIZE, IMAGE_SIZE)),
    ("train", "labels"): ("train-labels-idx1-ubyte", 0x0801, ()),
    ("test", "images"): ("t10k-images-idx3-ubyte", 0x0803, (IMAGE_SIZE, IMAGE_SIZE)),
    ("test", "labels"): ("t10k-labels-idx1-ubyte", 0x0801, ()),
}


def read_idx(path: Path, magic: int, dims: tuple[int, ...]) -> np.ndarray:
    """Decode one IDX file (raw or gzip, told apart by content) into a uint8 array (count, *dims)."""
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    ndim = 1 + len(dims)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    found_magic = int.from_bytes(raw[:4], "big")
    if found_magic != magic:
        raise DataError(f"{path}: IDX magic number is 0x{found_magic:08x}, expected 0x{magic:08x}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape[1:] != dims:
        raise DataError(f"{path}: item shape is {shape[1:]}, expected {dims}")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path}: holds {len(raw)} bytes, its header promises {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_file(directory: Path, stem: str) -> Path | None:
    for folder in (directory, directory / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _complete(directory: Path, split: str | None = None) -> bool:
    return all(find_file(directory, stem) for (s, _), (stem, _, _) in _FILES.items() if split in (None, s))


def not_found_message(tried: list[str]) -> str:
    return (
        "FashionMNIST not found (looked in: " + "; ".join(tried) + "). Provide it one of three ways: "
        "pass --data-dir DIR (or set FASHION_MNIST_DIR=DIR) to a folder with the four IDX files; "
        "install the Debian package (apt-get install dataset-fashion-mnist); "
        f"or allow torchvision to download it (--download, or {ENV_DOWNLOAD}=1)."
    )


def locate(
    data_dir: str | Path | None = None,
    download: bool | None = None,
    download_root: Path | None = None,
    split: str | None = None,
) -> Path:
    """Return the directory holding the IDX files (of one split, or all four), trying the sources in order.

    `download_root` is the workspace's data folder: searched last, and where a download goes.
    """
    tried: list[str] = []
    explicit = data_dir or os.environ.get(ENV_DIR)
    if explicit:
        directory = Path(explicit).expanduser()
        if _complete(directory, split):
            return directory
        # An explicit choice that fails is an error of its own, not a reason to look elsewhere.
        missing = [
            stem
            for (s, _), (stem, _, _) in _FILES.items()
            if split in (None, s) and not find_file(directory, stem)
        ]
        raise DataError(f"{directory}: missing FashionMNIST files {', '.join(missing)} (.gz or raw)")
    for candidate in (DEBIAN_DIR, download_root):
        if candidate is None:
            continue
        if _complete(candidate, split):
            return candidate
        tried.append(str(candidate))
    if download is None:
        download = os.environ.get(ENV_DOWNLOAD, "") not in ("", "0")
    if download and download_root is not None:
        from torchvision.datasets import FashionMNIST

        try:
            for train in (True, False):
                FashionMNIST(download_root, train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise DataError(f"download of FashionMNIST into {download_root} failed: {e}") from None
        return download_root
    raise DataError(not_found_message(tried))


@dataclass(frozen=True)
class RawDataset:
    """The decoded dataset: uint8 images (N, 28, 28) and int64 labels (N,), per split."""

    source: Path
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the decoded contents (the .gz bytes differ between distributions)."""
        digest = hashlib.sha256()
        for t in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(t.numpy())  # its buffer, not a copy of it
        return digest.hexdigest()[:16]

    @cached_property
    def normalized_test_images(self) -> torch.Tensor:
        """float32 (N, 1, 28, 28): normalized once per process, shared by every run a worker trains."""
        return normalize(self.test_images)


@lru_cache(maxsize=8)
def _read_split(directory: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and int64 labels (N,) of one split, checked against each other."""
    images = read_idx(find_file(directory, _FILES[(split, "images")][0]), *_FILES[(split, "images")][1:])
    labels = read_idx(find_file(directory, _FILES[(split, "labels")][0]), *_FILES[(split, "labels")][1:])
    if len(images) != len(labels):
        raise DataError(f"{directory}: {split} has {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{directory}: {split} labels go up to {labels.max()}, expected 0-9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_raw(
    data_dir: str | Path | None = None, download: bool | None = None, download_root: Path | None = None
) -> RawDataset:
    """Decode FashionMNIST from the first source that has it (cached per process)."""
    return _raw_dataset(locate(data_dir, download, download_root).resolve())


@lru_cache(maxsize=4)
def _raw_dataset(directory: Path) -> RawDataset:
    train_images, train_labels = _read_split(directory, "train")
    test_images, test_labels = _read_split(directory, "test")
    return RawDataset(directory, train_images, train_labels, test_images, test_labels)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] then standardized.

    The one definition of the input normalization: training, evaluation and the sandbox all use it.
    """
    return images.unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32 (N, 1, 28, 28), normalized
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def mirrored(self) -> Split:
        """Every image flipped left-right: shoes that face right, which the training set never shows."""
        return Split(self.images.flip(-1), self.labels)


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    fingerprint: str
    source: str


@dataclass(frozen=True)
class TestImages:
    """The test images alone, for galleries and sampling: nothing of the training set is read."""

    __test__ = False  # not a pytest test class

    images: torch.Tensor  # uint8 (N, 28, 28), as stored: what a person is shown
    split: Split  # normalized: exactly what the models were tested on


def load_test(data_dir: str | Path | None = None, download_root: Path | None = None) -> TestImages:
    directory = locate(data_dir, False, download_root, split="test").resolve()
    images, labels = _read_split(directory, "test")
    return TestImages(images, Split(normalize(images), labels))


def make_splits(
    raw: RawDataset,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    train_limit: int | None = None,
) -> Splits:
    """Split the training set into train/validation with a seeded permutation; keep test apart.

    `train_limit` keeps a random subset of the training part (for quick demos); the validation
    part stays the same whatever the limit, so runs remain comparable.
    """
    n = len(raw.train_labels)
    n_val = int(round(n * val_fraction))
    if not 0 < n_val < n:
        raise DataError(f"validation fraction {val_fraction} leaves no train or no validation data")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if train_limit is not None:
        train_idx = train_idx[:train_limit]
    # Only the images a run uses are normalized (the same values, one image at a time): the quick
    # demo's 7,000 took a worker 27 MB, where all 60,000 took 188 MB.
    images, labels = raw.train_images, raw.train_labels
    return Splits(
        train=Split(normalize(images[train_idx]), labels[train_idx]),
        val=Split(normalize(images[val_idx]), labels[val_idx]),
        test=Split(raw.normalized_test_images, raw.test_labels),
        fingerprint=raw.fingerprint,
        source=str(raw.source),
    )


def iterate_batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) batches; shuffled when a generator is given, in order otherwise."""
    n = len(split)
    if generator is None:
        for start in range(0, n, batch_size):
            yield split.images[start : start + batch_size], split.labels[start : start + batch_size]
        return
    order = torch.randperm(n, generator=generator).to(split.images.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield split.images[idx], split.labels[idx]


def augment_batch(images: torch.Tensor, generator: torch.Generator, shift: int) -> torch.Tensor:
    """Random shifts of up to `shift` pixels and random horizontal flips, per image, in one gather.

    images: normalized (N, 1, 28, 28). The border that a shift uncovers is the background (black).
    """
    n, size = len(images), images.shape[-1]
    background = (0.0 - MEAN) / STD
    padded = torch.nn.functional.pad(images, (shift,) * 4, value=background)  # (N, 1, 28+2s, 28+2s)
    offsets = torch.randint(0, 2 * shift + 1, (2, n), generator=generator).to(images.device)
    flips = torch.rand(n, generator=generator).to(images.device) < 0.5
    grid = torch.arange(size, device=images.device)
    rows = offsets[0, :, None] + grid  # (N, 28)
    cols = offsets[1, :, None] + torch.where(flips[:, None], grid.flip(0), grid)  # (N, 28), mirrored or not
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
