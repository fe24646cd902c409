"""The L-MAC study (chapter 2): data, the classifier, the interpreter, baselines and their scores.

Pipeline: ``load_study_data`` mixes SynthDigits (or AudioMNIST) at 16 kHz with the training noises
(train, validation, in-domain test) and with a noise the classifier never hears (out-of-domain
test); ``train_classifier`` trains a ``HubertClassifier`` with noise remixed every epoch and saves
``hubert_classifier.pt``; ``train_interpreter`` trains L-MAC on the frozen classifier;
``explain_all`` gives every method's masks; ``score_masks`` scores them; ``domain_comparison`` does the
same with a temporal mask on the waveform (the design note's domain) instead of the STFT mask.

``score_masks`` takes the masks any method produced in L-MAC's domain (L-MAC's own or a gradient
baseline's from ``audioxai.explain.mask_baselines``) and returns one row per sample with:

- the mask faithfulness metrics of the L-MAC paper on the classifier's probabilities (softmax once,
  in float64): AI, AD, AG (x 100, percent), FF and Fid-In (``audioxai.metrics.mask_faithfulness``);
- sparseness (Gini) and complexity (entropy) of the mask;
- ground truth the published L-MAC evaluations lack: AUC and IoU (mask >= 0.5) of the mask against
  the spoken digit's time span and against the clean speech's ideal binary mask (time-frequency in
  the ``stft`` domain, per frame in the ``waveform`` domain), and the SI-SDR of the explanation audio
  x_in against the clean digit as it sits in the mixture (an objective listenability proxy).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from audioxai.config import load_config
from audioxai.data.audiomnist import AudioMNIST, audiomnist_root
from audioxai.data.noisy_digits import NoisyDigits, RemixingLoader, noisy_digits
from audioxai.data.phonemes import mean_per_phoneme
from audioxai.explain.lmac import LMACHistory, load_lmac_config, train_lmac
from audioxai.explain.mask_baselines import MASK_METHODS, attribution_masks
from audioxai.models.checkpoints import save_checkpoint
from audioxai.models.cnn import DigitCNN, first_pool_for
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig, SpectrogramClassifier
from audioxai.models.training import TrainConfig, TrainHistory, evaluate, fit
from audioxai.runtime import resolve_device, seed_everything

from audioxai.data.mixing import ideal_binary_mask
from audioxai.errors import ConfigError
from audioxai.explain.lmac import LMAC, temporal_ideal_binary_mask
from audioxai.metrics import (average_drop, average_gain, average_increase, complexity_entropy, faithfulness_on_spectra,
                              input_fidelity, mask_auc, mask_iou, si_sdr, sparseness)

logger = logging.getLogger(__name__)

__all__ = ["MASK_SCORES", "METHODS", "LMACStudyConfig", "make_config", "load_study_data", "train_classifier",
           "train_interpreter", "train_waveform_interpreter", "domain_comparison", "explain_all", "truth_masks", "score_masks", "phoneme_table", "at_rate",
           "train_cnn_classifier", "cnn_comparison"]

METHODS = ("lmac", *MASK_METHODS)


@dataclass(frozen=True)
class LMACStudyConfig:
    """Every knob of the chapter; the notebook's parameters map onto these.

    Attributes:
        num_speakers, repetitions: SynthDigits size (ignored with AUDIOMNIST_ROOT).
        noise_types, ood_noise_types: training noises; a noise the classifier never hears.
        snr_low, snr_high: SNR range in dB, drawn uniformly per clip.
        hidden_size, num_layers, conv_channels: the in-book HuBERT-architecture encoder.
        classifier_epochs, classifier_lr, batch_size, patience, max_train_samples: its training
            (one-cycle schedule, noise remixed every epoch).
        mask_domain, lmac_epochs, finetune_epochs, lmac_channels: L-MAC (other settings from configs/lmac.yaml).
        num_explained: test clips explained per condition.
        ig_steps, num_samples: Integrated Gradients steps; SmoothGrad and GradientSHAP samples.
        bank_seconds: length of each noise recording clips are cut from.
        seed, device: reproducibility and placement.
    """

    num_speakers: int = 60
    repetitions: int = 20
    noise_types: tuple[str, ...] = ("babble", "music", "white")
    ood_noise_types: tuple[str, ...] = ("traffic",)
    snr_low: float = -5.0
    snr_high: float = 10.0
    hidden_size: int = 96
    num_layers: int = 4
    conv_channels: int = 64
    classifier_epochs: int = 40
    classifier_lr: float = 2e-3
    batch_size: int = 32
    patience: int = 10
    max_train_samples: int | None = None
    mask_domain: str = "stft"
    lmac_epochs: int = 20
    finetune_epochs: int = 5
    lmac_channels: int = 24
    num_explained: int = 256
    ig_steps: int = 50
    num_samples: int = 8
    bank_seconds: float = 60.0
    seed: int = 0
    device: str = "auto"


def make_config(**params) -> LMACStudyConfig:
    """``LMACStudyConfig`` from notebook parameters (lists become tuples; unknown names are refused)."""
    return load_config(LMACStudyConfig, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def load_study_data(cfg: LMACStudyConfig) -> dict[str, NoisyDigits]:
    """``train``, ``val``, ``test`` in the training noises and ``test_ood`` in the unseen one, at 16 kHz.

    Each split has its own seed, so train and test never share noise; the two test sets hold the
    same clean clips.
    """
    root = audiomnist_root(num_speakers=cfg.num_speakers, repetitions=cfg.repetitions, seed=cfg.seed)
    splits = {s: AudioMNIST(root, split=s, sample_rate=16000, duration=1.0, seed=cfg.seed) for s in ("train", "val", "test")}
    snr = (cfg.snr_low, cfg.snr_high)
    data = {s: noisy_digits(d, cfg.noise_types, snr, seed=cfg.seed * 10 + i, bank_seconds=cfg.bank_seconds,
                            limit=cfg.max_train_samples if s == "train" else None)
            for i, (s, d) in enumerate(splits.items())}
    data["test_ood"] = noisy_digits(splits["test"], cfg.ood_noise_types, snr, seed=cfg.seed * 10 + 3,
                                    bank_seconds=cfg.bank_seconds)
    return data


def train_classifier(data: dict[str, NoisyDigits], cfg: LMACStudyConfig,
                     checkpoint_dir: Path) -> tuple[HubertClassifier, TrainHistory, dict[str, float]]:
    """Train the HuBERT-architecture classifier; save ``hubert_classifier.pt``; accuracy per test condition."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model = HubertClassifier(HubertClassifierConfig(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                                                    conv_channels=cfg.conv_channels))
    train = RemixingLoader(data["train"].clean, data["train"].labels, cfg.noise_types, (cfg.snr_low, cfg.snr_high),
                           seed=cfg.seed * 10, batch_size=cfg.batch_size, bank_seconds=cfg.bank_seconds)
    loader = lambda d: DataLoader(TensorDataset(d.mixture, d.labels), batch_size=64)  # noqa: E731
    history = fit(model, train, loader(data["val"]),
                  TrainConfig(num_epochs=cfg.classifier_epochs, lr=cfg.classifier_lr, batch_size=cfg.batch_size,
                              patience=cfg.patience, monitor="val_acc", seed=cfg.seed, lr_schedule="onecycle",
                              weight_decay=0.01), device, progress=False)
    accuracy = {c: evaluate(model, loader(data[c]), device)["accuracy"] for c in ("test", "test_ood")}
    save_checkpoint(Path(checkpoint_dir) / "hubert_classifier.pt", model,
                    {**model.describe(), "accuracy": accuracy, "config": asdict(cfg)})
    logger.info("classifier accuracy %s", accuracy)
    return model.eval(), history, accuracy


