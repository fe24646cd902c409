"""Representation-based prototype explanations of a frozen spoofing detector (stage 2 of chapter 3).

Stage 1 is a trained detector, frozen. Stage 2 trains only an explanation module on the detector's
SSL frame embeddings: an importance network giving w(t) in [0, 1] per 20 ms frame, and two class
prototypes p_bonafide and p_spoof. The detector's score never enters the loss; only the embeddings and
the utterance labels do.

Which embeddings (``importance_layers``, ``prototype_layer``; ``SpoofDetector.layer_embeddings``):
the prototypes and the contrastive loss live in the encoder's local representation h(t) = z(t)
(``features``: the convolutional feature encoder's output, one receptive field of audio per frame,
25 ms by default, ``DetectorConfig.first_conv_kernel``), and the
importance network reads z(t) next to the contextual representation c(t) (``context``: the last
transformer layer). Why both: in c(t) every frame has seen the whole clip, so inside a partially
spoofed utterance the bona fide frames sit as near the spoof prototype as the spliced words and the
map cannot tell them apart (frame AUC within partial spoofs 0.60 in the full profile with c(t)
alone); in z(t) alone the frames of a spoof utterance's silence carry no evidence, yet the pooled
protocol counts them as spoofed. With the contrastive term on z(t) and c(t) as the network's
context (and the bona fide multiple-instance half below), stage 2 on the full profile's frozen
detector (ema, seed 0) went from 0.80 to 0.86 pooled frame AUC and from 0.60 to 0.73 within partial
spoofs (chapter 3's troubleshooting notes give the comparison).

With e(t) = h(t) / |h(t)| and p_c normalised, the frame-level contrastive loss for class c is

    l_t(c) = -log( exp(e(t).p_c / tau) / sum_k exp(e(t).p_k / tau) ),

and the stage-2 objective, averaged over valid frames and utterances, is

    L = mean_t [ w(t) l_t(y) + (1 - w(t)) l_t(bonafide) ]           (importance-weighted contrastive)
        + lambda_bonafide_reg * mean_t w(t)        on bona fide utterances
        + lambda_sparsity * mean_t w(t)            on spoof utterances
        + lambda_temporal_smooth * mean_t |w(t) - w(t-1)|
        + lambda_mil * (1 - mean of the top ``mil_fraction`` of w(t))   on spoof utterances
        + lambda_mil_bonafide * mean of the top ``mil_fraction`` of w(t) on bona fide utterances
        + lambda_mil_floor * max(0, mil_floor - the batch's mean over spoof utterances of that top mean).

The first term is the design note's sum_t w(t) l_t plus its complement: the frames the network marks
unimportant must be explained by the bona fide prototype. Without the complement, w = 0 everywhere
minimises sum_t w(t) l_t (the note's "importance all 0" failure). With it, the loss is linear in
each w(t) with slope l_t(y) - l_t(bonafide): on a spoof utterance a frame nearer the spoof prototype
pulls its w up and a frame nearer the bona fide prototype pulls it down, so neither all-zero nor
all-one is a minimum unless every frame sits on one side. On a bona fide utterance the first term
does not depend on w, and the regulariser drives w low and uniform, which is what the note expects
of bona fide speech.

That alone still lets w sink to zero when the embeddings carry little evidence (the slopes are then
near zero and the regularisers win; we saw it with an undertrained detector). The last term is the
multiple-instance assumption PartialSpoof's labels imply: a spoof utterance holds at least some
spoofed frames, so the most important tenth of its frames should have w near 1. With it, all-zero
importance costs ``lambda_mil`` on every spoof utterance, all-one costs the bona fide regulariser
and the complement term, and an uninformative encoder yields intermediate w rather than a collapse.
The last term is the assumption's other half: a bona fide utterance holds no spoofed frame, so even
its most important tenth should have w near 0. The mean-importance regulariser alone (weight 0.1)
leaves a few bona fide frames per clip near 1, and those are what the pooled frame AUC ranks above
the spoofed frames. Its default weight (1.0) is twice ``lambda_mil``, so where the embeddings carry
no evidence at all the two halves no longer favour intermediate w: the guarantee against a collapse
to 0 then rests on the evidence (the contrastive slopes), and holds as stated above only with
``lambda_mil_bonafide`` below ``lambda_mil``. The last term restores it at the default weights: a
floor under the spoof half. While the spoof utterances' most important tenth averages at least
``mil_floor`` (0.5) it is exactly zero and changes nothing (on chapter 3's full profile it never
bit: the maps are bit-identical without it); below, each unit of lost importance costs
``lambda_mil_floor`` (1.0) more, so with ``lambda_mil + lambda_mil_floor`` above ``lambda_mil_bonafide``
a shared level of importance that nothing separates settles at the floor instead of 0. The quick
profile's detector is at chance, and there every mode collapsed to w near 1e-5 without the floor
(non-degenerate share 0.0); with it the share is about 0.5. The share of frames with
0.05 < w < 0.95 (``nondegenerate_share``) is reported.

Prototype modes (``PrototypeManager``):

- ``ema`` (default): started from the global class means as ``fixed`` (``ema_init = "class_means"``,
  the default; with ``"batch"``, from the first batch's class means, spoof frames unweighted, which
  depend on the seed's shuffle and gave maps that varied more between seeds), then after each step
  p_c <- m p_c + (1 - m) mean_c with momentum m = ``ema_momentum`` (0.99), where mean_c is the
  batch's mean embedding of class c's frames (bona fide utterances' frames, spoof utterances'
  frames; ``ema_target = "class_means"``, the default). No gradient reaches the prototypes. With
  ``ema_target = "importance"``, mean_spoof is instead the importance-weighted mean of spoof
  utterances' frames (weights detached), so the spoof prototype follows the frames the network
  finds important. That loop reinforces itself: the prototype moves to the frames ranked highest,
  which then rank higher still. On chapter 3's full profile it turned the spoof prototype away from
  the bona fide one (cosine 0.09, against 0.985 for the class means) onto the most distinct spoofed
  speech, and pooled frame AUC fell from 0.905 to 0.677 (the notebook's troubleshooting notes).
- ``fixed`` (ablation): the global means of each class's frames over the training set (utterance
  labels only), computed once and never changed.
- ``learnable`` (fallback): parameters initialised from the global means, trained by backprop through
  the contrastive term.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audioxai.config import load_config
from audioxai.errors import ConfigError
from audioxai.models.detector import EMBEDDING_LAYERS
from audioxai.runtime import resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["PROTOTYPE_MODES", "EMA_INITS", "EMA_TARGETS", "Stage2ModelConfig", "Stage2TrainConfig", "Stage2Config", "load_stage2_config",
           "ImportanceNetwork", "PrototypeManager", "PrototypeExplainer", "Stage2History", "stage2_loss",
           "train_stage2", "nondegenerate_share", "detector_embeddings", "stage2_layers"]

PROTOTYPE_MODES = ("ema", "fixed", "learnable")
EMA_INITS = ("batch", "class_means")  # where the ema prototypes start (Stage2ModelConfig.ema_init)
EMA_TARGETS = ("class_means", "importance")  # what the ema prototypes move towards (Stage2ModelConfig.ema_target)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "xai_stage2.yaml"
BONAFIDE, SPOOF = 0, 1


@dataclass
class Stage2ModelConfig:
    """The XAI module and its loss (the design note's keys and defaults).

    Attributes:
        name: run name. pretrained_checkpoint: the frozen detector's file, relative to the
            checkpoint folder. prototype_mode: ``ema``, ``fixed`` or ``learnable``.
        importance_hidden_dim: width of the importance network. ema_momentum: m of the EMA update.
        ema_init: where the ``ema`` prototypes start: ``batch`` (the first training batch's class means)
            or ``class_means`` (the global class means over the training set, as ``fixed``); the first
            batch depends on the seed's shuffle, the global means do not.
        ema_target: what each ``ema`` step moves towards: ``class_means`` (the batch's mean of each class's
            frames) or ``importance`` (the spoof mean weighted by w(t); self-reinforcing, see above).
        temperature: tau of the contrastive loss. lambda_bonafide_reg, lambda_temporal_smooth,
            lambda_sparsity: regulariser weights (see the module docstring).
        lambda_mil, mil_fraction: weight of the multiple-instance term and the share of a spoof
            utterance's frames whose mean importance it pushes towards 1 (our addition; see above).
        lambda_mil_bonafide: weight of its bona fide half (the top ``mil_fraction`` pushed towards 0).
        lambda_mil_floor, mil_floor: weight of the hinge that keeps the spoof utterances' mean top
            ``mil_fraction`` importance (over the batch) at least ``mil_floor`` (our addition; see above).
        context_frames: kernel size of the importance network's temporal convolutions (odd).
        importance_layers: the SSL representations the importance network reads, concatenated
            (``features``, ``context``; see the module docstring).
        prototype_layer: the representation h(t) of the prototypes and the contrastive loss.
    """

    name: str = "xai_stage2"
    pretrained_checkpoint: str = "avg_5_best.pth"
    prototype_mode: str = "ema"
    importance_hidden_dim: int = 256
    ema_momentum: float = 0.99
    ema_init: str = "class_means"
    ema_target: str = "class_means"
    temperature: float = 0.07
    lambda_bonafide_reg: float = 0.1
    lambda_temporal_smooth: float = 0.1
    lambda_sparsity: float = 0.01
    lambda_mil: float = 0.5
    mil_fraction: float = 0.1
    lambda_mil_bonafide: float = 1.0
    lambda_mil_floor: float = 1.0
    mil_floor: float = 0.5
    context_frames: int = 3
    importance_layers: tuple[str, ...] = ("features", "context")
    prototype_layer: str = "features"


@dataclass
class Stage2TrainConfig:
    """Training of the XAI module: AdamW at ``lr`` (the importance network; ``learnable`` prototypes at
    ``prototype_lr``); the epoch with the lowest validation loss is kept."""

    lr: float = 5e-5
    prototype_lr: float = 1e-3
    num_epochs: int = 30
    batch_size: int = 32
    patience: int = 8
    seed: int = 0
    device: str = "auto"


@dataclass
class Stage2Config:
    model: Stage2ModelConfig = field(default_factory=Stage2ModelConfig)
    training: Stage2TrainConfig = field(default_factory=Stage2TrainConfig)


def load_stage2_config(path: str | os.PathLike[str] | None = DEFAULT_CONFIG, **overrides) -> Stage2Config:
    """``configs/xai_stage2.yaml`` (sections ``model`` and ``training``) with overrides such as
    ``model={"prototype_mode": "fixed"}``; unknown keys and wrong types are refused by name."""
    cfg = load_config(Stage2Config, path, **overrides)
    m = cfg.model
    if m.prototype_mode not in PROTOTYPE_MODES:
        raise ConfigError(f"model.prototype_mode {m.prototype_mode!r}: choose one of {', '.join(PROTOTYPE_MODES)}")
    if not (0.0 <= m.ema_momentum < 1.0):
        raise ConfigError(f"model.ema_momentum must be in [0, 1), got {m.ema_momentum}")
    if m.ema_init not in EMA_INITS:
        raise ConfigError(f"model.ema_init {m.ema_init!r}: choose one of {', '.join(EMA_INITS)}")
    if m.ema_target not in EMA_TARGETS:
        raise ConfigError(f"model.ema_target {m.ema_target!r}: choose one of {', '.join(EMA_TARGETS)}")
    if m.temperature <= 0:
        raise ConfigError(f"model.temperature must be positive, got {m.temperature}")
    if not (0.0 < m.mil_fraction <= 1.0):
        raise ConfigError(f"model.mil_fraction must be in (0, 1], got {m.mil_fraction}")
    if not (0.0 <= m.mil_floor <= 1.0):
        raise ConfigError(f"model.mil_floor must be in [0, 1], got {m.mil_floor}")
    for key in (f.name for f in fields(m) if f.name.startswith("lambda_")):
        if getattr(m, key) < 0:
            raise ConfigError(f"model.{key} must be zero or positive, got {getattr(m, key)}")
    if m.context_frames < 1 or m.context_frames % 2 == 0:
        raise ConfigError(f"model.context_frames must be odd and positive, got {m.context_frames}")
    m.importance_layers = tuple(m.importance_layers)
    for name in (*m.importance_layers, m.prototype_layer):
        if name not in EMBEDDING_LAYERS:
            raise ConfigError(f"model.importance_layers / model.prototype_layer: {name!r} is not an embedding layer; "
                              f"choose from {', '.join(EMBEDDING_LAYERS)}")
    if not m.importance_layers or len(set(m.importance_layers)) != len(m.importance_layers):
        raise ConfigError(f"model.importance_layers must name one or more distinct layers, got {list(m.importance_layers)}")
    return cfg


def stage2_layers(cfg: Stage2ModelConfig) -> tuple[str, ...]:
    """The layers stage 2 reads, in the order they are concatenated: the prototype layer, then the
    importance network's other layers."""
    return (cfg.prototype_layer, *(name for name in cfg.importance_layers if name != cfg.prototype_layer))


class ImportanceNetwork(nn.Module):
    """Embeddings -> w(t) in [0, 1]: layer norm, two temporal convolutions (``context_frames`` wide), a sigmoid.

    ``dims``: the widths of the concatenated representations it reads; each is standardised on its
    own first (no weights), so a wide layer does not drown a narrow one in the shared layer norm.
    """

    def __init__(self, dim: int, hidden: int = 256, context_frames: int = 3, dims: tuple[int, ...] | None = None) -> None:
        super().__init__()
        pad = context_frames // 2
        self.dims = tuple(dims) if dims else (dim,)
        if sum(self.dims) != dim:
            raise ConfigError(f"ImportanceNetwork: layer widths {self.dims} do not add up to {dim}")
        self.norm = nn.LayerNorm(dim)
        self.conv1 = nn.Conv1d(dim, hidden, context_frames, padding=pad)
        self.conv2 = nn.Conv1d(hidden, hidden, context_frames, padding=pad)
        self.out = nn.Linear(hidden, 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        if len(self.dims) > 1:
            embeddings = torch.cat([F.layer_norm(part, part.shape[-1:])
                                    for part in embeddings.split(self.dims, dim=-1)], dim=-1)
        x = self.norm(embeddings).transpose(1, 2)
        x = F.gelu(self.conv2(F.gelu(self.conv1(x)))).transpose(1, 2)
        return torch.sigmoid(self.out(x)).squeeze(-1)


class PrototypeManager(nn.Module):
    """Bona fide and spoof prototypes in one of ``PROTOTYPE_MODES`` (see the module docstring)."""

    def __init__(self, dim: int, mode: str = "ema", momentum: float = 0.99, ema_init: str = "class_means",
                 ema_target: str = "class_means") -> None:
        super().__init__()
        if mode not in PROTOTYPE_MODES:
            raise ConfigError(f"prototype mode {mode!r}: choose one of {', '.join(PROTOTYPE_MODES)}")
        if ema_init not in EMA_INITS:
            raise ConfigError(f"ema_init {ema_init!r}: choose one of {', '.join(EMA_INITS)}")
        if ema_target not in EMA_TARGETS:
            raise ConfigError(f"ema_target {ema_target!r}: choose one of {', '.join(EMA_TARGETS)}")
        self.mode, self.momentum, self.ema_init, self.ema_target = mode, momentum, ema_init, ema_target
        init = torch.zeros(2, dim)
        if mode == "learnable":
            self.prototypes = nn.Parameter(init)
        else:
            self.register_buffer("prototypes", init)
        self.register_buffer("initialised", torch.tensor(False))

    def initialise(self, class_means: torch.Tensor) -> None:
        """Global class means (``fixed``, ``learnable``, and ``ema`` with ``ema_init="class_means"``); ``ema``
        with ``ema_init="batch"`` starts from its first batch instead."""
        if self.mode != "ema" or self.ema_init == "class_means":
            with torch.no_grad():
                self.prototypes.copy_(class_means)
            self.initialised.fill_(True)

    def logits(self, embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
        """``cos(h(t), p_c) / tau`` for both classes: (B, F, 2)."""
        return F.normalize(embeddings, dim=-1) @ F.normalize(self.prototypes, dim=-1).T / temperature

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
               valid: torch.Tensor) -> None:
        """EMA step (``ema`` only) towards the batch's bona fide frames' mean and its spoof utterances' frames'
        mean, plain (``ema_target="class_means"``) or weighted by ``weights`` (``"importance"``)."""
        if self.mode != "ema":
            return
        e = F.normalize(embeddings, dim=-1)
        bona = valid & (labels[:, None] == BONAFIDE)
        spoof = (valid & (labels[:, None] == SPOOF)).to(e.dtype)
        if self.ema_target == "importance":
            spoof = spoof * weights.detach()
        new = self.prototypes.clone()
        if bona.any():
            new[BONAFIDE] = e[bona].mean(dim=0)
        if spoof.sum() > 0:
            new[SPOOF] = (e * spoof[..., None]).sum(dim=(0, 1)) / spoof.sum()
        if not bool(self.initialised):
            if bona.any() and spoof.sum() > 0:
                self.prototypes.copy_(new)
                self.initialised.fill_(True)
            return
        self.prototypes.mul_(self.momentum).add_((1 - self.momentum) * new)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1)


def stage2_loss(weights: torch.Tensor, proto_logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
                cfg: Stage2ModelConfig) -> dict[str, torch.Tensor]:
    """The stage-2 objective (module docstring) from importance ``weights`` (B, F), prototype logits
    (B, F, 2), utterance ``labels`` (B,) and ``valid`` frames (B, F); returns each term and ``total``.

    Nothing of the detector's classifier enters: only embeddings (through the logits) and labels.
    """
    log_p = proto_logits.log_softmax(dim=-1)
    l_true = -log_p.gather(-1, labels.view(-1, 1, 1).expand(-1, log_p.shape[1], 1)).squeeze(-1)
    l_bona = -log_p[..., BONAFIDE]
    contrastive = _masked_mean(weights * l_true + (1 - weights) * l_bona, valid)
    is_bona = labels[:, None] == BONAFIDE
    bona_reg = _masked_mean(weights, valid & is_bona)
    sparsity = _masked_mean(weights, valid & ~is_bona)
    both = valid[:, 1:] & valid[:, :-1]
    smooth = _masked_mean((weights[:, 1:] - weights[:, :-1]).abs(), both)
    k = max(1, int(round(cfg.mil_fraction * weights.shape[1])))
    top = weights.masked_fill(~valid, 0.0).topk(k, dim=1).values.mean(dim=1)
    spoof_utt = labels != BONAFIDE
    mil = floor = weights.new_zeros(())
    if spoof_utt.any():
        spoof_top = top[spoof_utt]
        mil = (1 - spoof_top).mean()
        floor = (cfg.mil_floor - spoof_top.mean()).clamp_min(0)
    mil_bona = top[~spoof_utt].mean() if (~spoof_utt).any() else weights.new_zeros(())
    total = (contrastive + cfg.lambda_bonafide_reg * bona_reg + cfg.lambda_sparsity * sparsity
             + cfg.lambda_temporal_smooth * smooth + cfg.lambda_mil * mil + cfg.lambda_mil_bonafide * mil_bona
             + cfg.lambda_mil_floor * floor)
    return {"total": total, "contrastive": contrastive, "bonafide_reg": bona_reg, "sparsity": sparsity,
            "temporal_smooth": smooth, "mil": mil, "mil_bonafide": mil_bona, "mil_floor": floor}


def nondegenerate_share(weights: torch.Tensor, valid: torch.Tensor | None = None, low: float = 0.05,
                        high: float = 0.95) -> float:
    """Share of (valid) frames whose importance lies strictly between ``low`` and ``high``."""
    inside = (weights > low) & (weights < high)
    if valid is not None:
        return float(inside[valid].double().mean())
    return float(inside.double().mean())


@torch.no_grad()
def detector_embeddings(detector: nn.Module, waveform: torch.Tensor, batch_size: int = 32,
                        device: str | torch.device = "cpu", layers: tuple[str, ...] = ("context",)) -> torch.Tensor:
    """The frozen detector's frame embeddings (N, F, D) on the CPU, computed in eval mode without gradients:
    the representations named in ``layers`` (``SpoofDetector.layer_embeddings``), concatenated in that order."""
    detector.eval()
    out = []
    for i in range(0, len(waveform), batch_size):
        parts = detector.layer_embeddings(waveform[i:i + batch_size].to(device), tuple(layers))
        out.append(torch.cat([parts[name] for name in layers], dim=-1).cpu())
    return torch.cat(out)


class PrototypeExplainer(nn.Module):
    """Importance network + prototypes on a frozen detector's embeddings; the stage-2 explanation module.

    Args:
        dim: width of the stage-2 embeddings (the ``stage2_layers`` concatenated).
        cfg: the model settings.
        layer_dims: width of each of ``stage2_layers(cfg)``, in that order (``SpoofDetector.layer_dim``);
            ``None`` reads the whole width as one representation, both the prototypes' and the
            importance network's.
    """

    def __init__(self, dim: int, cfg: Stage2ModelConfig, layer_dims: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.config = cfg
        layers = stage2_layers(cfg)
        self.layer_dims = None if layer_dims is None else tuple(int(d) for d in layer_dims)
        if layer_dims is None:
            self.slices = {name: slice(0, dim) for name in layers}
            widths = (dim,)
        else:
            if len(layer_dims) != len(layers) or sum(layer_dims) != dim:
                raise ConfigError(f"layer_dims {tuple(layer_dims)} do not fit the stage-2 layers {layers} "
                                  f"and embeddings {dim} wide: pass SpoofDetector.layer_dim of each layer")
            ends = torch.tensor(self.layer_dims).cumsum(0).tolist()
            self.slices = {name: slice(end - d, end) for name, d, end in zip(layers, self.layer_dims, ends)}
            widths = tuple(dict(zip(layers, self.layer_dims))[name] for name in cfg.importance_layers)
        self.importance_net = ImportanceNetwork(sum(widths), cfg.importance_hidden_dim, cfg.context_frames, widths)
        proto = self.slices[cfg.prototype_layer]
        self.prototypes = PrototypeManager(proto.stop - proto.start, cfg.prototype_mode, cfg.ema_momentum,
                                           cfg.ema_init, cfg.ema_target)

    def importance_input(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The part of the stage-2 embeddings the importance network reads."""
        if self.layer_dims is None:
            return embeddings
        return torch.cat([embeddings[..., self.slices[name]] for name in self.config.importance_layers], dim=-1)

    def prototype_space(self, embeddings: torch.Tensor) -> torch.Tensor:
        """h(t): the part of the stage-2 embeddings the prototypes and the contrastive loss live in."""
        return embeddings[..., self.slices[self.config.prototype_layer]]

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Frame importance w(t), (B, F)."""
        return self.importance_net(self.importance_input(embeddings))

    def prototype_logits(self, embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
        """``cos(h(t), p_c) / tau``, (B, F, 2), from the stage-2 embeddings."""
        return self.prototypes.logits(self.prototype_space(embeddings), temperature)

    def similarity(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each frame to each prototype, (B, F, 2) (bona fide, spoof)."""
        return self.prototype_logits(embeddings, 1.0)

    @torch.no_grad()
    def explain(self, detector: nn.Module, waveform: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """w(t) for raw audio: the frozen detector's embeddings, then the importance network; (N, F) on the CPU."""
        device = next(self.parameters()).device
        layers = stage2_layers(self.config)
        if self.layer_dims is None and len(layers) > 1:
            raise ConfigError(f"this explainer was built without layer_dims, so it cannot split the layers {layers}: "
                              f"build it with layer_dims, or compute the embeddings and call it directly")
        emb = detector_embeddings(detector, waveform, batch_size, device, layers)
        self.eval()
        return torch.cat([self(emb[i:i + batch_size].to(device)).cpu() for i in range(0, len(emb), batch_size)])


@dataclass
class Stage2History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_nondegenerate: list[float] = field(default_factory=list)
    best_epoch: int = 0


def _class_means(emb: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    e = F.normalize(emb, dim=-1)
    means = []
    for c in (BONAFIDE, SPOOF):
        sel = valid & (labels[:, None] == c)
        if not sel.any():
            raise ConfigError(f"the training set has no {'bona fide' if c == BONAFIDE else 'spoof'} utterance; "
                              "stage 2 needs both classes")
        means.append(e[sel].mean(dim=0))
    return torch.stack(means)


def train_stage2(train: tuple[torch.Tensor, torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 cfg: Stage2Config, layer_dims: tuple[int, ...] | None = None) -> tuple[PrototypeExplainer, Stage2History]:
    """Train the XAI module on precomputed frozen embeddings.

    Args:
        train, val: ``(embeddings (N, F, D), utterance labels (N,), valid frames (N, F) bool)``, from
            ``detector_embeddings`` (the detector itself never enters, so it cannot change).
        cfg: ``load_stage2_config()`` with any overrides.
        layer_dims: width of each of ``stage2_layers(cfg.model)`` in the embeddings (see
            ``PrototypeExplainer``); ``None`` for embeddings of one representation.

    Returns:
        The explainer with the weights of the epoch with the lowest validation loss, and the history.
    """
    m, t = cfg.model, cfg.training
    if train[0].ndim != 3 or train[0].shape[:2] != train[2].shape or len(train[1]) != len(train[0]):
        raise ConfigError("train must be (embeddings (N, F, D), labels (N,), valid (N, F))")
    seed_everything(t.seed)
    device = resolve_device(t.device)
    explainer = PrototypeExplainer(train[0].shape[-1], m, layer_dims).to(device)
    explainer.prototypes.initialise(_class_means(explainer.prototype_space(train[0]), *train[1:]).to(device))
    groups = [{"params": list(explainer.importance_net.parameters()), "lr": t.lr}]
    if prototype_params := list(explainer.prototypes.parameters()):  # learnable mode only: two vectors that
        groups.append({"params": prototype_params, "lr": t.prototype_lr})  # the network's small rate would barely move
    opt = torch.optim.AdamW(groups)
    gen = torch.Generator().manual_seed(t.seed)
    history, best, best_state, waited = Stage2History(), float("inf"), None, 0
    for epoch in range(t.num_epochs):
        explainer.train()
        order, losses = torch.randperm(len(train[0]), generator=gen), []
        for i in range(0, len(order), t.batch_size):
            idx = order[i:i + t.batch_size]
            emb, labels, valid = (x[idx].to(device) for x in train)
            h = explainer.prototype_space(emb)
            if not bool(explainer.prototypes.initialised):  # ema_init="batch": the first batch's class means
                explainer.prototypes.update(h, labels, torch.ones(valid.shape, device=device), valid)
            w = explainer(emb)
            loss = stage2_loss(w, explainer.prototypes.logits(h, m.temperature), labels, valid, m)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            explainer.prototypes.update(h, labels, w, valid)
            losses.append(loss.item())
        val_loss, share = _evaluate(explainer, val, m, t.batch_size, device)
        history.train_loss.append(sum(losses) / len(losses))
        history.val_loss.append(val_loss)
        history.val_nondegenerate.append(share)
        logger.info("stage 2 epoch %d: train %.4f val %.4f nondegenerate %.3f", epoch + 1, history.train_loss[-1],
                    val_loss, share)
        if val_loss < best:
            best, best_state, history.best_epoch, waited = val_loss, copy.deepcopy(explainer.state_dict()), epoch + 1, 0
        else:
            waited += 1
            if waited >= t.patience:
                break
    explainer.load_state_dict(best_state)
    return explainer.eval(), history


@torch.no_grad()
def _evaluate(explainer: PrototypeExplainer, data, m: Stage2ModelConfig, batch_size: int, device) -> tuple[float, float]:
    explainer.eval()
    total, count, weights, valids = 0.0, 0, [], []
    for i in range(0, len(data[0]), batch_size):
        emb, labels, valid = (x[i:i + batch_size].to(device) for x in data)
        w = explainer(emb)
        total += stage2_loss(w, explainer.prototype_logits(emb, m.temperature), labels, valid, m)["total"].item() * len(emb)
        count += len(emb)
        weights.append(w.cpu())
        valids.append(valid.cpu())
    return total / max(count, 1), nondegenerate_share(torch.cat(weights), torch.cat(valids))


def describe(cfg: Stage2Config) -> dict:
    """Plain-type settings for checkpoint metadata."""
    return asdict(cfg)
