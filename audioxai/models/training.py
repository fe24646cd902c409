"""A small supervised training loop: AdamW, tqdm progress, early stopping, best weights restored."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from audioxai.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainHistory", "fit", "evaluate", "predict"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        num_epochs: maximum number of passes over the training data.
        lr: AdamW learning rate.
        batch_size: for loaders built from this config (``fit`` takes loaders as given).
        weight_decay: AdamW weight decay.
        patience: epochs without improvement of ``monitor`` (by more than ``min_delta``) before stopping.
        min_delta: smallest change that counts as an improvement.
        monitor: ``"val_loss"`` (lower is better) or ``"val_acc"`` (higher is better).
        grad_clip: maximum gradient norm, or None for no clipping.
        seed: seeds the weights' shuffling order through the caller's loaders and dropout.
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

    def __post_init__(self) -> None:
        if self.monitor not in ("val_loss", "val_acc"):
            raise ConfigError(f"monitor={self.monitor!r}: use 'val_loss' or 'val_acc'")
        if self.num_epochs < 1 or self.patience < 1 or self.lr < 0:
            raise ConfigError(f"num_epochs={self.num_epochs}, patience={self.patience}, lr={self.lr}: need num_epochs >= 1, patience >= 1, lr >= 0")


@dataclass
class TrainHistory:
    """Per-epoch train loss, validation loss and accuracy; the best epoch (0-based) and whether training stopped early."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def _step_batches(model: nn.Module, loader: DataLoader, device: torch.device, loss_fn: Callable,
                  optimizer: torch.optim.Optimizer | None, grad_clip: float | None, desc: str, progress: bool):
    """One pass; trains when ``optimizer`` is given. Returns (mean loss, accuracy)."""
    total_loss, correct, count = 0.0, 0, 0
    for inputs, targets in tqdm(loader, desc=desc, disable=not progress, leave=False):
        inputs, targets = inputs.to(device), targets.to(device)
        with torch.set_grad_enabled(optimizer is not None):
            logits = model(inputs)
            loss = loss_fn(logits, targets)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        total_loss += float(loss.detach()) * len(targets)
        if targets.dtype == torch.long:
            correct += int((logits.detach().argmax(dim=1) == targets).sum())
        count += len(targets)
    return total_loss / max(count, 1), correct / max(count, 1)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu",
             loss_fn: Callable | None = None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``loader`` (eval mode, no gradients)."""
    model.eval()
    loss, acc = _step_batches(model, loader, torch.device(device), loss_fn or nn.CrossEntropyLoss(), None, None,
                              "eval", False)
    return {"loss": loss, "accuracy": acc}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu") -> torch.Tensor:
    """Concatenated logits of ``model`` over ``loader`` (on the CPU)."""
    model.eval()
    return torch.cat([model(inputs.to(device)).cpu() for inputs, *_ in loader])


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, config: TrainConfig,
        device: torch.device | str = "cpu", loss_fn: Callable | None = None, progress: bool = True) -> TrainHistory:
    """Train ``model`` with AdamW, early stopping on ``config.monitor``, and restore the best weights.

    The model ends on ``device`` holding the weights of the best validation epoch.
    """
    device = torch.device(device)
    model.to(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = TrainHistory()
    sign = 1.0 if config.monitor == "val_loss" else -1.0
    best_score, best_state, waited = float("inf"), copy.deepcopy(model.state_dict()), 0
    epochs = tqdm(range(config.num_epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in epochs:
        model.train()
        train_loss, _ = _step_batches(model, train_loader, device, loss_fn, optimizer, config.grad_clip,
                                      f"epoch {epoch + 1}", progress)
        model.eval()
        val_loss, val_acc = _step_batches(model, val_loader, device, loss_fn, None, None, "val", False)
        history.train_loss.append(train_loss), history.val_loss.append(val_loss), history.val_acc.append(val_acc)
        epochs.set_postfix(train_loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        logger.info("epoch %d: train_loss %.4f val_loss %.4f val_acc %.4f", epoch + 1, train_loss, val_loss, val_acc)
        score = sign * (val_loss if config.monitor == "val_loss" else val_acc)
        if score < best_score - config.min_delta:
            best_score, best_state, waited, history.best_epoch = score, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if waited >= config.patience:
                history.stopped_early = True
                break
    model.load_state_dict(best_state)
    return history