def train_interpreter(classifier: HubertClassifier, data: dict[str, NoisyDigits], cfg: LMACStudyConfig):
    """L-MAC on the frozen classifier (settings from configs/lmac.yaml, the study's overrides on top)."""
    from audioxai.explain.lmac import LMAC

    lmac_cfg = load_lmac_config(mask_domain=cfg.mask_domain, num_epochs=cfg.lmac_epochs,
                                finetune_epochs=cfg.finetune_epochs, channels=cfg.lmac_channels,
                                batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device)
    lmac = LMAC(classifier, lmac_cfg)
    train, val = data["train"], data["val"]
    history: LMACHistory = train_lmac(lmac, (train.mixture, train.clean, train.noise), (val.mixture,))
    return lmac.eval(), history


def train_waveform_interpreter(classifier: HubertClassifier, data: dict[str, NoisyDigits], cfg: LMACStudyConfig):
    """L-MAC with a temporal mask on the waveform (the design note's domain), else as ``train_interpreter``.

    The waveform decoder has fewer parameters than the STFT one (one output channel, not one per
    frequency bin), so the same channel width keeps it under the 10% limit.
    """
    return train_interpreter(classifier, data, replace(cfg, mask_domain="waveform"))


def domain_comparison(classifier: HubertClassifier, data: dict[str, NoisyDigits], cfg: LMACStudyConfig,
                      condition: str = "test") -> tuple[pd.DataFrame, dict[str, torch.Tensor], LMAC, LMACHistory]:
    """L-MAC and every baseline in the ``waveform`` domain, scored as in the STFT comparison.

    Trains a waveform-domain L-MAC on the frozen ``classifier``, explains the first ``num_explained``
    clips of ``condition`` with every method as temporal masks, and returns per-sample scores
    (columns ``method`` plus ``MASK_SCORES``; ``si_sdr`` is the masked audio against the clean digit),
    the masks, the interpreter and its training history.
    """
    lmac, history = train_waveform_interpreter(classifier, data, cfg)
    subset = data[condition].subset(list(range(min(cfg.num_explained, len(data[condition])))))
    masks = explain_all(lmac, subset.mixture, cfg)
    frames = [score_masks(lmac, subset.mixture, mask, subset.clean, subset.noise, subset.word_span).assign(method=method)
              for method, mask in masks.items()]
    return pd.concat(frames, ignore_index=True), masks, lmac, history


