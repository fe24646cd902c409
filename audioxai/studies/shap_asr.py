"""The SHAP-for-ASR study (chapter 4): which parts of the audio each recognised word relied on.

Pipeline: ``load_corpus`` synthesises the sentence corpus (held-out voices in ``test``);
``train_recognizer`` trains the in-book ``Wav2Vec2ForCTC``, saves it as a Hugging Face directory and
reloads it through ``CTCRecognizer.from_pretrained`` (the path any local CTC checkpoint takes);
``build_testsets`` mixes the test utterances with the six noise types at each SNR (with IBM and IRM);
``recognition_table`` gives WER and confidence per sample; ``explain_time`` runs every estimator on
time segments of clean utterances (per-word log-probabilities and the transcript's log-likelihood);
``explain_time_frequency`` runs our KernelSHAP on mel-band x time patches of noisy mixtures and scores
them against the ideal masks; ``accuracy_table``, ``cost_table`` and ``mask_table`` summarise.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audioxai.config import load_config
from audioxai.data.asr_testset import ASRSample, ASRTestSetConfig, build_asr_testset
from audioxai.data.noise import NOISE_TYPES
from audioxai.data.sentences import SentenceItem, load_sentence_corpus, sentence_corpus
from audioxai.errors import ConfigError
from audioxai.explain.shap_asr import ESTIMATORS, MAX_EXACT_FEATURES, AudioFeatures, AudioGame, ShapleyExplanation
from audioxai.metrics.aggregate import bootstrap_ci
from audioxai.metrics.asr_attribution import (align_words, cross_condition_consistency, mask_correlation,
                                              mass_correlations, patch_mask_means, phoneme_attribution_accuracy,
                                              speech_noise_identification_accuracy, word_attribution_accuracy)
from audioxai.metrics.wer import utterance_wer, word_error_rate
from audioxai.models.asr import ASRConfig, CTCRecognizer
from audioxai.models.ctc_scores import confidence, word_log_prob_fn
from audioxai.models.asr_training import ASRHistory, ASRTrainConfig, train_asr
from audioxai.runtime import resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["ShapASRStudyConfig", "make_config", "load_corpus", "train_recognizer", "build_testsets",
           "recognition_table", "wer_by_noise", "TimeExplanation", "explain_time", "pooled_accuracy", "accuracy_table",
           "cost_table",
           "tf_samples", "explain_time_frequency", "mask_table", "mass_table", "TIME_ESTIMATORS"]

#: Estimators run on the fixed time windows, in table order (exact only when M <= exact_max_features).
TIME_ESTIMATORS = ("exact_shapley", "kernel_shap", "shap_kernel", "shap_partition", "lime", "integrated_gradients",
                   "shap_gradient_explainer", "shap_deep_explainer")


@dataclass
class ShapASRStudyConfig:
    """Every knob of the chapter; the notebook's parameters map onto these.

    Attributes:
        num_sentences, num_speakers: the sentence corpus (speakers split 3:1:1 into train, val, test).
        hidden_size, num_layers, num_heads, intermediate_size, hidden_dropout, mask_time_prob: the
            recogniser (other settings: ``ASRConfig``).
        num_epochs, lr, batch_size, noise_prob, speed_factors: its training (noise of all six kinds at
            5-30 dB SNR in a share ``noise_prob`` of the utterances; speed perturbation; ``ASRTrainConfig``).
        max_val_utterances: validation utterances scored after every epoch (the best epoch is kept).
        noise_types, snrs_db, max_test_utterances: the WER test sets (every utterance clean and mixed
            with each noise type at each SNR).
        num_explained: clean test utterances explained over time.
        num_segments: fixed time windows per utterance (the main time features).
        exact_max_features: exact Shapley values run when M is at most this (2^M evaluations).
        budget: coalitions (or samples) per explanation for KernelSHAP (ours and shap's), LIME and the
            Partition explainer, so their costs compare at one budget.
        ig_steps, gradient_samples: Integrated Gradients steps; GradientExplainer samples.
        replacement: what a removed feature becomes: ``silence``, ``noise`` or ``mean``.
        num_bands, num_windows: time-frequency patches (mel-spaced bands x time windows).
        tf_snr_db, tf_utterances: mixtures explained over time-frequency patches, per noise type.
        pocketsphinx_utterances, pocketsphinx_explained, pocketsphinx_budget: clean test utterances
            pocketsphinx transcribes, how many of them are explained, and coalitions per explanation (it
            decodes one utterance at a time, about 0.1 s each, so fewer).
        seed, device: corpus, weights and sampling seed; placement.
    """

    num_sentences: int = 4000
    num_speakers: int = 99
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    hidden_dropout: float = 0.1
    mask_time_prob: float = 0.05
    num_epochs: int = 14
    lr: float = 3e-3
    batch_size: int = 8
    noise_prob: float = 0.5
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    max_val_utterances: int = 150
    noise_types: tuple[str, ...] = ("white", "pink", "babble", "music", "traffic", "wind")
    snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0)
    max_test_utterances: int = 200
    num_explained: int = 30
    num_segments: int = 12
    exact_max_features: int = 12
    budget: int = 1024
    ig_steps: int = 32
    gradient_samples: int = 64
    replacement: str = "silence"
    num_bands: int = 8
    num_windows: int = 8
    tf_snr_db: float = 5.0
    tf_utterances: int = 10
    pocketsphinx_utterances: int = 20
    pocketsphinx_explained: int = 10
    pocketsphinx_budget: int = 128
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.exact_max_features > MAX_EXACT_FEATURES:
            raise ConfigError(f"exact_max_features={self.exact_max_features}: at most {MAX_EXACT_FEATURES} "
                              f"(2^M model evaluations per explanation)")
        unknown = [k for k in self.noise_types if k not in NOISE_TYPES]
        if unknown:
            raise ConfigError(f"noise_types {unknown} unknown: choose from {', '.join(NOISE_TYPES)}")


def make_config(**params) -> ShapASRStudyConfig:
    """``ShapASRStudyConfig`` from notebook parameters (lists become tuples; unknown names are refused)."""
    return load_config(ShapASRStudyConfig, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def load_corpus(cfg: ShapASRStudyConfig, progress: bool = False) -> dict[str, list[SentenceItem]]:
    """The sentence corpus's ``train``, ``val`` and ``test`` (held-out voices) items."""
    root = sentence_corpus(progress=progress, num_sentences=cfg.num_sentences, num_speakers=cfg.num_speakers,
                           seed=cfg.seed)
    return {s: load_sentence_corpus(root, s) for s in ("train", "val", "test")}


def train_recognizer(corpus: dict[str, list[SentenceItem]], cfg: ShapASRStudyConfig,
                     checkpoint_dir: Path) -> tuple[CTCRecognizer, ASRHistory]:
    """Train the recogniser, save it as a Hugging Face directory, and reload it the way any local CTC
    checkpoint loads (``CTCRecognizer.from_pretrained``); the reloaded model is returned, in eval mode."""
    seed_everything(cfg.seed)
    model = CTCRecognizer.from_config(ASRConfig(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                                                num_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                                                hidden_dropout=cfg.hidden_dropout, mask_time_prob=cfg.mask_time_prob))
    history = train_asr(model, corpus["train"], corpus["val"][: cfg.max_val_utterances],
                        ASRTrainConfig(num_epochs=cfg.num_epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
                                       noise_prob=cfg.noise_prob, speed_factors=tuple(cfg.speed_factors),
                                       device=cfg.device))
    folder = model.save_pretrained(Path(checkpoint_dir) / "asr")
    recognizer = CTCRecognizer.from_pretrained(folder).to(resolve_device(cfg.device)).eval()
    recognizer.requires_grad_(False)
    return recognizer, history


def build_testsets(corpus: dict[str, list[SentenceItem]], cfg: ShapASRStudyConfig) -> list[ASRSample]:
    """Held-out-voice utterances, clean and mixed with every noise type at every SNR, with IBM and IRM."""
    return build_asr_testset(corpus["test"], ASRTestSetConfig(noise_types=tuple(cfg.noise_types),
                                                              snrs_db=tuple(cfg.snrs_db), seed=cfg.seed,
                                                              max_utterances=cfg.max_test_utterances))


@torch.no_grad()
def recognition_table(recognizer: CTCRecognizer, samples: list[ASRSample]) -> pd.DataFrame:
    """One row per sample: its metadata, the hypothesis, the utterance WER and the model's confidence."""
    rows = []
    for s in samples:
        lp = recognizer.log_probs(s.waveform[None].to(recognizer.device))[0]
        hyp = recognizer.greedy_decode(lp[None])[0]
        rows.append({**s.metadata, "reference": s.text, "hypothesis": hyp, "wer": utterance_wer(s.text, hyp),
                     "confidence": confidence(lp)})
    return pd.DataFrame(rows)


def wer_by_noise(table: pd.DataFrame) -> tuple[float, dict[str, dict[str, float]]]:
    """Corpus WER on the clean samples, and ``{noise: {snr: WER}}`` for the mixtures."""
    def corpus_wer(part: pd.DataFrame) -> float:
        return word_error_rate(list(part["reference"]), list(part["hypothesis"]))

    clean = table[table["noise_type"] == "clean"]
    noisy = table[table["noise_type"] != "clean"]
    by_noise = {noise: {f"{snr:g}": corpus_wer(g) for snr, g in part.groupby("snr_db")}
                for noise, part in noisy.groupby("noise_type")}
    return corpus_wer(clean), by_noise


@dataclass
class TimeExplanation:
    """Every estimator's explanation of one utterance over fixed time windows, and the ground truth."""

    sample: ASRSample
    hypothesis: str
    words: list[str]
    features: AudioFeatures
    explanations: dict[str, ShapleyExplanation]
    word_intervals: list[tuple[float, float] | None]
    phoneme_features: AudioFeatures | None = None
    phoneme_explanation: ShapleyExplanation | None = None
    output_names: list[str] = field(default_factory=list)
    transcript_source: str = "hypothesis"


def _value_function(recognizer: CTCRecognizer, sample: ASRSample, x: torch.Tensor):
    """The per-word value function of the greedy hypothesis; of the reference transcript when the
    hypothesis is empty (an undertrained model writes nothing), with the source named."""
    value_fn, aligned = word_log_prob_fn(recognizer, x)
    if aligned:
        return value_fn, aligned, "hypothesis"
    logger.info("%s: empty hypothesis, explaining the reference transcript", sample.id)
    value_fn, aligned = word_log_prob_fn(recognizer, x, sample.text)
    return value_fn, aligned, "reference"


def _estimator_kwargs(name: str, cfg: ShapASRStudyConfig) -> dict:
    return {"kernel_shap": {"num_coalitions": cfg.budget, "seed": cfg.seed},
            "shap_kernel": {"nsamples": cfg.budget, "seed": cfg.seed},
            "shap_partition": {"max_evals": cfg.budget, "seed": cfg.seed},
            "lime": {"num_samples": cfg.budget, "seed": cfg.seed},
            "integrated_gradients": {"steps": cfg.ig_steps},
            "shap_gradient_explainer": {"nsamples": cfg.gradient_samples, "seed": cfg.seed}}.get(name, {})


class _ScoreModule(torch.nn.Module):
    """A value function with its recogniser as a child module, so shap's DeepExplainer sees (and applies
    its per-layer rules to) the recogniser's layers rather than treating the function as opaque."""

    def __init__(self, recognizer: CTCRecognizer, value_fn) -> None:
        super().__init__()
        self.recognizer, self.value_fn = recognizer, value_fn

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.value_fn(waveforms)


def _game(recognizer: CTCRecognizer, waveform: torch.Tensor, features: AudioFeatures, value_fn,
          cfg: ShapASRStudyConfig) -> AudioGame:
    return AudioGame(waveform, features, _ScoreModule(recognizer, value_fn), replacement=cfg.replacement,
                     batch_size=64, device=recognizer.device, seed=cfg.seed)


def explain_time(recognizer: CTCRecognizer, samples: list[ASRSample], cfg: ShapASRStudyConfig,
                 estimators: tuple[str, ...] = TIME_ESTIMATORS) -> list[TimeExplanation]:
    """Explain each sample's hypothesis words and transcript log-likelihood over ``cfg.num_segments``
    windows with every estimator, and with our KernelSHAP over the reference phoneme segments.

    Hypothesis words are paired with reference words (Levenshtein); a paired word's interval is the
    reference word's eSpeak interval. When the hypothesis is empty the reference transcript is explained
    instead (``transcript_source``).
    """
    out = []
    for s in samples:
        x = s.waveform.to(recognizer.device)
        value_fn, aligned, source = _value_function(recognizer, s, x)
        hyp = " ".join(w.word for w in aligned)
        features = AudioFeatures.time_segments(x.numel(), recognizer.sample_rate, num_segments=cfg.num_segments)
        explanations = {}
        for name in estimators:
            if name == "exact_shapley" and features.num_features > cfg.exact_max_features:
                continue
            game = _game(recognizer, x, features, value_fn, cfg)
            explanations[name] = ESTIMATORS[name](game, **_estimator_kwargs(name, cfg))
        phonemes = [(p.label, p.start, p.end) for p in s.phonemes]
        ph_features = AudioFeatures.time_segments(x.numel(), recognizer.sample_rate, boundaries=phonemes)
        ph_game = _game(recognizer, x, ph_features, value_fn, cfg)
        ph_expl = ESTIMATORS["kernel_shap"](ph_game, **_estimator_kwargs("kernel_shap", cfg))
        intervals = align_words([w.word for w in aligned], s.words)
        out.append(TimeExplanation(s, hyp, [w.word for w in aligned], features, explanations, intervals, ph_features,
                                   ph_expl, [w.word for w in aligned] + ["(transcript)"], source))
    return out


def pooled_accuracy(scores: list[tuple[float, int]], seed: int = 0) -> dict[str, float]:
    """Accuracy pooled over words from per-utterance ``(accuracy, paired words)``, and the mean over
    utterances with its 95% bootstrap interval (utterances without a paired word are left out)."""
    kept = [(acc, n) for acc, n in scores if n]
    words = sum(n for _, n in kept)
    mean, low, high = bootstrap_ci([acc for acc, _ in kept], seed=seed)
    return {"word_accuracy": sum(acc * n for acc, n in kept) / words if words else math.nan,
            "utterance_mean": mean, "ci_low": low, "ci_high": high, "words": words}


def _paired(intervals: list) -> int:
    return sum(i is not None for i in intervals)


def accuracy_table(explained: list[TimeExplanation], seed: int = 0) -> pd.DataFrame:
    """Per estimator: word attribution accuracy over windows (pooled over words; mean and 95% bootstrap
    interval over utterances); and, for our KernelSHAP, the same against phoneme segments."""
    rows = []
    names = sorted({n for e in explained for n in e.explanations}, key=lambda n: TIME_ESTIMATORS.index(n))
    for name in names:
        scores = [(word_attribution_accuracy([e.explanations[name].values[:, k] for k in range(len(e.words))],
                                             e.features.bounds, e.word_intervals), _paired(e.word_intervals))
                  for e in explained if name in e.explanations and not e.explanations[name].error]
        rows.append({"estimator": name, "features": "windows", **pooled_accuracy(scores, seed)})
    scores = [(phoneme_attribution_accuracy([e.phoneme_explanation.values[:, k] for k in range(len(e.words))],
                                            [b[:2] for b in e.phoneme_features.bounds], e.word_intervals),
               _paired(e.word_intervals)) for e in explained]
    rows.append({"estimator": "kernel_shap", "features": "phonemes", **pooled_accuracy(scores, seed)})
    return pd.DataFrame(rows)


def _agreement(values: torch.Tensor, reference: torch.Tensor) -> float:
    """Pearson correlation of two (M, K) value arrays over all their entries."""
    a, b = values.flatten().double(), reference.flatten().double()
    if not torch.isfinite(a).all() or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def cost_table(explained: list[TimeExplanation]) -> pd.DataFrame:
    """Per estimator: mean seconds and model evaluations per explanation, the largest additivity error
    over every explained output of every utterance, the mean correlation of its values with the exact
    Shapley values (where those were computed), and how many explanations failed."""
    rows = []
    for name in sorted({n for e in explained for n in e.explanations}, key=lambda n: TIME_ESTIMATORS.index(n)):
        ex = [e.explanations[name] for e in explained if name in e.explanations]
        ok = [x for x in ex if not x.error]
        agreement = [_agreement(e.explanations[name].values, e.explanations["exact_shapley"].values)
                     for e in explained if name in e.explanations and "exact_shapley" in e.explanations]
        rows.append({"estimator": name, "seconds": float(np.mean([x.seconds for x in ex])),
                     "evaluations": float(np.mean([x.num_evaluations for x in ex])),
                     "additivity_max_error": max((x.max_additivity_error for x in ok), default=math.nan),
                     "correlation_with_exact": float(np.nanmean(agreement)) if agreement else math.nan,
                     "failed": len(ex) - len(ok), "error": next((x.error for x in ex if x.error), "")})
    return pd.DataFrame(rows)


@dataclass
class TFExplanation:
    """Our KernelSHAP of one mixture's transcript log-likelihood over time-frequency patches."""

    sample: ASRSample
    features: AudioFeatures
    explanation: ShapleyExplanation
    ibm_means: torch.Tensor
    irm_means: torch.Tensor


def tf_samples(samples: list[ASRSample], cfg: ShapASRStudyConfig) -> list[ASRSample]:
    """The mixtures at ``cfg.tf_snr_db`` of the first ``cfg.tf_utterances`` utterances, every noise type."""
    if cfg.tf_snr_db not in cfg.snrs_db:
        raise ConfigError(f"tf_snr_db={cfg.tf_snr_db} is not one of snrs_db={list(cfg.snrs_db)}: pick one of them")
    utterances = list(dict.fromkeys(s.metadata["utterance"] for s in samples))[: cfg.tf_utterances]
    return [s for s in samples if s.metadata["utterance"] in utterances and s.noise_type != "clean"
            and s.snr_db == cfg.tf_snr_db]


def explain_time_frequency(recognizer: CTCRecognizer, samples: list[ASRSample],
                           cfg: ShapASRStudyConfig) -> list[TFExplanation]:
    """Mel-band x time-window SHAP values of the transcript's log-likelihood (the hypothesis of the
    mixture, or the reference when the hypothesis is empty), with the ideal masks' mean per patch."""
    out = []
    for s in samples:
        x = s.waveform.to(recognizer.device)
        value_fn, _, _ = _value_function(recognizer, s, x)
        features = AudioFeatures.time_frequency_patches(x.numel(), recognizer.sample_rate, cfg.num_bands,
                                                        cfg.num_windows)
        game = _game(recognizer, x, features, lambda w: value_fn(w)[:, -1:], cfg)
        ex = ESTIMATORS["kernel_shap"](game, **_estimator_kwargs("kernel_shap", cfg))
        out.append(TFExplanation(s, features, ex, patch_mask_means(s.ibm, features.regions),
                                 patch_mask_means(s.irm, features.regions)))
    return out


def mask_table(tf: list[TFExplanation]) -> pd.DataFrame:
    """Per noise type: Pearson correlation of the patch SHAP values with the IBM and IRM patch means,
    speech/noise identification (balanced) accuracy, cross-noise consistency, and the additivity error."""
    rows = []
    for noise in sorted({t.sample.noise_type for t in tf}):
        part = [t for t in tf if t.sample.noise_type == noise]
        rows.append({
            "noise": noise,
            "ibm_correlation": float(np.nanmean([mask_correlation(t.explanation.values[:, 0], t.ibm_means) for t in part])),
            "irm_correlation": float(np.nanmean([mask_correlation(t.explanation.values[:, 0], t.irm_means) for t in part])),
            "speech_noise_accuracy": float(np.nanmean([speech_noise_identification_accuracy(
                t.explanation.values[:, 0], t.ibm_means, balanced=True) for t in part])),
            "additivity_max_error": max(t.explanation.max_additivity_error for t in part),
            "utterances": len(part)})
    table = pd.DataFrame(rows)
    by_utt: dict[str, dict[str, torch.Tensor]] = {}
    for t in tf:
        by_utt.setdefault(t.sample.metadata["utterance"], {})[t.sample.noise_type] = t.explanation.values[:, 0]
    table.attrs["cross_noise_consistency"] = float(np.nanmean(
        [cross_condition_consistency(maps) for maps in by_utt.values() if len(maps) > 1] or [math.nan]))
    return table


def mass_table(tf: list[TFExplanation], recognition: pd.DataFrame) -> dict:
    """Spearman correlations of each mixture's SHAP mass (sum of |phi| over patches) with its WER and
    with the model's confidence."""
    by_id = recognition.set_index("id")
    mass = [float(t.explanation.values.abs().sum()) for t in tf]
    wers = [float(by_id.loc[t.sample.id, "wer"]) for t in tf]
    conf = [float(by_id.loc[t.sample.id, "confidence"]) for t in tf]
    return mass_correlations(mass, wers, conf)
