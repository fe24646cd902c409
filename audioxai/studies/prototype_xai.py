"""The prototype-XAI study (chapter 3): a frozen spoofing detector explained frame by frame.

Pipeline: ``load_study_data`` builds the partial-spoof corpus (bona fide, partially and fully
spoofed utterances with 20 ms frame labels; held-out voices in ``test``, an unseen spoof type in
``test_unseen``); ``train_detector_stage`` trains stage 1 and saves ``avg_5_best.pth`` (average of
the 5 best epochs), which is then frozen; ``frozen_embeddings`` computes its frame embeddings once;
``train_explainers`` trains stage 2 per prototype mode and seed; ``baseline_maps`` gives Grad-CAM,
Integrated Gradients and attention rollout on the same frozen detector; ``localisation_table``,
``region_table`` and ``importance_profiles`` score every map against the frame ground truth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audioxai.config import load_config
from audioxai.data.spoofs import FRAME_SECONDS, SpoofSet, load_spoof_corpus, spoof_corpus
from audioxai.explain.frame_attributions import frame_attributions
from audioxai.explain.prototypes import (PROTOTYPE_MODES, PrototypeExplainer, Stage2History, detector_embeddings,
                                         load_stage2_config, nondegenerate_share, stage2_layers, train_stage2)
from audioxai.metrics.aggregate import bootstrap_ci
from audioxai.metrics.detection import REGIONS, equal_error_rate, frame_auc, frame_eer, region_scores
from audioxai.models.detector import CONV_KERNELS, DetectorConfig, SpoofDetector, load_detector
from audioxai.models.detector_training import DetectorTrainConfig, train_detector
from audioxai.runtime import resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["PrototypeStudyConfig", "make_config", "load_study_data", "train_detector_stage", "detector_scores",
           "frozen_embeddings", "stage2_layer_dims", "train_explainers", "prototype_maps", "baseline_maps", "localisation_table",
           "region_table", "importance_profiles", "ablation_table", "utterance_eer", "detector_eer_by_type",
           "frame_truth",
           "METHODS", "BASELINES"]

BASELINES = ("gradcam", "integrated_gradients", "attention_rollout")
METHODS = tuple(f"prototype_{m}" for m in PROTOTYPE_MODES) + BASELINES


@dataclass
class PrototypeStudyConfig:
    """Every knob of the chapter; the notebook's parameters map onto these.

    Attributes:
        num_voices, utterances_per_voice: corpus size (``audioxai.data.spoofs``).
        hidden_size, num_layers, conv_channels, conformer_layers: the detector's size
            (other settings: ``DetectorConfig``).
        encoder_norm: the feature encoder's normalisation, ``group`` (wav2vec2 Base: group norm in the
            first convolution; trains from scratch in a few epochs) or ``layer`` (XLS-R; in our runs it
            had not left chance after 4 epochs on 1,700 clips). Group norm makes the detector nearly
            blind to a global gain, which matters for Integrated Gradients from silence (see the chapter).
        first_conv_kernel: the first convolution's length in samples (wav2vec2: 10, a 25 ms receptive
            field; 634: 64 ms, which resolves the harmonics the mel vocoder smears). Ignored with
            ``encoder_checkpoint``.
        filterbank_init: start the first convolution as mel-spaced Gabor filters
            (``DetectorConfig.filterbank_init``). Ignored with ``encoder_checkpoint``.
        spectral_window: 0, or the window in samples of the fixed log-spectrum input added to the
            feature encoder's output (``DetectorConfig.spectral_window``; 1024 is the mel vocoder's
            own 64 ms frame). Applies with ``encoder_checkpoint`` too.
        spectral_norm: how that input is centred per bin, ``dataset`` (standardised with the training
            frames' statistics) or ``utterance`` (less each clip's mean, which cancels what a fully
            spoofed clip carries in every frame; ``DetectorConfig.spectral_norm``).
        centre_frames: centre each frame's receptive field on its 20 ms label frame by padding the
            waveform (``DetectorConfig.centre_frames``).
        encoder_checkpoint: a local wav2vec2/XLS-R folder (``config.json`` and weights, e.g. XLS-R 300M);
            when set, stage 1 fine-tunes it under the Conformer head (``SpoofDetector.from_pretrained``)
            instead of training the small encoder from scratch, and ``hidden_size``, ``num_layers``,
            ``conv_channels`` and ``encoder_norm`` come from the checkpoint. Nothing is downloaded.
        detector_epochs, detector_lr, batch_size: stage 1 training (the 5 best epochs averaged).
        detector_encoder_lr: the encoder's peak rate in stage 1 (``None``: ``detector_lr``); give a
            pretrained encoder a far smaller one (e.g. 1e-6).
        detector_noise_snr_db: range of the white-noise SNR of stage 1's augmentation, in dB
            (``DetectorTrainConfig.noise_snr_db``). The mel vocoder's change sits 10 dB under the
            speech in every band, so noise at 20 dB SNR covers it above 4 kHz.
        detector_speed_factors: speed perturbation of stage 1's training clips
            (``DetectorTrainConfig.speed_factors``; ``[1.0]``: none), which makes new voices of the
            training voices.
        stage2_epochs, stage2_lr: stage 2 training (other settings: configs/xai_stage2.yaml).
        seeds: stage-2 seeds of the ablation over prototype modes.
        ig_steps: Integrated Gradients steps.
        seed, device: the corpus and detector seed; placement.
    """

    num_voices: int = 60
    utterances_per_voice: int = 40
    hidden_size: int = 128
    num_layers: int = 2
    conv_channels: int = 64
    encoder_norm: str = "group"
    first_conv_kernel: int = CONV_KERNELS[0]
    filterbank_init: bool = False
    centre_frames: bool = False
    spectral_window: int = 0
    spectral_norm: str = "utterance"
    conformer_layers: int = 2
    encoder_checkpoint: str | None = None
    detector_epochs: int = 20
    detector_lr: float = 1e-3
    detector_encoder_lr: float | None = None
    detector_noise_snr_db: tuple[float, float] = (20.0, 50.0)
    detector_speed_factors: tuple[float, ...] = (1.0,)
    batch_size: int = 32
    stage2_epochs: int = 30
    stage2_lr: float = 5e-5
    seeds: tuple[int, ...] = (0, 1, 2)
    ig_steps: int = 50
    seed: int = 0
    device: str = "auto"


def make_config(**params) -> PrototypeStudyConfig:
    """``PrototypeStudyConfig`` from notebook parameters (lists become tuples; unknown names are refused)."""
    return load_config(PrototypeStudyConfig, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def load_study_data(cfg: PrototypeStudyConfig, progress: bool = False) -> dict[str, SpoofSet]:
    """``train``, ``val``, ``test`` (held-out voices, seen spoof types) and ``test_unseen`` (the unseen type)."""
    root = spoof_corpus(progress=progress, num_voices=cfg.num_voices, utterances_per_voice=cfg.utterances_per_voice,
                        seed=cfg.seed)
    return {s: load_spoof_corpus(root, s) for s in ("train", "val", "test", "test_unseen")}


def train_detector_stage(data: dict[str, SpoofSet], cfg: PrototypeStudyConfig,
                         checkpoint_dir: Path) -> tuple[SpoofDetector, object]:
    """Stage 1: train the detector, keep the average of its 5 best epochs (``avg_5_best.pth``), freeze it."""
    seed_everything(cfg.seed)
    if cfg.encoder_checkpoint:
        ignored = [f"{name}={getattr(cfg, name)!r}" for name in ("first_conv_kernel", "filterbank_init")
                   if getattr(cfg, name) != getattr(DetectorConfig, name)]  # the encoder's own fields
        if ignored:
            logger.warning("encoder_checkpoint is set, so %s do not apply: the checkpoint's feature encoder is used",
                           ", ".join(ignored))
        model = SpoofDetector.from_pretrained(Path(cfg.encoder_checkpoint).expanduser(),
                                              conformer_layers=cfg.conformer_layers, centre_frames=cfg.centre_frames,
                                              spectral_window=cfg.spectral_window, spectral_norm=cfg.spectral_norm)
    else:
        model = SpoofDetector(DetectorConfig(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                                             conv_channels=cfg.conv_channels, feat_extract_norm=cfg.encoder_norm,
                                             first_conv_kernel=cfg.first_conv_kernel, centre_frames=cfg.centre_frames,
                                             filterbank_init=cfg.filterbank_init,
                                             spectral_window=cfg.spectral_window, spectral_norm=cfg.spectral_norm,
                                             conformer_layers=cfg.conformer_layers))
    history = train_detector(model, (data["train"].waveform, data["train"].labels),
                             (data["val"].waveform, data["val"].labels),
                             DetectorTrainConfig(num_epochs=cfg.detector_epochs, lr=cfg.detector_lr,
                                                 encoder_lr=cfg.detector_encoder_lr,
                                                 batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device,
                                                 noise_snr_db=tuple(cfg.detector_noise_snr_db),
                                                 speed_factors=tuple(cfg.detector_speed_factors)),
                             checkpoint_dir)
    detector = load_detector(Path(checkpoint_dir) / "avg_5_best.pth").to(resolve_device(cfg.device))
    detector.requires_grad_(False)
    return detector.eval(), history


@torch.no_grad()
def detector_scores(detector: SpoofDetector, data: SpoofSet, batch_size: int = 32) -> torch.Tensor:
    """The detector's spoof probability per utterance (N,), on the CPU."""
    device = next(detector.parameters()).device
    out = [detector(data.waveform[i:i + batch_size].to(device)).softmax(dim=1)[:, 1].cpu()
           for i in range(0, len(data), batch_size)]
    return torch.cat(out)


