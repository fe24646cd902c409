"""Checkpoints that never unpickle code: safetensors, or ``torch.load(weights_only=True)`` for .pt/.pth.

``save_checkpoint(path, model, metadata)`` writes ``.safetensors`` (metadata JSON-encoded in the
header under the key ``audioxai``) or, for ``.pt``/``.pth``, ``{"state_dict": ..., "metadata": ...}``
with plain types only. Both are written atomically: a failed save leaves no file, or the old one.
``load_checkpoint`` reads either; a ``.pt`` file holding anything but tensors and plain containers
is refused with a clear message rather than executed.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from audioxai.atomic import atomic_path
from audioxai.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["save_checkpoint", "load_checkpoint"]

_META_KEY = "audioxai"
_PICKLE_SUFFIXES = (".pt", ".pth")
_SUFFIXES = (".safetensors", *_PICKLE_SUFFIXES)

StateDict = dict[str, torch.Tensor]


def _state_dict(model_or_state: torch.nn.Module | StateDict, path: Path) -> StateDict:
    """Detached, contiguous CPU copies of every tensor; tied weights get one copy per key."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path}: pass a torch.nn.Module or a state dict, not {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(f"checkpoint {path}: state dict entries {bad} are not tensors; put them in metadata")
    # safetensors refuses tensors sharing memory (tied embeddings); a clone per key gives each its own.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _encode_metadata(metadata: dict[str, Any] | None, path: Path) -> str:
    try:
        return json.dumps(metadata or {}, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"checkpoint metadata for {path} must be JSON-serialisable plain types: {err}") from err


def save_checkpoint(path: str | os.PathLike[str], model_or_state_dict: torch.nn.Module | StateDict,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write weights and ``metadata`` (plain JSON types) to ``path`` atomically; the suffix picks the format.

    Args:
        path: ``*.safetensors`` (preferred), ``*.pt`` or ``*.pth``.
        model_or_state_dict: a module (its ``state_dict()`` is saved) or a state dict of tensors.
        metadata: class names, sample rate, epoch, scores... anything ``json.dumps`` accepts.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise ConfigError(f"checkpoint {path}: use a .safetensors, .pt or .pth suffix")
    state = _state_dict(model_or_state_dict, path)
    encoded = _encode_metadata(metadata, path)
    with atomic_path(path) as tmp:
        if path.suffix in _PICKLE_SUFFIXES:
            torch.save({"state_dict": state, "metadata": json.loads(encoded)}, tmp)
        else:
            save_file(state, str(tmp), metadata={_META_KEY: encoded})
    logger.info("saved checkpoint %s (%d tensors)", path, len(state))
    return path


def load_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module | None = None,
                    map_location: str | torch.device = "cpu", strict: bool = True) -> tuple[StateDict, dict[str, Any]]:
    """Read a checkpoint's weights and metadata, loading the weights into ``model`` when given.

    Args:
        path: a ``.safetensors`` file, or a ``.pt``/``.pth`` file holding a bare state dict or
            ``{"state_dict": ..., "metadata": ...}``; any other suffix is read as safetensors.
        model: loaded in place with ``load_state_dict(state, strict=strict)``.
        map_location: device the tensors are placed on.

    Returns:
        ``(state_dict, metadata)``; metadata is ``{}`` when the file has none.

    Raises:
        FileNotFoundError: no file at ``path``.
        ConfigError: a corrupt file, a pickle holding more than weights, or weights that do not fit ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: check the path or train the model first")
    if path.suffix in _PICKLE_SUFFIXES:
        state, meta = _load_pickle(path, map_location)
    else:
        state, meta = _load_safetensors(path, map_location)
    if model is not None:
        try:
            model.load_state_dict(state, strict=strict)
        except RuntimeError as err:
            raise ConfigError(f"checkpoint {path} does not fit {type(model).__name__}: {err}") from err
    return state, meta


def _load_safetensors(path: Path, map_location: str | torch.device) -> tuple[StateDict, dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as fh:
            state = {key: fh.get_tensor(key) for key in fh.keys()}
            raw = (fh.metadata() or {}).get(_META_KEY, "{}")
        return state, json.loads(raw)
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(
            f"{path} is not a readable safetensors checkpoint ({err}): re-save it with save_checkpoint") from err


def _load_pickle(path: Path, map_location: str | torch.device) -> tuple[StateDict, dict[str, Any]]:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise ConfigError(f"{path} is not a readable PyTorch checkpoint ({err})") from err
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        culprit = f"it references the Python global {found.group(1)}" if found else "pickled Python objects"
        raise ConfigError(
            f"{path} holds more than weights ({culprit}); loading it could run "
            f"arbitrary code, so it is refused: re-save its state_dict with save_checkpoint or as .safetensors"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch raises IndexError, EOFError, RuntimeError... on corrupt files
        raise ConfigError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        return payload["state_dict"], dict(payload.get("metadata") or {})
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload, {}
    raise ConfigError(f"{path} is neither a state dict nor a {{'state_dict', 'metadata'}} checkpoint")
