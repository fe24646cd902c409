"""A small supervised training loop: AdamW, tqdm progress, early stopping, best weights restored.

Loaders yield ``(inputs, targets)`` batches (extra items after the targets are ignored). The
defaults suit classification: cross-entropy loss and top-1 accuracy on integer class targets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from audioxai.errors import ConfigError, DatasetError
from audioxai.runtime import resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainHistory", "fit", "evaluate", "predict", "accuracy"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float | torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        num_epochs: maximum number of passes over the training data.
        lr: AdamW learning rate.
        batch_size: for the loaders the caller builds from this config (``fit`` takes loaders as given).
        weight_decay: AdamW (decoupled) weight decay.
        patience: epochs without improvement of ``monitor`` (by more than ``min_delta``) before stopping.
        min_delta: smallest change of ``monitor`` that counts as an improvement.
        monitor: ``"val_loss"`` (lower is better) or ``"val_acc"`` (higher is better).
        grad_clip: maximum gradient norm, or None for no clipping.
        seed: ``fit`` seeds Python, NumPy and torch with it, so shuffling and dropout repeat; seed
            before building the model too (``seed_everything(config.seed)``) for repeatable weights.
        lr_schedule: "constant", or "onecycle" (PyTorch's OneCycleLR peaking at ``lr`` after 15% of
            the steps, then cosine annealing; the loader must have a length). Transformers trained
            from scratch need the warm-up.
    """

    num_epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    patience: int = 5
    min_delta: float = 0.0
    monitor: str = "val_loss"
    grad_clip: float | None = None
    seed: int = 0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "onecycle"):
            raise ConfigError(f"lr_schedule={self.lr_schedule!r}: use 'constant' or 'onecycle'")
        if self.monitor not in ("val_loss", "val_acc"):
            raise ConfigError(f"monitor={self.monitor!r}: use 'val_loss' or 'val_acc'")
        for name in ("num_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use an integer >= 1")
        for name in ("lr", "weight_decay", "min_delta", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use a value >= 0")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip={self.grad_clip!r}: use a positive norm, or None for no clipping")


@dataclass
class TrainHistory:
    """Per-epoch train loss, validation loss and accuracy; the best epoch (0-based); whether it stopped early."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def num_epochs_run(self) -> int:
        """How many epochs ran (fewer than ``num_epochs`` when training stopped early)."""
        return len(self.train_loss)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy of ``logits`` (N, C) against class indices (N,) or class probabilities (N, C)."""
    if targets.dim() == logits.dim() and targets.is_floating_point():
        targets = targets.argmax(dim=1)
    if targets.is_floating_point() or targets.shape != logits.shape[:1]:
        return math.nan
    return float((logits.argmax(dim=1) == targets).float().mean())


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise DatasetError(f"batches should be (inputs, targets) tuples, got {type(batch).__name__}")


def _run_epoch(model: nn.Module, loader: Iterable, device: torch.device, loss_fn: LossFn, metric_fn: MetricFn,
               optimizer: torch.optim.Optimizer | None = None, grad_clip: float | None = None,
               desc: str = "eval", progress: bool = False, scheduler=None) -> tuple[float, float]:
    """One pass over ``loader``; trains when ``optimizer`` is given. Returns sample-weighted (loss, metric) means."""
    model.train(optimizer is not None)
    total_loss, total_metric, count = 0.0, 0.0, 0
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        inputs, targets = (t.to(device) for t in _split(batch))
        with torch.set_grad_enabled(optimizer is not None):
            logits = model(inputs)
            loss = loss_fn(logits, targets)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        n = len(targets)
        total_loss += float(loss.detach()) * n
        total_metric += float(metric_fn(logits.detach(), targets)) * n
        count += n
    if count == 0:
        raise DatasetError(f"the {desc} loader yielded no samples: check the dataset split and batch_size")
    return total_loss / count, total_metric / count


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def evaluate(model: nn.Module, loader: Iterable, device: str | torch.device | None = None,
             loss_fn: LossFn | None = None, metric_fn: MetricFn | None = None) -> dict[str, float]:
    """Mean loss and accuracy (or ``metric_fn``) of ``model`` on ``loader``, in eval mode without gradients.

    ``device`` defaults to the device the model's parameters are on.
    """
    device = _model_device(model) if device is None else resolve_device(device)
    model.to(device)
    loss, metric = _run_epoch(model, loader, device, loss_fn or nn.CrossEntropyLoss(), metric_fn or accuracy)
    return {"loss": loss, "accuracy": metric}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: str | torch.device | None = None) -> torch.Tensor:
    """Concatenated outputs (logits) of ``model`` over ``loader``, on the CPU, in loader order.

    Batches may be bare input tensors or ``(inputs, ...)`` tuples. ``device`` defaults to the model's.
    """
    device = _model_device(model) if device is None else resolve_device(device)
    model.to(device).eval()
    outputs = [model((b if isinstance(b, torch.Tensor) else b[0]).to(device)).cpu() for b in loader]
    if not outputs:
        raise DatasetError("the loader yielded no batches to predict on")
    return torch.cat(outputs)