def explain_all(lmac, waveform: torch.Tensor, cfg: LMACStudyConfig, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Masks of every method in ``METHODS`` for ``waveform``, in L-MAC's domain, on the CPU."""
    device = resolve_device(cfg.device)
    lmac.to(device)
    masks: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}
    for i in range(0, len(waveform), batch_size):
        x = waveform[i:i + batch_size].to(device)
        masks["lmac"].append(lmac.explain(x)["mask"].cpu())
        for method in MASK_METHODS:
            masks[method].append(attribution_masks(lmac.classifier, x, method, lmac.config.mask_domain,
                                                   n_fft=lmac.config.n_fft, hop_length=lmac.config.hop_length,
                                                   ig_steps=cfg.ig_steps, num_samples=cfg.num_samples,
                                                   seed=cfg.seed + i).cpu())
    return {m: torch.cat(v) for m, v in masks.items()}

MASK_SCORES = ("AI", "AD", "AG", "FF", "fid_in", "sparseness", "complexity", "span_auc", "span_iou", "gt_auc",
               "gt_iou", "si_sdr")


def truth_masks(lmac: LMAC, clean: torch.Tensor, noise: torch.Tensor,
                spans: list[tuple[float, float] | None]) -> dict[str, torch.Tensor | None]:
    """Boolean ground truth in the mask's shape: ``span`` (the spoken digit) and ``ibm`` (the clean speech's IBM)."""
    cfg = lmac.config
    length, rate = clean.shape[-1], lmac.sample_rate
    if cfg.mask_domain == "stft":
        ibm = ideal_binary_mask(clean, noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db) > 0.5
        times = torch.arange(ibm.shape[-1], dtype=torch.float64) * cfg.hop_length / rate
    else:
        frames = temporal_ideal_binary_mask(clean, noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db)
        ibm = F.interpolate(frames[:, None], size=length, mode="nearest")[:, 0] > 0.5
        times = (torch.arange(length, dtype=torch.float64) + 0.5) / rate
    span = None
    if all(s is not None for s in spans):
        bounds = torch.tensor(spans, dtype=torch.float64)
        inside = (times[None] >= bounds[:, :1]) & (times[None] <= bounds[:, 1:])
        span = inside[:, None, :].expand_as(ibm) if ibm.ndim == 3 else inside
    return {"span": span, "ibm": ibm}


