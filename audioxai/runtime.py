"""Where and how things run: device choice, seeding, and a record of the machine for run logs."""

from __future__ import annotations

import platform
import random

import numpy as np
import torch

from audioxai.errors import ConfigError

__all__ = ["resolve_device", "seed_everything", "describe_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when a GPU is visible, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` are checked."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but no CUDA device is visible: use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif resolved.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported: use 'auto', 'cpu' or 'cuda'")
    return resolved


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU generator seeded with ``seed``.

    With ``deterministic=True`` torch also refuses nondeterministic kernels (slower on GPU). On CPU
    the same seed already gives the same numbers.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r}: use a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def describe_device(device: str | torch.device = "auto") -> dict[str, str | None]:
    """Device, GPU name, torch and CUDA versions and the CPU, for recording with results."""
    resolved = resolve_device(device)
    return {
        "device": str(resolved),
        "gpu": torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if resolved.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
