"""Training of the spoofing detector (``audioxai.models.detector``): one-cycle AdamW with seeded gain,
shift and noise augmentation, then the average of the epochs with the lowest validation EER
(``avg_5_best.pth``, loaded with ``load_detector``'s weights-only reader)."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audioxai.config import is_finite_number
from audioxai.data.audio import change_speed, speed_ratio
from audioxai.errors import ConfigError
from audioxai.models.checkpoints import save_checkpoint
from audioxai.models.detector import SPOOF, SpoofDetector
from audioxai.runtime import resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["DetectorTrainConfig", "DetectorHistory", "train_detector", "rank_epochs", "average_state_dicts",
           "augment_batch", "speed_perturb"]


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Optimisation of the detector.

    Attributes:
        num_epochs: passes over the training clips.
        lr: peak AdamW learning rate of the one-cycle schedule (15% warm-up, then cosine decay).
        encoder_lr: peak rate of the wav2vec2 encoder's parameters (same schedule); ``None``: ``lr``.
            A pretrained XLS-R encoder is fine-tuned far more gently than the head (XLSR-Conformer-TCM
            and its kin use rates near 1e-6), or the head's rate wipes out what it learned.
        batch_size: clips per step (training and validation).
        weight_decay: AdamW (decoupled) weight decay.
        seed: seeds torch, NumPy and Python, and the generator that shuffles the batches.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        keep_best: how many epochs (lowest val EER, ties by val loss) are averaged into the final weights.
        class_balanced: weight the training cross-entropy by N / (2 N_class), so neither class dominates.
        augment: per training clip, a random gain of +-``gain_db`` dB, a random circular shift of up to
            ``shift_seconds`` and white noise at an SNR drawn from ``noise_snr_db`` (drawn from the
            seeded generator; validation clips are never augmented). A detector that memorises voices
            and texts overfits within a few epochs on SynthDigits voices without it.
        speed_factors: speed perturbation (Ko et al., 2015), applied first when ``augment`` is on: each
            clip is resampled to play ``f`` times faster, ``f`` drawn uniformly from this tuple (pitch and
            formants move with it, as for another speaker), then cut or zero-padded back to its length.
            Factors lie in ``SPEED_RANGE`` (0.8 to 1.25): slower clips lose their end, and below 0.8 that
            removes the whole spoofed span of some partial spoofs, which keep their spoof label.
            ``(1.0,)`` (the default) leaves the speed alone.
    """

    num_epochs: int = 20
    lr: float = 1e-3
    encoder_lr: float | None = None
    batch_size: int = 32
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    keep_best: int = 5
    class_balanced: bool = True
    augment: bool = True
    gain_db: float = 6.0
    shift_seconds: float = 0.25
    noise_snr_db: tuple[float, float] = (20.0, 50.0)
    speed_factors: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        for name in ("num_epochs", "batch_size", "keep_best"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use an integer >= 1")
        snr = tuple(self.noise_snr_db) if isinstance(self.noise_snr_db, (tuple, list)) else ()
        if len(snr) != 2 or not all(is_finite_number(v) for v in snr) or snr[0] > snr[1]:
            raise ConfigError(f"noise_snr_db={self.noise_snr_db!r}: give two finite numbers [low, high] in dB with low <= high")
        factors = tuple(self.speed_factors) if isinstance(self.speed_factors, (tuple, list)) else ()
        if not factors or not all(is_finite_number(f) and SPEED_RANGE[0] <= f <= SPEED_RANGE[1] and _is_speed_ratio(f)
                                  for f in factors):
            raise ConfigError(f"speed_factors={self.speed_factors!r}: give one or more speed factors from "
                              f"{SPEED_RANGE[0]} to {SPEED_RANGE[1]}, each a ratio p/q with q <= 100 (two decimals are), e.g. "
                              f"[0.9, 1.0, 1.1] ([1.0] for no speed perturbation; slower ones cut off a clip's end, "
                              f"and with it the spoofed words of some partial spoofs)")
        if self.encoder_lr is not None and not (is_finite_number(self.encoder_lr) and self.encoder_lr > 0):
            raise ConfigError(f"encoder_lr={self.encoder_lr!r}: use a finite rate > 0, or None for the head's lr")
        if not (is_finite_number(self.lr) and self.lr > 0 and is_finite_number(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"lr={self.lr!r}, weight_decay={self.weight_decay!r}: use finite lr > 0 and weight_decay >= 0")


SPEED_RANGE = (0.8, 1.25)


def _is_speed_ratio(factor: float) -> bool:
    try:
        speed_ratio(factor)
    except ConfigError:
        return False
    return True


@dataclass
class DetectorHistory:
    """Per-epoch losses and val EER; the averaged epochs (1-based); the averaged model's val scores."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_eer: list[float] = field(default_factory=list)
    averaged_epochs: list[int] = field(default_factory=list)
    final_val_loss: float = math.nan
    final_val_eer: float = math.nan
    checkpoint_path: str = ""


def _check_split(split, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise ConfigError(f"{what} should be a (waveforms, labels) pair")
    waveforms, labels = split
    if not (torch.is_tensor(waveforms) and waveforms.ndim == 2 and torch.is_tensor(labels)
            and labels.shape == waveforms.shape[:1]):
        raise ConfigError(f"{what}: waveforms should be a (N, T) tensor and labels an (N,) tensor")
    labels = labels.long().cpu()
    if not ((labels == 0) | (labels == 1)).all() or labels.unique().numel() != 2:
        raise ConfigError(f"{what}: labels must be 0 (bona fide) and 1 (spoof), with both classes present")
    return waveforms, labels


@torch.no_grad()
def _evaluate(model: SpoofDetector, waveforms: torch.Tensor, labels: torch.Tensor, batch_size: int,
              device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and EER of the spoof-class softmax probability."""
    from audioxai.metrics.detection import equal_error_rate  # written alongside; imported when needed

    model.eval()
    logits = torch.cat([model(w.to(device)).float().cpu() for w in waveforms.split(batch_size)])
    loss = float(F.cross_entropy(logits, labels))
    return loss, float(equal_error_rate(logits.softmax(dim=1)[:, SPOOF], labels))


def rank_epochs(val_eer: list[float], val_loss: list[float], keep_best: int) -> list[int]:
    """0-based indices of the ``keep_best`` epochs with the lowest val EER (ties: lower val loss, then earlier).

    NaN scores rank last.
    """
    def key(i: int) -> tuple[float, float, int]:
        eer, loss = val_eer[i], val_loss[i]
        return (math.inf if math.isnan(eer) else eer, math.inf if math.isnan(loss) else loss, i)
    return sorted(range(len(val_eer)), key=key)[:keep_best]


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Parameter-wise mean of ``states`` (float tensors); other tensors (integer buffers), and float tensors
    equal in every state, from ``states[0]`` unchanged."""
    if not states:
        raise ConfigError("average_state_dicts needs at least one state dict")
    def mean(key: str, value: torch.Tensor) -> torch.Tensor:
        if not value.is_floating_point() or all(torch.equal(value, s[key]) for s in states[1:]):
            return value.clone()  # integer buffers, and values every state shares (fitted statistics), exactly
        return torch.stack([s[key] for s in states]).mean(dim=0)

    return {key: mean(key, value) for key, value in states[0].items()}


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def speed_perturb(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` (..., T) played ``factor`` times faster, cut or zero-padded back to T samples.

    ``factor`` = p / q with q <= 100 (e.g. 1.1 = 11 / 10): polyphase resampling from p to q, so the
    output lasts T q / p samples before the cut and every frequency is multiplied by ``factor``.
    """
    length = x.shape[-1]
    y = change_speed(x, factor)
    return y[..., :length] if y.shape[-1] >= length else F.pad(y, (0, length - y.shape[-1]))


def augment_batch(x: torch.Tensor, config: DetectorTrainConfig, generator: torch.Generator,
                  sample_rate: int = 16000) -> torch.Tensor:
    """Speed perturbation, random gain, circular shift and white noise per clip
    (``DetectorTrainConfig.augment``), on the CPU."""
    n = len(x)
    if len(config.speed_factors) > 1 or config.speed_factors[0] != 1.0:
        picks = torch.randint(len(config.speed_factors), (n,), generator=generator)
        x = x.clone()
        for k in picks.unique().tolist():  # one resampling kernel per factor
            rows = picks == k
            x[rows] = speed_perturb(x[rows], float(config.speed_factors[k]))
    gain = 10 ** ((torch.rand(n, 1, generator=generator) * 2 - 1) * config.gain_db / 20)
    max_shift = int(config.shift_seconds * sample_rate)
    shifts = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator) if max_shift > 0 else torch.zeros(n, dtype=torch.long)
    x = torch.stack([torch.roll(c, int(s)) for c, s in zip(x, shifts)]) * gain
    low, high = config.noise_snr_db
    snr = low + (high - low) * torch.rand(n, 1, generator=generator)
    power = x.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12)
    noise = torch.randn(x.shape, generator=generator) * (power / 10 ** (snr / 10)).sqrt()
    return x + noise