def _probabilities(classifier, waveform: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        logits = torch.cat([classifier(waveform[i:i + batch_size]) for i in range(0, len(waveform), batch_size)])
    return logits.double().softmax(dim=1)


def score_masks(lmac: LMAC, waveform: torch.Tensor, masks: torch.Tensor, clean: torch.Tensor, noise: torch.Tensor,
                spans: list[tuple[float, float] | None], batch_size: int = 64) -> pd.DataFrame:
    """Every score of ``MASK_SCORES`` for each sample (ground-truth columns NaN where the truth is unknown)."""
    if masks.shape[0] != waveform.shape[0] or clean.shape != waveform.shape or noise.shape != waveform.shape:
        raise ConfigError(f"masks, clean and noise must match the waveforms' batch: {tuple(masks.shape)}, "
                          f"{tuple(clean.shape)}, {tuple(noise.shape)} vs {tuple(waveform.shape)}")
    classifier = lmac.classifier
    device = next(lmac.decoder.parameters()).device
    waveform, masks, clean, noise = (t.to(device) for t in (waveform, masks, clean, noise))
    with torch.no_grad():
        x_in = torch.cat([lmac.apply_mask(waveform[i:i + batch_size], masks[i:i + batch_size])
                          for i in range(0, len(waveform), batch_size)])
        x_out = torch.cat([lmac.apply_mask(waveform[i:i + batch_size], 1 - masks[i:i + batch_size])
                           for i in range(0, len(waveform), batch_size)])
    p, p_in, p_out = (_probabilities(classifier, x, batch_size) for x in (waveform, x_in, x_out))
    target = p.argmax(dim=1)
    flat = masks.reshape(masks.shape[0], 1, -1)
    truth = truth_masks(lmac, clean, noise, spans)
    nan = torch.full((len(waveform),), float("nan"), dtype=torch.float64)
    scores = {
        "AI": 100 * average_increase(p, p_in, target), "AD": 100 * average_drop(p, p_in, target),
        "AG": 100 * average_gain(p, p_in, target), "FF": faithfulness_on_spectra(p, p_out, target),
        "fid_in": input_fidelity(p, p_in), "sparseness": sparseness(flat), "complexity": complexity_entropy(flat),
        "span_auc": mask_auc(masks, truth["span"]) if truth["span"] is not None else nan,
        "span_iou": mask_iou(masks, truth["span"]) if truth["span"] is not None else nan,
        "gt_auc": mask_auc(masks, truth["ibm"]), "gt_iou": mask_iou(masks, truth["ibm"]),
        "si_sdr": si_sdr(x_in, clean),
    }
    return pd.DataFrame({k: v.detach().double().cpu().numpy() for k, v in scores.items()})


def phoneme_table(masks: dict[str, torch.Tensor], data: NoisyDigits) -> pd.DataFrame:
    """Mean mask value on each phoneme of each explained clip: columns method, sample, digit, phoneme, class, mean.

    A time-frequency mask is first averaged over frequency; ``data`` holds the explained clips in
    the masks' order (SynthDigits' phoneme alignments; empty for real recordings).
    """
    duration = data.mixture.shape[-1] / data.sample_rate
    rows = []
    for method, mask in masks.items():
        profiles = mask.mean(dim=1) if mask.ndim == 3 else mask
        for i, phonemes in enumerate(data.phonemes[: len(profiles)]):
            for label, kind, value in mean_per_phoneme(profiles[i], phonemes, duration):
                rows.append((method, i, int(data.labels[i]), label, kind, value))
    return pd.DataFrame(rows, columns=["method", "sample", "digit", "phoneme", "class", "mean"])


def at_rate(data: NoisyDigits, sample_rate: int) -> NoisyDigits:
    """The same mixtures and parts resampled to ``sample_rate`` (spans and phonemes are in seconds, unchanged)."""
    import torchaudio

    if sample_rate == data.sample_rate:
        return data
    resample = lambda x: torchaudio.functional.resample(x, data.sample_rate, sample_rate)  # noqa: E731
    return NoisyDigits(resample(data.mixture), resample(data.clean), resample(data.noise), data.labels, data.snr_db,
                       data.noise_type, data.word_span, data.phonemes, sample_rate)


def train_cnn_classifier(data: dict[str, NoisyDigits], cfg: LMACStudyConfig, checkpoint_dir: Path,
                         n_mels: int = 64, sample_rate: int = 8000) -> tuple[SpectrogramClassifier, float]:
    """Chapter 1's spectrogram CNN on the same noisy digits at 8 kHz (log-mel inside), to show L-MAC is not tied
    to one backbone; saves ``cnn_classifier.pt`` and returns the model and its in-domain test accuracy."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    low = {s: at_rate(data[s], sample_rate) for s in ("train", "val", "test")}
    hop = sample_rate // (n_mels - 1)
    probe = SpectrogramClassifier(DigitCNN(), sample_rate, sample_rate, n_mels, 1024, hop)
    with torch.no_grad():
        spec = probe.spectrogram(low["train"].mixture[:256])
    model = SpectrogramClassifier(DigitCNN(input_mean=float(spec.mean()), input_std=float(spec.std()),
                                           first_pool=first_pool_for(n_mels)), sample_rate, sample_rate, n_mels, 1024, hop)
    loader = lambda d, shuffle: DataLoader(TensorDataset(d.mixture, d.labels), batch_size=cfg.batch_size,  # noqa: E731
                                           shuffle=shuffle, generator=torch.Generator().manual_seed(cfg.seed))
    fit(model, loader(low["train"], True), loader(low["val"], False),
        TrainConfig(num_epochs=cfg.classifier_epochs, lr=cfg.classifier_lr, batch_size=cfg.batch_size,
                    patience=cfg.patience, monitor="val_acc", seed=cfg.seed), device, progress=False)
    accuracy = evaluate(model, loader(low["test"], False), device)["accuracy"]
    save_checkpoint(Path(checkpoint_dir) / "cnn_classifier.pt", model, {**model.describe(), "accuracy": accuracy})
    return model.eval(), accuracy


def cnn_comparison(data: dict[str, NoisyDigits], cfg: LMACStudyConfig, checkpoint_dir: Path,
                   methods: tuple[str, ...] = ("saliency", "integrated_gradients", "gradcam"),
                   channels: int = 8) -> tuple[pd.DataFrame, float]:
    """L-MAC and a few baselines on the spectrogram CNN (8 kHz, STFT of 256 points, hop 64): mean scores.

    Returns the table (method x score, on the first ``num_explained`` in-domain test clips) and the
    CNN's test accuracy.
    """
    from audioxai.explain.lmac import LMAC

    cnn, accuracy = train_cnn_classifier(data, cfg, checkpoint_dir)
    lmac_cfg = load_lmac_config(mask_domain="stft", n_fft=256, hop_length=64, channels=channels,
                                num_epochs=cfg.lmac_epochs, finetune_epochs=0, batch_size=cfg.batch_size,
                                seed=cfg.seed, device=cfg.device)
    lmac = LMAC(cnn, lmac_cfg)
    train, val = at_rate(data["train"], 8000), at_rate(data["val"], 8000)
    train_lmac(lmac, (train.mixture,), (val.mixture,))
    lmac.eval()
    test = at_rate(data["test"].subset(list(range(min(cfg.num_explained, len(data["test"]))))), 8000)
    device = resolve_device(cfg.device)
    masks = {"lmac": lmac.explain(test.mixture.to(device))["mask"].cpu()}
    for method in methods:
        masks[method] = attribution_masks(cnn, test.mixture.to(device), method, "stft", n_fft=256, hop_length=64,
                                          ig_steps=cfg.ig_steps, num_samples=cfg.num_samples, seed=cfg.seed).cpu()
    rows = {m: score_masks(lmac, test.mixture, v, test.clean, test.noise, test.word_span).mean() for m, v in masks.items()}
    return pd.DataFrame(rows).T, accuracy
