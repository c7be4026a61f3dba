"""Checkpoints: a state_dict file plus a JSON metadata file beside it, saved atomically, loaded safely.

A checkpoint `NAME.pth` holds only tensors (the notebook's `LeNet5V1` state_dict layout);
`NAME.json` holds the variant, config, history and metrics. Bare `.pth` files from the original
notebook load too: their variant is inferred from the keys. Loading uses `weights_only=True`, so a
file can never run code.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .catalog import (  # noqa: F401 (re-exported: the checkpoint API)
    CheckpointError,
    CheckpointInfo,
    atomic_write_bytes,
    list_checkpoints,
    metadata_path,
    read_metadata,
)
from .models import create_model, infer_architecture, list_models


def save_checkpoint(model: nn.Module, metadata: Mapping, path: str | Path) -> Path:
    """Save weights then metadata. The JSON is written last: a checkpoint without it is incomplete."""
    return write_checkpoint(state_bytes(model), metadata, path)


def state_bytes(model: nn.Module) -> bytes:
    """The model's state_dict as a `.pth` file's bytes (CPU, contiguous: loads anywhere)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def write_checkpoint(payload: bytes, metadata: Mapping, path: str | Path) -> Path:
    """A checkpoint's bytes (`state_bytes`), then its metadata, written atomically."""
    path = Path(path)
    atomic_write_bytes(path, payload)
    atomic_write_bytes(metadata_path(path), json.dumps(metadata, indent=2).encode())
    return path


MAX_CHECKPOINT_BYTES = 20 * 1024 * 1024  # LeNet-5 is ~250 KB; anything far larger is not ours


def _refuse_oversized(size: int, source: str) -> None:
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{source}: {size / 1e6:.1f} MB is far larger than a LeNet-5 checkpoint (~0.25 MB)"
        )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    _refuse_oversized(path.stat().st_size, str(path))  # before reading it
    return _parse_state_dict(path.read_bytes(), str(path))


def _parse_state_dict(payload: bytes, path: str) -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint's bytes; `path` (or an upload's name) is named in every error."""
    # torch.save writes a zip archive ("PK"); very old torch wrote a bare pickle (protocol byte 0x80).
    if payload[:2] != b"PK" and payload[:1] != b"\x80":
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol warnings about files we refuse anyway
            loaded = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused to load: it contains Python objects other than tensors, which could "
            f"run code. Save a state_dict instead (torch.save(model.state_dict(), path))."
        ) from None
    except Exception as e:  # on garbage the unpickler raises nearly anything: IndexError, KeyError, ...
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint, or a damaged one ({type(e).__name__})"
        ) from None
    # Homework often wraps the weights: {"model_state_dict": ...} or {"state_dict": ...}.
    if isinstance(loaded, Mapping):
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(f"{path}: does not hold a state_dict (a mapping of names to tensors)")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def check_compatible(state: Mapping[str, torch.Tensor], model: nn.Module, source: str) -> None:
    """Raise CheckpointError unless `state` has exactly the model's keys and tensor shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        raise CheckpointError(f"{source}: not a LeNet-5 checkpoint of this layout ({'; '.join(parts)})")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, LeNet-5 expects {tuple(tensor.shape)}"
            )


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Load any LeNet-5 checkpoint (ours or the notebook's) -> (model in eval mode, metadata).

    For a bare state_dict the metadata is {"variant": inferred, "inferred": True}.
    """
    path = Path(path)
    return _build(_read_state_dict(path), read_metadata(path), str(path))


def load_checkpoint_bytes(payload: bytes, name: str) -> tuple[nn.Module, dict]:
    """Load an uploaded checkpoint from memory, as safely as from a file; nothing is written to disk."""
    _refuse_oversized(len(payload), name)
    return _build(_parse_state_dict(payload, name), None, name)


def _build(state: dict[str, torch.Tensor], metadata: dict | None, source: str) -> tuple[nn.Module, dict]:
    if metadata is None:
        # no layout matching: the first variant's, so that check_compatible says what differs
        variant = infer_architecture(set(state)) or list_models()[0]
        metadata = {"variant": variant, "inferred": True}
    try:
        model = create_model(metadata.get("variant"))
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from None
    check_compatible(state, model, source)
    model.load_state_dict(state)
    return model.eval(), metadata
