"""Checkpoints that never unpickle code: safetensors, or ``torch.load(weights_only=True)`` for .pt/.pth.

``save_checkpoint(path, model, metadata)`` writes ``.safetensors`` (metadata JSON-encoded in the
header under the key ``audioxai``) or, for ``.pt``/``.pth``, ``{"state_dict": ..., "metadata": ...}``
with plain types only. Both are written atomically. ``load_checkpoint`` reads either; a ``.pt`` file
holding anything but tensors and plain containers is refused with a clear message.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from audioxai.atomic import atomic_path
from audioxai.errors import ConfigError

__all__ = ["save_checkpoint", "load_checkpoint"]

_META_KEY = "audioxai"
_PICKLE_SUFFIXES = (".pt", ".pth")


def _state_dict(model_or_state: torch.nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    # Tied or shared tensors cannot be saved twice by safetensors: give each key its own contiguous copy.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save_checkpoint(path: str | os.PathLike[str], model_or_state: torch.nn.Module | dict[str, torch.Tensor],
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write weights (and JSON-serialisable ``metadata``) to ``path`` atomically; format from the suffix."""
    path = Path(path)
    state = _state_dict(model_or_state)
    meta = metadata or {}
    try:
        encoded = json.dumps(meta)
    except TypeError as err:
        raise ConfigError(f"checkpoint metadata for {path} must be JSON-serialisable: {err}") from err
    with atomic_path(path) as tmp:
        if path.suffix in _PICKLE_SUFFIXES:
            torch.save({"state_dict": state, "metadata": json.loads(encoded)}, tmp)
        elif path.suffix == ".safetensors":
            save_file(state, str(tmp), metadata={_META_KEY: encoded})
        else:
            raise ConfigError(f"checkpoint {path}: use a .safetensors, .pt or .pth suffix")
    return path


def load_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module | None = None,
                    map_location: str | torch.device = "cpu", strict: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """Read weights and metadata; load them into ``model`` when given. Returns ``(state_dict, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: check the path or train the model first")
    if path.suffix in _PICKLE_SUFFIXES:
        state, meta = _load_pickle(path, map_location)
    else:
        try:
            state = load_file(str(path), device=str(map_location))
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get(_META_KEY, "{}"))
        except (SafetensorError, OSError, ValueError) as err:
            raise ConfigError(f"{path} is not a readable safetensors checkpoint ({err}): re-save it with save_checkpoint") from err
    if model is not None:
        model.load_state_dict(state, strict=strict)
    return state, meta


def _load_pickle(path: Path, map_location: str | torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"{path} holds more than weights (loading it would run pickled code), so it is refused: "
            f"re-save its state_dict with save_checkpoint or as .safetensors"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ConfigError(f"{path} is not a readable PyTorch checkpoint ({err})") from err
    if isinstance(payload, dict) and "state_dict" in payload:
        return payload["state_dict"], dict(payload.get("metadata") or {})
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload, {}
    raise ConfigError(f"{path} is neither a state dict nor a {{'state_dict', 'metadata'}} checkpoint")
