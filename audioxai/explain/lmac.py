"""L-MAC: Listenable Maps for Audio Classifiers (Paissan, Ravanelli & Subakan, ICML 2024).

A post-hoc interpreter. The classifier f stays frozen; a light 1-D U-Net decoder reads f's hidden
states at chosen layers and outputs a mask m in [0, 1]. The masked audio ``x * m`` is the
explanation, one a person can listen to. Two mask domains:

- ``waveform``: a temporal mask, computed at the encoder's frame rate and linearly upsampled to
  every sample (the design note's choice): ``x_in = x * m``.
- ``stft``: a time-frequency mask on the STFT magnitude, resynthesised with the input's own phase
  (as SpeechBrain's recipe): ``x_in = iSTFT(m * STFT(x))``. Multiplying the complex STFT by a real
  mask scales the magnitude and keeps the phase.

Training minimises, per batch (c = the class f predicts on x, not the label):

    L = w_in CE(f(x_in), c) - w_out min(CE(f(x_out), c), cap) + w_l1 mean(m) + w_tv TV(m)

with ``x_out`` the same construction with ``1 - m``. The out-mask term rewards masks whose
complement no longer supports c; ``cap`` (default 2 ln C) bounds it, since an unbounded negative
cross-entropy can be driven to -inf by pushing the complement towards another class instead of
explaining this one. Default weights (``configs/lmac.yaml``) keep SpeechBrain's ratios: in : out =
20 : 1, and the L1 weight equals SpeechBrain's effective one per sample (0.4 x batch 16 / 4).

Optional fine-tuning for listenability (``guide_weight > 0``): where the masked mixture already
resembles the clean speech (cosine similarity of log1p magnitudes >= ``guide_threshold``), add
``guide_weight * BCE(m, IBM)`` towards the clean speech's ideal binary mask and drop the L1 term
for those samples (as SpeechBrain's L-MAC FT, with the oracle being the IBM rather than a threshold
on the clean magnitude).

The classifier receives no gradient updates: its parameters are frozen on construction and only
the decoder's are optimised. A decoder checkpoint records a fingerprint of the classifier's
weights and refuses to load on top of another classifier.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from audioxai.config import load_config
from audioxai.data.mixing import ideal_binary_mask
from audioxai.errors import ConfigError
from audioxai.models.checkpoints import load_checkpoint, save_checkpoint
from audioxai.runtime import resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["MASK_DOMAINS", "LMACConfig", "LMACDecoder", "LMAC", "LMACHistory", "train_lmac", "classifier_fingerprint",
           "temporal_ideal_binary_mask", "load_lmac_config"]

MASK_DOMAINS = ("waveform", "stft")
MAX_DECODER_RATIO = 0.10


@dataclass(frozen=True)
class LMACConfig:
    """Everything L-MAC needs; ``configs/lmac.yaml`` holds the book's values.

    Attributes:
        mask_domain: "waveform" or "stft".
        layers: classifier layers the decoder reads (1-based); None = the classifier's ``default_layers()``.
        channels: decoder width; depth: U-Net down/up steps.
        n_fft, hop_length: the STFT of the ``stft`` domain (Hann window, centred), and of the IBM.
        in_weight, out_weight, out_cap, l1_weight, tv_weight: the loss (out_cap None = 2 ln C).
        guide_weight, guide_threshold, local_criterion_db: listenability fine-tuning (off when weight 0).
        lr, num_epochs, batch_size, patience, finetune_epochs: optimisation (Adam).
        seed, device: reproducibility and placement.
    """

    mask_domain: str = "stft"
    layers: tuple[int, ...] | None = None
    channels: int = 24
    depth: int = 2
    n_fft: int = 512
    hop_length: int = 128
    in_weight: float = 1.0
    out_weight: float = 0.05
    out_cap: float | None = None
    l1_weight: float = 1.6
    tv_weight: float = 0.0
    guide_weight: float = 0.0
    guide_threshold: float = 0.6
    local_criterion_db: float = 0.0
    lr: float = 1e-3
    num_epochs: int = 20
    finetune_epochs: int = 0
    batch_size: int = 32
    patience: int = 5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.mask_domain not in MASK_DOMAINS:
            raise ConfigError(f"mask_domain={self.mask_domain!r}: choose one of {', '.join(MASK_DOMAINS)}")
        for name in ("channels", "depth", "n_fft", "hop_length", "num_epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("in_weight", "out_weight", "l1_weight", "tv_weight", "guide_weight", "lr"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be a non-negative number")


def load_lmac_config(path: str | os.PathLike[str] | None = None, **overrides) -> LMACConfig:
    """``LMACConfig`` from a YAML file (default: the project's ``configs/lmac.yaml`` when there is one) and overrides."""
    if path is None:
        from audioxai.book.results import project_root
        default = project_root() / "configs" / "lmac.yaml"
        path = default if default.is_file() else None
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if path is None:
        return load_config(LMACConfig, values)
    cfg = load_config(LMACConfig, path, **values)
    return replace(cfg, layers=tuple(cfg.layers)) if isinstance(cfg.layers, list) else cfg


def classifier_fingerprint(classifier: nn.Module) -> str:
    """A short SHA-256 of the classifier's parameter and buffer values (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(classifier.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _conv(c_in: int, c_out: int, kernel: int = 5, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2), nn.GroupNorm(1, c_out),
                         nn.GELU())


class LMACDecoder(nn.Module):
    """A light 1-D U-Net from classifier hidden states to a mask in [0, 1].

    Each chosen layer's states ``(B, T_l, C_l)`` are projected to ``channels`` (1x1 conv), brought to
    the longest layer's frame count (linear interpolation) and summed; a U-Net of ``depth`` strided
    down-steps and matching up-steps with skip connections refines them; the head interpolates to
    ``out_frames`` and maps to ``out_channels`` (1 for a temporal mask, the STFT bins for a
    time-frequency one), then a sigmoid.
    """

    def __init__(self, layer_channels: tuple[int, ...], out_channels: int, out_frames: int, channels: int = 32,
                 depth: int = 2) -> None:
        super().__init__()
        self.out_channels, self.out_frames = int(out_channels), int(out_frames)
        self.project = nn.ModuleList(nn.Conv1d(c, channels, 1) for c in layer_channels)
        self.down = nn.ModuleList(_conv(channels, channels, 5, 2) for _ in range(depth))
        self.bottleneck = _conv(channels, channels, 3)
        self.up = nn.ModuleList(_conv(2 * channels, channels, 3) for _ in range(depth))
        self.head = nn.Sequential(_conv(channels, channels, 3), nn.Conv1d(channels, out_channels, 1))

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        frames = max(s.shape[1] for s in states)
        h = sum(F.interpolate(p(s.transpose(1, 2)), size=frames, mode="linear", align_corners=False)
                for p, s in zip(self.project, states))
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for up, skip in zip(self.up, reversed(skips)):
            h = up(torch.cat([F.interpolate(h, size=skip.shape[-1], mode="linear", align_corners=False), skip], dim=1))
        h = F.interpolate(h, size=self.out_frames, mode="linear", align_corners=False)
        return torch.sigmoid(self.head(h))


def temporal_ideal_binary_mask(clean: torch.Tensor, noise: torch.Tensor, n_fft: int, hop_length: int,
                               local_criterion_db: float = 0.0) -> torch.Tensor:
    """(B, frames) 0/1: the frame's clean energy exceeds its noise energy by ``local_criterion_db``."""
    window = torch.hann_window(n_fft, device=clean.device)
    energy = [torch.stft(s, n_fft, hop_length, window=window, center=True, return_complex=True).abs().square().sum(1)
              for s in (clean, noise)]
    return (10 * torch.log10(energy[0].clamp_min(1e-12) / energy[1].clamp_min(1e-12)) > local_criterion_db).float()


class LMAC(nn.Module):
    """A frozen ``classifier`` and the decoder that explains it.

    The classifier must take ``(B, num_samples)`` waveforms and provide ``classify_with_hidden_states``,
    ``layer_channels``, ``default_layers``, ``sample_rate`` and ``num_samples`` (``HubertClassifier``
    and ``SpectrogramClassifier`` do). Its parameters are frozen here and it is kept in eval mode.
    """

    def __init__(self, classifier: nn.Module, config: LMACConfig = LMACConfig()) -> None:
        super().__init__()
        self.config = config
        self.classifier = classifier.eval()
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        self.layers = tuple(config.layers) if config.layers else tuple(classifier.default_layers())
        channels = classifier.layer_channels(self.layers)  # checks the layer indices
        self.num_samples, self.sample_rate = int(classifier.num_samples), int(classifier.sample_rate)
        if config.mask_domain == "stft":
            out_channels, out_frames = config.n_fft // 2 + 1, self.num_samples // config.hop_length + 1
        else:
            with torch.no_grad():
                probe = classifier.hidden_states(torch.zeros(1, self.num_samples), self.layers)
            out_channels, out_frames = 1, max(s.shape[1] for s in probe)
        self.decoder = LMACDecoder(channels, out_channels, out_frames, config.channels, config.depth)
        self.fingerprint = classifier_fingerprint(classifier)
        ratio = self.decoder_param_ratio()
        if ratio > MAX_DECODER_RATIO:
            raise ConfigError(f"the decoder has {ratio:.1%} of the classifier's parameters (at most "
                              f"{MAX_DECODER_RATIO:.0%}, so it cannot learn to classify): lower channels={config.channels}")

    def decoder_param_ratio(self) -> float:
        return sum(p.numel() for p in self.decoder.parameters()) / sum(p.numel() for p in self.classifier.parameters())

    def train(self, mode: bool = True) -> LMAC:  # the classifier stays in eval mode (frozen batch norm, no dropout)
        super().train(mode)
        self.classifier.eval()
        return self

    def _window(self, device) -> torch.Tensor:
        return torch.hann_window(self.config.n_fft, device=device)

    def stft(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.stft(waveform, self.config.n_fft, self.config.hop_length, window=self._window(waveform.device),
                          center=True, return_complex=True)

    def mask_and_logits(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask (``(B, T)`` for waveform, ``(B, F, frames)`` for stft) and the classifier's logits on x."""
        with torch.no_grad():
            logits, states = self.classifier.classify_with_hidden_states(waveform, self.layers)
        mask = self.decoder([s.detach() for s in states])
        if self.config.mask_domain == "waveform":
            mask = F.interpolate(mask, size=waveform.shape[-1], mode="linear", align_corners=False)
        return mask.squeeze(1) if self.config.mask_domain == "waveform" else mask, logits

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mask_and_logits(waveform)[0]

    def apply_mask(self, waveform: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x * m`` (waveform) or ``iSTFT(m * STFT(x))`` with x's phase (stft), at x's length."""
        if self.config.mask_domain == "waveform":
            if mask.shape != waveform.shape:
                raise ConfigError(f"a waveform mask must match the audio: {tuple(mask.shape)} vs {tuple(waveform.shape)}")
            return waveform * mask
        spec = self.stft(waveform)
        if mask.shape != spec.shape:
            raise ConfigError(f"an stft mask must be (batch, {spec.shape[1]} bins, {spec.shape[2]} frames), "
                              f"got {tuple(mask.shape)}")
        return torch.istft(spec * mask, self.config.n_fft, self.config.hop_length, window=self._window(waveform.device),
                           center=True, length=waveform.shape[-1])

    def explain(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mask, explanation audio ``x_in``, its complement ``x_out`` and the predicted class, without gradients."""
        with torch.no_grad():
            mask, logits = self.mask_and_logits(waveform)
            return {"mask": mask, "x_in": self.apply_mask(waveform, mask), "x_out": self.apply_mask(waveform, 1 - mask),
                    "target": logits.argmax(dim=1)}

    def loss(self, waveform: torch.Tensor, clean: torch.Tensor | None = None,
             noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The L-MAC objective and its terms for one batch (``clean``/``noise`` enable the guide term)."""
        cfg = self.config
        mask, logits = self.mask_and_logits(waveform)
        target = logits.argmax(dim=1)
        num_classes = logits.shape[1]
        ce_in = F.cross_entropy(self.classifier(self.apply_mask(waveform, mask)), target)
        ce_out = F.cross_entropy(self.classifier(self.apply_mask(waveform, 1 - mask)), target, reduction="none")
        cap = cfg.out_cap if cfg.out_cap is not None else 2 * math.log(num_classes)
        out_term = ce_out.clamp(max=cap).mean()
        l1 = mask.flatten(1).mean(dim=1)
        guided = torch.zeros_like(l1, dtype=torch.bool)
        guide = torch.zeros((), device=waveform.device)
        if cfg.guide_weight > 0 and clean is not None and noise is not None:
            guide, guided = self._guide(waveform, mask, clean, noise)
        tv = (mask.diff(dim=-1).abs().flatten(1).mean(dim=1)).mean() if cfg.tv_weight > 0 else torch.zeros_like(guide)
        l1_term = (l1 * (~guided)).mean()
        total = (cfg.in_weight * ce_in - cfg.out_weight * out_term + cfg.l1_weight * l1_term + cfg.tv_weight * tv
                 + cfg.guide_weight * guide)
        return {"loss": total, "ce_in": ce_in.detach(), "ce_out": ce_out.mean().detach(), "l1": l1.mean().detach(),
                "guided": guided.float().mean().detach(), "guide": guide.detach()}

    def _guide(self, waveform, mask, clean, noise):
        cfg = self.config
        if cfg.mask_domain == "stft":
            oracle = ideal_binary_mask(clean, noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db)
            masked = torch.log1p((mask * self.stft(waveform).abs()).flatten(1))
            reference = torch.log1p(self.stft(clean).abs().flatten(1))
        else:
            frames = temporal_ideal_binary_mask(clean, noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db)
            oracle = F.interpolate(frames[:, None], size=mask.shape[-1], mode="nearest").squeeze(1)
            masked, reference = (mask * waveform).abs(), clean.abs()
        similarity = F.cosine_similarity(masked, reference, dim=1)
        guided = similarity.detach() >= cfg.guide_threshold
        bce = F.binary_cross_entropy(mask.clamp(1e-6, 1 - 1e-6), oracle.to(mask), reduction="none").flatten(1).mean(1)
        return (bce * guided).mean(), guided

    def save(self, path: str | os.PathLike[str]) -> os.PathLike:
        """The decoder's weights, with the classifier fingerprint, layers and config (weights only)."""
        meta = {"classifier_fingerprint": self.fingerprint, "layers": list(self.layers),
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()}}
        return save_checkpoint(path, self.decoder, meta)

    def load_decoder(self, path: str | os.PathLike[str]) -> LMAC:
        """Load decoder weights saved by ``save``; refuses a decoder trained for another classifier."""
        _, meta = load_checkpoint(path)
        found = meta.get("classifier_fingerprint")
        if found != self.fingerprint:
            raise ConfigError(f"decoder checkpoint {path} was trained for classifier {found}, not this one "
                              f"({self.fingerprint}): train an L-MAC decoder for this classifier")
        if tuple(meta.get("layers", ())) != self.layers or meta.get("config", {}).get("mask_domain") != self.config.mask_domain:
            raise ConfigError(f"decoder checkpoint {path} reads layers {meta.get('layers')} in the "
                              f"{meta.get('config', {}).get('mask_domain')} domain; this L-MAC uses {list(self.layers)} "
                              f"in the {self.config.mask_domain} domain: build LMAC with the checkpoint's settings")
        load_checkpoint(path, self.decoder)
        return self


@dataclass
class LMACHistory:
    """Per-epoch training curves: mean loss and its terms on the training set, fidelity on validation."""

    train_loss: list[float] = field(default_factory=list)
    ce_in: list[float] = field(default_factory=list)
    ce_out: list[float] = field(default_factory=list)
    mask_mean: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_fid_in: list[float] = field(default_factory=list)
    stage: list[str] = field(default_factory=list)
    best_epoch: int = -1


def _batches(tensors: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator | None) -> Iterator:
    n = tensors[0].shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield tuple(t[idx] for t in tensors)


def _validate(lmac: LMAC, val: tuple[torch.Tensor, ...], batch_size: int, device) -> tuple[float, float]:
    lmac.eval()
    losses, agree, n = 0.0, 0.0, 0
    with torch.no_grad():
        for (x,) in _batches(val[:1], batch_size, None):
            x = x.to(device)
            out = lmac.loss(x)
            ex = lmac.explain(x)
            agree += float((lmac.classifier(ex["x_in"]).argmax(1) == ex["target"]).sum())
            losses += float(out["loss"]) * len(x)
            n += len(x)
    return losses / n, agree / n


def train_lmac(lmac: LMAC, train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...],
               progress: bool = False) -> LMACHistory:
    """Train the decoder (Adam), keeping the weights of the best validation loss; then optional fine-tuning.

    Args:
        train, val: ``(waveforms,)`` or ``(waveforms, clean, noise)``; the parts enable the guide term
            during the ``finetune_epochs`` that follow the main training.
    """
    cfg = lmac.config
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    lmac.to(device)
    before = {k: v.clone() for k, v in lmac.classifier.state_dict().items()}
    optimiser = torch.optim.Adam(lmac.decoder.parameters(), lr=cfg.lr)
    history = LMACHistory()
    g = torch.Generator().manual_seed(cfg.seed)
    stages = [("lmac", cfg.num_epochs)] + ([("finetune", cfg.finetune_epochs)] if cfg.finetune_epochs and len(train) == 3 else [])
    for stage, epochs in stages:
        best, best_state, waited = math.inf, None, 0
        for epoch in tqdm(range(epochs), desc=f"L-MAC {stage}", disable=not progress):
            lmac.train()
            sums, count = {"loss": 0.0, "ce_in": 0.0, "ce_out": 0.0, "l1": 0.0}, 0
            for batch in _batches(train, cfg.batch_size, g):
                batch = [t.to(device) for t in batch]
                parts = batch[1:] if stage == "finetune" else []
                out = lmac.loss(batch[0], *parts)
                optimiser.zero_grad(set_to_none=True)
                out["loss"].backward()
                optimiser.step()
                for k in sums:
                    sums[k] += float(out[k].detach()) * len(batch[0])
                count += len(batch[0])
            val_loss, val_fid = _validate(lmac, val, cfg.batch_size, device)
            history.train_loss.append(sums["loss"] / count)
            history.ce_in.append(sums["ce_in"] / count)
            history.ce_out.append(sums["ce_out"] / count)
            history.mask_mean.append(sums["l1"] / count)
            history.val_loss.append(val_loss)
            history.val_fid_in.append(val_fid)
            history.stage.append(stage)
            if stage == "finetune" or val_loss < best:  # fine-tuning trades loss for listenability: keep its last
                best, waited = val_loss, 0
                best_state = {k: v.clone() for k, v in lmac.decoder.state_dict().items()}
                history.best_epoch = len(history.train_loss) - 1
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
        if best_state is not None:
            lmac.decoder.load_state_dict(best_state)
    after = lmac.classifier.state_dict()
    if any(not torch.equal(before[k], after[k]) for k in before):
        raise RuntimeError("the classifier changed during L-MAC training; it must stay frozen")
    return history
