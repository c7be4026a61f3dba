"""Checkpoints on disk without loading them (and without torch): their metadata, atomic writes, and
the listing of every complete checkpoint in a folder."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class CheckpointError(ValueError):
    """A file is not a usable LeNet-5 checkpoint; the message says why."""


def metadata_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide checkpoints from the other users of a class machine
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | Path) -> dict | None:
    """The JSON beside a checkpoint, or None when there is none (e.g. a notebook .pth)."""
    meta = metadata_path(path)
    if not meta.is_file():
        return None
    try:
        value = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{meta}: metadata is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{meta}: metadata must be a JSON object")
    return value


def mirrored_test_accuracy(checkpoint: str | Path, measure: Callable[[], float]) -> float:
    """A checkpoint's accuracy on the test images flipped left-right: from its metadata, measured
    when its run finished (`runs.build_metadata`), else `measure()` (an older or a foreign file)."""
    measured = (read_metadata(checkpoint) or {}).get("mirrored_test_accuracy")
    return measured if measured is not None else measure()


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    name: str
    variant: str
    source: str  # pretrained | run
    test_accuracy: float | None
    metadata: dict


def list_checkpoints(folder: Path, source: str = "run") -> list[CheckpointInfo]:
    """Complete checkpoints (weights + JSON) under `folder`; `source` says where they come from."""
    found = []
    for weights in sorted(Path(folder).rglob("*.pth")):
        try:
            metadata = read_metadata(weights)
        except CheckpointError:
            continue
        if metadata is None:  # not finished writing, or not ours
            continue
        found.append(
            CheckpointInfo(
                path=weights,
                name=metadata.get("name") or weights.stem,
                variant=metadata.get("variant", "?"),
                source=source,
                test_accuracy=metadata.get("test_accuracy"),
                metadata=metadata,
            )
        )
    return found