def _train_epoch(model, optimizer, scheduler, waveforms, labels, config, weight, generator, device) -> float:
    model.train()
    total = 0.0
    for idx in torch.randperm(len(labels), generator=generator).split(config.batch_size):
        x, y = waveforms[idx], labels[idx].to(device)
        if config.augment:
            x = augment_batch(x, config, generator)
        loss = F.cross_entropy(model(x.to(device)), y, weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(idx)
    return total / len(labels)


def train_detector(model: SpoofDetector, train: tuple[torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor], config: DetectorTrainConfig = DetectorTrainConfig(),
                   checkpoint_dir: str | os.PathLike[str] = "checkpoints/detector") -> DetectorHistory:
    """Train, average the ``keep_best`` best epochs' weights, load them, and save ``avg_<k>_best.pth``.

    Args:
        train, val: ``(waveforms (N, T), labels (N,))``, labels 1 = spoof; clips of one length per split.

    Returns:
        The history. The model ends on the device, in eval mode, holding the averaged weights, which
        are saved to ``checkpoint_dir/avg_<keep_best>_best.pth`` (``avg_5_best.pth`` by default) with
        ``describe()``, the averaged epochs and their val EERs in the metadata. With fewer epochs than
        ``keep_best``, every epoch is averaged and the metadata says so. A spectral input with
        ``spectral_norm='dataset'`` that is not yet fitted gets its per-bin statistics from the
        training clips (before augmentation) first; they are saved with the weights.
    """
    (x_train, y_train), (x_val, y_val) = _check_split(train, "train"), _check_split(val, "val")
    device = resolve_device(config.device)
    generator = seed_everything(config.seed)
    model.to(device)
    if model.spectral is not None and model.spectral.norm == "dataset":
        if not model.spectral.fitted:  # the per-bin statistics, from the clean training clips
            model.fit_spectral_norm(x_train)
            logger.info("spectral input: per-bin statistics fitted on %d training frames",
                        int(model.spectral.fitted_frames))
        else:
            logger.info("spectral input: keeping the per-bin statistics the model holds (%d frames)",
                        int(model.spectral.fitted_frames))
    counts = torch.bincount(y_train, minlength=2).float()
    weight = (len(y_train) / (2 * counts)).to(device) if config.class_balanced else None
    encoder = {id(p) for p in model.encoder.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) in encoder], "lr": config.encoder_lr or config.lr},
              {"params": [p for p in model.parameters() if id(p) not in encoder], "lr": config.lr}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.num_epochs * math.ceil(len(y_train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups], total_steps=steps,
                                                    pct_start=0.15)
    history, kept = DetectorHistory(), {}
    for epoch in range(config.num_epochs):
        train_loss = _train_epoch(model, optimizer, scheduler, x_train, y_train, config, weight, generator, device)
        val_loss, val_eer = _evaluate(model, x_val, y_val, config.batch_size, device)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_eer.append(val_eer)
        logger.info("epoch %d: train_loss %.4f val_loss %.4f val_eer %.4f", epoch + 1, train_loss, val_loss, val_eer)
        best = rank_epochs(history.val_eer, history.val_loss, config.keep_best)
        if epoch in best:
            kept[epoch] = _cpu_state(model)
        kept = {i: kept[i] for i in best if i in kept}
    best = rank_epochs(history.val_eer, history.val_loss, config.keep_best)
    model.load_state_dict(average_state_dicts([kept[i] for i in best]))
    history.averaged_epochs = [i + 1 for i in best]
    history.final_val_loss, history.final_val_eer = _evaluate(model, x_val, y_val, config.batch_size, device)
    note = "" if len(best) == config.keep_best else f"only {len(best)} epochs ran; all were averaged"
    metadata = {**model.describe(), "keep_best": config.keep_best, "averaged_epochs": history.averaged_epochs,
                "averaged_val_eer": [history.val_eer[i] for i in best],
                "averaged_val_loss": [history.val_loss[i] for i in best], "note": note,
                "val_eer": history.final_val_eer, "val_loss": history.final_val_loss, "train": asdict(config)}
    path = save_checkpoint(Path(checkpoint_dir) / f"avg_{config.keep_best}_best.pth", model, metadata)
    history.checkpoint_path = str(path)
    return history
