"""Where and how things run: device choice, seeding, and a record of the machine for run logs."""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable

import numpy as np
import torch

from audioxai.errors import ConfigError

__all__ = ["resolve_device", "seed_everything", "describe_device", "best_wall_times"]

_SUPPORTED = "use 'auto', 'cpu', 'cuda' or 'cuda:<index>'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a usable ``torch.device``.

    ``"auto"`` is CUDA when a GPU is visible, else CPU; ``"cpu"``, ``"cuda"`` and ``"cuda:1"`` are
    checked against the machine.

    Raises:
        ConfigError: for an unknown name, or a CUDA device this machine does not have.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(f"device={device!r} should be a string or torch.device: {_SUPPORTED}")
    if device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device.strip().lower())
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"unknown device {device!r}: {_SUPPORTED}") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but no CUDA device is visible: use 'cpu' or 'auto'")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(
                f"device {device!r}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})")
    elif resolved.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported: {_SUPPORTED}")
    return resolved


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    Args:
        seed: a non-negative integer.
        deterministic: also make torch refuse (warn on) nondeterministic kernels and turn off cuDNN
            autotuning; slower on GPU, and not needed on CPU, where one seed already repeats exactly.

    Returns:
        A fresh CPU ``torch.Generator`` seeded with ``seed``, for samplers and loaders.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r}: use a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for repeatable GEMMs
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def best_wall_times(cases: dict[str, Callable[[], object]], repeats: int, device: str | torch.device = "cpu"
                    ) -> tuple[dict[str, float], dict[str, object]]:
    """Best wall time of each case over ``repeats`` rounds, and each case's last result.

    The cases are interleaved within a round, so a change in the machine's load hits them alike; on CUDA
    the device is synchronised before and after each call, so queued kernels are counted.
    """
    cuda = torch.device(device).type == "cuda"
    seconds, results = {name: float("inf") for name in cases}, {}
    for _ in range(repeats):
        for name, fn in cases.items():
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[name] = fn()
            if cuda:
                torch.cuda.synchronize()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    return seconds, results


def describe_device(device: str | torch.device = "auto") -> dict[str, str | None]:
    """Device, GPU name, torch and CUDA versions, CPU and Python, for recording beside results."""
    resolved = resolve_device(device)
    on_cuda = resolved.type == "cuda"
    return {
        "device": str(resolved),
        "gpu": torch.cuda.get_device_name(resolved) if on_cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if on_cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