def _improved(score: float, best: float, min_delta: float) -> bool:
    """True when ``score`` (lower is better) beats ``best`` by more than ``min_delta``."""
    return not math.isnan(score) and score < best - min_delta


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable, config: TrainConfig,
        device: str | torch.device = "auto", loss_fn: LossFn | None = None, metric_fn: MetricFn | None = None,
        progress: bool = True) -> TrainHistory:
    """Train ``model`` with AdamW, stop early on ``config.monitor``, and restore the best weights.

    Args:
        loss_fn: ``loss_fn(logits, targets)``; cross-entropy by default.
        metric_fn: ``metric_fn(logits, targets)``, a batch mean recorded as ``val_acc``; top-1 accuracy by default.
        progress: show tqdm bars for epochs and batches.

    Returns:
        The per-epoch history. The model ends on ``device``, in eval mode, holding the weights of
        the best validation epoch (a copy kept in memory during training).
    """
    device = resolve_device(device)
    seed_everything(config.seed)
    model.to(device)
    loss_fn, metric_fn = loss_fn or nn.CrossEntropyLoss(), metric_fn or accuracy
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = None
    if config.lr_schedule == "onecycle":
        try:
            steps = config.num_epochs * len(train_loader)  # type: ignore[arg-type]
        except TypeError as err:
            raise ConfigError("lr_schedule='onecycle' needs a train loader with a length") from err
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    history, sign = TrainHistory(), (1.0 if config.monitor == "val_loss" else -1.0)
    best_score, best_state, waited = math.inf, {}, 0  # epoch 0 always sets best_state (num_epochs >= 1)
    epochs = tqdm(range(config.num_epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in epochs:
        train_loss, _ = _run_epoch(model, train_loader, device, loss_fn, metric_fn, optimizer, config.grad_clip,
                                   f"epoch {epoch + 1}", progress, scheduler)
        val_loss, val_acc = _run_epoch(model, val_loader, device, loss_fn, metric_fn, desc="val")
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_acc.append(val_acc)
        epochs.set_postfix(train_loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        logger.info("epoch %d: train_loss %.4f val_loss %.4f val_acc %.4f", epoch + 1, train_loss, val_loss, val_acc)
        if not math.isfinite(train_loss):
            logger.warning("epoch %d: train loss is %s; lower lr or set grad_clip", epoch + 1, train_loss)
        score = sign * (val_loss if config.monitor == "val_loss" else val_acc)
        if _improved(score, best_score, config.min_delta) or epoch == 0:
            best_score = score if not math.isnan(score) else math.inf
            best_state, waited, history.best_epoch = _copy_state(model), 0, epoch
            continue
        waited += 1
        if waited >= config.patience:
            history.stopped_early = True
            logger.info("stopping early after epoch %d: no %s improvement for %d epochs; best epoch %d",
                        epoch + 1, config.monitor, waited, history.best_epoch + 1)
            break
    model.load_state_dict(best_state)
    model.eval()
    return history


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's state dict, on the model's device."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
