"""Chapter 4's black-box section: pocketsphinx's pretrained model, transcribed and explained with our KernelSHAP.

The recogniser is ``audioxai.models.pocketsphinx_asr.PocketSphinxRecognizer`` (the wheel's US-English
acoustic model with a JSGF grammar of the corpus); what is explained per hypothesis word is its
goodness-of-pronunciation score along a forced alignment (``pocketsphinx_value_fn``). It decodes one
utterance at a time and has no gradients, so only model-agnostic estimators apply.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd

from audioxai.data.asr_testset import ASRSample
from audioxai.explain.shap_asr import AudioFeatures, AudioGame, ShapleyExplanation, kernel_shap
from audioxai.metrics.asr_attribution import align_words, word_attribution_accuracy
from audioxai.metrics.wer import utterance_wer, word_error_rate
from audioxai.models.pocketsphinx_asr import PocketSphinxRecognizer, pocketsphinx_value_fn
from audioxai.studies.shap_asr import pooled_accuracy

logger = logging.getLogger(__name__)

__all__ = ["PocketSphinxExplanation", "PocketSphinxResults", "pocketsphinx_section"]


@dataclass
class PocketSphinxExplanation:
    """Our KernelSHAP of pocketsphinx's per-word scores of one clean utterance, over fixed windows."""

    sample: ASRSample
    hypothesis: str
    words: list[str]
    features: AudioFeatures
    explanation: ShapleyExplanation
    word_intervals: list[tuple[float, float] | None]
    output_names: list[str]


@dataclass
class PocketSphinxResults:
    """WER (clean and per noise type at the chapter's SNR), per-sample rows, explanations and their scores."""

    wer_clean: float
    wer_noisy: dict[str, float]
    recognition: pd.DataFrame
    explained: list[PocketSphinxExplanation]
    accuracy: pd.DataFrame
    seconds_per_utterance: float


def _transcribe(recognizer: PocketSphinxRecognizer, samples: list[ASRSample]) -> pd.DataFrame:
    rows = []
    for s in samples:
        hyp = recognizer.transcribe(s.waveform)
        rows.append({"id": s.id, "noise_type": s.noise_type, "snr_db": s.snr_db, "reference": s.text,
                     "hypothesis": hyp, "wer": utterance_wer(s.text, hyp)})
    return pd.DataFrame(rows)


def _explain(recognizer: PocketSphinxRecognizer, sample: ASRSample, hypothesis: str, cfg) -> PocketSphinxExplanation:
    fn, words = pocketsphinx_value_fn(recognizer, hypothesis)
    features = AudioFeatures.time_segments(sample.waveform.numel(), 16000, num_segments=cfg.num_segments)
    game = AudioGame(sample.waveform, features, fn, replacement=cfg.replacement, batch_size=64, seed=cfg.seed)
    ex = kernel_shap(game, num_coalitions=cfg.pocketsphinx_budget, seed=cfg.seed)
    names = list(words)
    return PocketSphinxExplanation(sample, hypothesis, names, features, ex, align_words(names, sample.words),
                                   names + ["(transcript)"])


def pocketsphinx_section(samples: list[ASRSample], cfg) -> PocketSphinxResults:
    """Transcribe the first ``cfg.pocketsphinx_utterances`` clean test utterances and their mixtures at
    ``cfg.tf_snr_db``; explain the first ``cfg.pocketsphinx_explained`` clean ones with a non-empty hypothesis."""
    recognizer = PocketSphinxRecognizer()
    clean = [s for s in samples if s.noise_type == "clean"][: cfg.pocketsphinx_utterances]
    utterances = {s.metadata["utterance"] for s in clean}
    noisy = [s for s in samples if s.noise_type != "clean" and s.snr_db == cfg.tf_snr_db
             and s.metadata["utterance"] in utterances]
    table = _transcribe(recognizer, clean + noisy)
    is_clean = table["noise_type"] == "clean"
    wer_clean = word_error_rate(list(table[is_clean]["reference"]), list(table[is_clean]["hypothesis"]))
    wer_noisy = {n: word_error_rate(list(g["reference"]), list(g["hypothesis"]))
                 for n, g in table[~is_clean].groupby("noise_type")}
    hyps = dict(zip(table["id"], table["hypothesis"]))
    chosen = [s for s in clean if hyps[s.id].strip()][: cfg.pocketsphinx_explained]
    explained = [_explain(recognizer, s, hyps[s.id], cfg) for s in chosen]
    scores = [(word_attribution_accuracy([e.explanation.values[:, k] for k in range(len(e.words))],
                                         e.features.bounds, e.word_intervals), sum(i is not None for i in e.word_intervals))
              for e in explained]
    accuracy = pd.DataFrame([{
        "estimator": "kernel_shap", **pooled_accuracy(scores, cfg.seed),
        "additivity_max_error": max((e.explanation.max_additivity_error for e in explained), default=math.nan),
        "seconds": sum(e.explanation.seconds for e in explained) / max(len(explained), 1),
        "evaluations": sum(e.explanation.num_evaluations for e in explained) / max(len(explained), 1)}])
    return PocketSphinxResults(wer_clean, wer_noisy, table, explained, accuracy, recognizer.seconds_per_utterance)