def frame_truth(detector: SpoofDetector, data: SpoofSet) -> dict[str, torch.Tensor]:
    """The 20 ms ground truth at the detector's frames: each encoder frame takes the label frame its
    receptive field is centred in (``SpoofDetector.frame_centres``; frame k for the default field and
    for ``centre_frames``)."""
    centres = detector.frame_centres(data.waveform.shape[-1])
    label_frames = data.frame_labels.shape[1]
    index = (centres / (FRAME_SECONDS * data.sample_rate)).floor().long().clamp(0, label_frames - 1)
    return {"labels": data.frame_labels[:, index], "speech": data.speech_frames[:, index],
            "transition": data.transition_frames[:, index]}


def frozen_embeddings(detector: SpoofDetector, data: dict[str, SpoofSet],
                      cfg: PrototypeStudyConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per split ``(embeddings, utterance labels, valid frames)`` of the frozen detector, computed once:
    the layers of ``stage2_layers`` (configs/xai_stage2.yaml) concatenated, widths ``stage2_layer_dims``."""
    device = next(detector.parameters()).device
    layers = stage2_layers(load_stage2_config().model)
    out = {}
    for split, d in data.items():
        emb = detector_embeddings(detector, d.waveform, cfg.batch_size, device, layers)
        out[split] = (emb, d.labels, torch.ones(emb.shape[:2], dtype=torch.bool))
    return out


def stage2_layer_dims(detector: SpoofDetector) -> tuple[int, ...]:
    """Width of each layer ``frozen_embeddings`` concatenates, in its order."""
    return tuple(detector.layer_dim(name) for name in stage2_layers(load_stage2_config().model))


def train_explainers(embeddings: dict, cfg: PrototypeStudyConfig, layer_dims: tuple[int, ...],
                     modes: tuple[str, ...] = PROTOTYPE_MODES, model: dict | None = None,
                     ) -> dict[tuple[str, int], tuple[PrototypeExplainer, Stage2History]]:
    """Stage 2 for every prototype mode and seed in ``cfg.seeds``; keys ``(mode, seed)``.
    ``layer_dims``: ``stage2_layer_dims(detector)`` of the detector ``embeddings`` came from.
    ``model``: overrides of ``configs/xai_stage2.yaml``'s ``model`` section (e.g. ``{"ema_init": "class_means"}``)."""
    runs = {}
    for mode in modes:
        for seed in cfg.seeds:
            stage2 = load_stage2_config(model={**(model or {}), "prototype_mode": mode},
                                        training={"num_epochs": cfg.stage2_epochs, "lr": cfg.stage2_lr,
                                                  "batch_size": cfg.batch_size, "seed": seed, "device": cfg.device})
            runs[(mode, seed)] = train_stage2(embeddings["train"], embeddings["val"], stage2, layer_dims)
    return runs


@torch.no_grad()
def prototype_maps(explainer: PrototypeExplainer, embeddings: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """w(t) of precomputed embeddings, (N, F) on the CPU."""
    explainer.eval()
    device = next(explainer.parameters()).device
    return torch.cat([explainer(embeddings[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(embeddings), batch_size)])


def baseline_maps(detector: SpoofDetector, data: SpoofSet, cfg: PrototypeStudyConfig,
                  batch_size: int = 16) -> dict[str, torch.Tensor]:
    """Grad-CAM, Integrated Gradients and attention rollout maps of the spoof class, (N, F) each, on the CPU."""
    device = next(detector.parameters()).device
    maps: dict[str, list[torch.Tensor]] = {m: [] for m in BASELINES}
    for i in range(0, len(data), batch_size):
        x = data.waveform[i:i + batch_size].to(device)
        for method in BASELINES:
            kwargs = {"n_steps": cfg.ig_steps} if method == "integrated_gradients" else {}
            maps[method].append(frame_attributions(detector, x, method, **kwargs).detach().cpu())
    return {m: torch.cat(v) for m, v in maps.items()}


def localisation_table(maps: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Frame AUC and EER per method: pooled over every frame of every utterance (PartialSpoof's protocol,
    where a fully spoofed utterance's silence counts as spoofed), over speech frames only (where the
    spoof process left evidence), and within the partially spoofed utterances only."""
    partial = truth["labels"].any(dim=1) & ~truth["labels"].all(dim=1)
    speech = truth["speech"]
    rows = {}
    for method, w in maps.items():
        rows[method] = {"frame_auc": frame_auc(w, truth["labels"]), "frame_eer": frame_eer(w, truth["labels"]),
                        "frame_auc_speech": frame_auc(w, truth["labels"], speech),
                        "frame_auc_partial": frame_auc(w[partial], truth["labels"][partial]),
                        "frame_eer_partial": frame_eer(w[partial], truth["labels"][partial])}
    return pd.DataFrame(rows).T


def region_table(maps: dict[str, torch.Tensor], truth: dict[str, torch.Tensor], seed: int = 0) -> pd.DataFrame:
    """RCQ-style relative importance per region on the partially spoofed utterances: mean and 95% interval."""
    partial = truth["labels"].any(dim=1) & ~truth["labels"].all(dim=1)
    rows = []
    for method, w in maps.items():
        scores = region_scores(w[partial], truth["labels"][partial], truth["speech"][partial],
                               truth["transition"][partial])
        for region in REGIONS:
            values = scores[region].numpy()
            values = values[np.isfinite(values)]
            mean, low, high = bootstrap_ci(values, seed=seed) if len(values) else (np.nan, np.nan, np.nan)
            rows.append((method, region, mean, low, high))
    return pd.DataFrame(rows, columns=["method", "region", "mean", "ci_low", "ci_high"])


def importance_profiles(w: torch.Tensor, explainer: PrototypeExplainer, embeddings: torch.Tensor,
                        kinds: list[str]) -> pd.DataFrame:
    """Per utterance: total importance (mean w), spread (std of w over time), concentration (1 - normalised
    entropy of w / sum w: 0 uniform, 1 on one frame), temporal smoothness (mean |w(t) - w(t-1)|), and the
    spoof-minus-bona-fide prototype similarity in the important frames (w >= 0.5; NaN where none)."""
    p = w.double() / w.double().sum(dim=1, keepdim=True).clamp_min(1e-12)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=1) / np.log(w.shape[1])
    with torch.no_grad():
        sim = explainer.similarity(embeddings.to(next(explainer.parameters()).device)).cpu().double()
    margin = sim[..., 1] - sim[..., 0]
    important = w >= 0.5
    in_important = (margin * important).sum(dim=1) / important.sum(dim=1).clamp_min(1)
    in_important[important.sum(dim=1) == 0] = float("nan")
    return pd.DataFrame({"kind": kinds, "total": w.double().mean(dim=1).numpy(), "spread": w.double().std(dim=1).numpy(),
                         "concentration": (1 - entropy).numpy(),
                         "smoothness": (w[:, 1:] - w[:, :-1]).abs().double().mean(dim=1).numpy(),
                         "spoof_similarity_margin": in_important.numpy()})


def ablation_table(runs: dict, embeddings: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   truth: dict[str, torch.Tensor], seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per prototype mode over seeds: frame AUC and EER (pooled), non-degenerate share and the best epoch,
    as mean and 95% bootstrap interval over seeds (rows ``mode, score``); and the per-run table."""
    per_run = []
    for (mode, s), (explainer, history) in runs.items():
        w = prototype_maps(explainer, embeddings[0])
        per_run.append({"mode": mode, "seed": s, "frame_auc": frame_auc(w, truth["labels"]),
                        "frame_eer": frame_eer(w, truth["labels"]),
                        "nondegenerate_share": nondegenerate_share(w, embeddings[2]),
                        "best_epoch": history.best_epoch})
    per_run = pd.DataFrame(per_run)
    rows = []
    for mode, group in per_run.groupby("mode", sort=False):
        for score in ("frame_auc", "frame_eer", "nondegenerate_share", "best_epoch"):
            values = group[score].to_numpy(dtype=float)
            mean, low, high = bootstrap_ci(values, seed=seed) if len(values) > 1 else (values[0], values[0], values[0])
            rows.append((mode, score, mean, low, high, len(values)))
    return pd.DataFrame(rows, columns=["mode", "score", "mean", "ci_low", "ci_high", "seeds"]), per_run


def utterance_eer(detector: SpoofDetector, data: SpoofSet) -> float:
    """The detector's utterance-level EER on ``data``."""
    return equal_error_rate(detector_scores(detector, data), data.labels)


def detector_eer_by_type(detector: SpoofDetector, data: dict[str, SpoofSet]) -> pd.DataFrame:
    """Where the detector fails: per split and per (kind, spoof type), the EER of those spoofs against the
    split's bona fide clips, their number and mean spoof score, next to the bona fide mean score and the
    split's overall EER. A type that is hard on the training split too is underfitted, not overfitted."""
    rows = []
    for split, d in data.items():
        scores = detector_scores(detector, d)
        bona = [i for i, k in enumerate(d.kind) if k == "bonafide"]
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (kind, spoof_type) in enumerate(zip(d.kind, d.spoof_type)):
            if kind != "bonafide":
                groups.setdefault((kind, spoof_type), []).append(i)
        overall = equal_error_rate(scores, d.labels)
        for (kind, spoof_type), idx in sorted(groups.items()):
            labels = torch.cat([torch.zeros(len(bona)), torch.ones(len(idx))])
            rows.append({"split": split, "kind": kind, "spoof_type": spoof_type, "clips": len(idx),
                         "eer_vs_bonafide": equal_error_rate(scores[bona + idx], labels) if bona else float("nan"),
                         "mean_spoof_score": float(scores[idx].mean()),
                         "mean_bonafide_score": float(scores[bona].mean()) if bona else float("nan"),
                         "split_eer": overall})
    return pd.DataFrame(rows)

