"""Ground-truth checks of speech-recognition explanations: word and phoneme timing, ideal masks, WER.

Each function scores one explanation (or one set of explanations of an utterance) and states its
direction; aggregate over utterances with ``numpy.nanmean`` or ``bootstrap_ci`` (NaN marks an
undefined score: a constant map, no usable word).

Timing (higher is better, in [0, 1]): the features are time segments with bounds ``(t0, t1)`` in
seconds (``AudioFeatures.bounds``' ``(t0, t1, f0, f1)`` work as they are), and each explained
hypothesis word has one value per feature.

- ``word_attribution_accuracy``: share of words whose most important segment (largest value) has
  its centre inside the word's aligned interval ``[start, end]``.
- ``phoneme_attribution_accuracy``: the features are phoneme segments; share of words whose most
  important phoneme lies within the word's interval (containment up to ``tolerance_s``), i.e. is one
  of the word's own phonemes.

Hypothesis words are paired with reference words first (``align_words``: a Levenshtein alignment of
the word sequences); unpaired words (insertions) carry None and are skipped.

Time-frequency (features are regions of the STFT grid of the ideal masks, 0/1 maps (M, F, frames)):

- ``patch_mask_means``: the mean IBM or IRM value inside each region.
- ``mask_correlation``: Pearson or Spearman correlation of the SHAP values with those means;
  in [-1, 1], higher is better.
- ``speech_noise_identification_accuracy``: a region is speech-dominated when its mean IBM exceeds
  ``threshold``; the explanation calls it speech when its value is positive. Accuracy, or balanced
  accuracy (mean recall of the two classes); in [0, 1], higher is better.
- ``cross_condition_consistency``: mean pairwise Spearman correlation between the maps of one
  utterance under different noise types; in [-1, 1], higher means more consistent.

Utterance level: ``mass_correlations`` gives the Spearman correlations of SHAP mass with WER and with
the model's confidence, with p-values (direction depends on the hypothesis tested, none is "better").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import stats

from audioxai.errors import ConfigError
from audioxai.metrics.aggregate import bootstrap_ci

if TYPE_CHECKING:
    from audioxai.data.speech import Segment

__all__ = ["HIGHER_IS_BETTER", "align_words", "top_segment_in_interval", "word_attribution_accuracy",
           "phoneme_attribution_accuracy", "patch_mask_means", "mask_correlation",
           "speech_noise_identification_accuracy", "cross_condition_consistency", "mass_correlations", "bootstrap_ci"]

Interval = tuple[float, float]
WordIntervals = Sequence[Interval | None] | Mapping[int, Interval | None]

#: Direction of each score (the ``mass_correlations`` have none).
HIGHER_IS_BETTER: dict[str, bool] = {
    "word_attribution_accuracy": True, "phoneme_attribution_accuracy": True, "mask_correlation": True,
    "speech_noise_identification_accuracy": True, "cross_condition_consistency": True,
}


def _vector(values, name: str) -> torch.Tensor:
    """``values`` as a finite 1-D float64 CPU tensor, or a ConfigError naming it."""
    v = torch.as_tensor(values).detach().to("cpu", torch.float64)
    if v.ndim != 1 or v.numel() == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D tensor (one value per feature), got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ConfigError(f"{name} holds NaN or infinite values: fix the explanation before scoring it")
    return v


def _check_bounds(values: torch.Tensor, bounds: Sequence[Interval], name: str) -> None:
    if len(bounds) != values.numel():
        raise ConfigError(f"{name} has {values.numel()} values but {len(bounds)} feature bounds: "
                          f"give one (t0, t1) per feature, in the features' order")


def align_words(hypothesis: Sequence[str], reference: Sequence[Segment],
                keep_substitutions: bool = True) -> list[Interval | None]:
    """Each hypothesis word's reference interval, from a minimum-edit-distance alignment of the words.

    Args:
        hypothesis: the recognised words in order.
        reference: the aligned reference words (``SentenceItem.words``).
        keep_substitutions: a hypothesis word aligned to a different reference word keeps that
            word's interval (the model wrote it from there); False gives it None.

    Returns:
        One ``(start, end)`` or None (an inserted word) per hypothesis word.
    """
    ref = [w.label for w in reference]
    n, m = len(hypothesis), len(ref)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (hypothesis[i - 1] != ref[j - 1]), cost[i - 1, j] + 1,
                             cost[i, j - 1] + 1)
    pairs: list[Interval | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        same = hypothesis[i - 1] == ref[j - 1]
        if cost[i, j] == cost[i - 1, j - 1] + (not same):
            if same or keep_substitutions:
                pairs[i - 1] = (reference[j - 1].start, reference[j - 1].end)
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs


def top_segment_in_interval(values, bounds: Sequence[Interval], interval: Interval) -> bool:
    """Whether the feature with the largest value has its centre ``(t0 + t1) / 2`` inside ``[start, end]``.

    Ties go to the earliest feature. Args: values (M,); bounds, one ``(t0, t1, ...)`` per feature, times
    in seconds first (further entries, such as ``AudioFeatures.bounds``' frequencies, are ignored);
    interval, ``(start, end)`` in seconds.
    """
    v = _vector(values, "values")
    _check_bounds(v, bounds, "values")
    t0, t1 = bounds[int(v.argmax())][:2]
    return interval[0] <= (t0 + t1) / 2 <= interval[1]


def _word_pairs(per_word_values: Sequence, word_intervals: WordIntervals) -> list[tuple[int, Interval]]:
    """(hypothesis word index, interval) for every word with an interval; checks the indices."""
    items = word_intervals.items() if isinstance(word_intervals, Mapping) else enumerate(word_intervals)
    pairs = [(int(k), iv) for k, iv in items if iv is not None]
    bad = [k for k, _ in pairs if not 0 <= k < len(per_word_values)]
    if bad:
        raise ConfigError(f"word indices {bad} have no values ({len(per_word_values)} words explained): "
                          f"pair each hypothesis word index with its reference interval")
    return pairs


def word_attribution_accuracy(per_word_values: Sequence, feature_bounds: Sequence[Interval],
                              word_intervals: WordIntervals) -> float:
    """Share of words whose most important time segment lies (by its centre) inside the word's interval.

    Higher is better, in [0, 1].

    Args:
        per_word_values: one (M,) tensor of feature values per hypothesis word.
        feature_bounds: ``(t0, t1, ...)`` seconds of each of the M features (``AudioFeatures.bounds``).
        word_intervals: per hypothesis word (list, or dict by word index) its reference ``(start, end)``
            or None to skip it (e.g. ``align_words``).

    Returns:
        The share, or NaN when no word has an interval.
    """
    pairs = _word_pairs(per_word_values, word_intervals)
    if not pairs:
        return math.nan
    hits = [top_segment_in_interval(per_word_values[k], feature_bounds, iv) for k, iv in pairs]
    return float(np.mean(hits))


def phoneme_attribution_accuracy(per_word_values: Sequence, phoneme_bounds: Sequence[Interval],
                                 word_intervals: WordIntervals, tolerance_s: float = 0.01) -> float:
    """Share of words whose most important phoneme segment is one of the word's own phonemes.

    A phoneme ``(t0, t1)`` belongs to the word ``(start, end)`` when ``start - tol <= t0`` and
    ``t1 <= end + tol`` (containment; the tolerance absorbs rounding of bounds to samples or frames).
    Higher is better, in [0, 1]; NaN when no word has an interval.

    Args:
        per_word_values: one (M,) tensor per hypothesis word, M = number of phoneme features.
        phoneme_bounds: ``(t0, t1, ...)`` seconds of each phoneme feature.
        word_intervals: as ``word_attribution_accuracy``.
        tolerance_s: slack of the containment test in seconds (default 10 ms, about one STFT hop).
    """
    if not tolerance_s >= 0:
        raise ConfigError(f"tolerance_s={tolerance_s}: pass a non-negative number of seconds")
    pairs = _word_pairs(per_word_values, word_intervals)
    if not pairs:
        return math.nan
    hits = []
    for k, (start, end) in pairs:
        v = _vector(per_word_values[k], f"per_word_values[{k}]")
        _check_bounds(v, phoneme_bounds, f"per_word_values[{k}]")
        t0, t1 = phoneme_bounds[int(v.argmax())][:2]
        hits.append(start - tolerance_s <= t0 and t1 <= end + tolerance_s)
    return float(np.mean(hits))


def patch_mask_means(mask: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Mean of ``mask`` (F, frames) inside each feature region (M, F, frames): ``sum(mask r) / sum(r)``.

    Regions are 0/1 (or soft, non-negative) maps on the mask's STFT grid. Returns (M,) float64 on the
    CPU; NaN for an empty region.
    """
    mask, regions = torch.as_tensor(mask), torch.as_tensor(regions)
    if mask.ndim != 2 or regions.ndim != 3 or regions.shape[1:] != mask.shape:
        raise ConfigError(f"regions of shape {tuple(regions.shape)} do not match the mask of shape "
                          f"{tuple(mask.shape)}: give (M, F, frames) regions on the mask's STFT grid "
                          f"(same n_fft and hop_length)")
    mask, regions = mask.detach().cpu().double(), regions.detach().cpu().double()
    if (regions < 0).any():
        raise ConfigError("regions hold negative weights: pass 0/1 (or non-negative) maps")
    size = regions.sum(dim=(1, 2))
    means = (regions * mask).sum(dim=(1, 2)) / size.where(size > 0, torch.ones_like(size))
    return means.masked_fill(size == 0, math.nan)


def _ranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN for fewer than two values or a constant input."""
    if a.size < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 0 else math.nan


def mask_correlation(values, patch_means, method: str = "pearson") -> float:
    """Correlation of a map's feature values with the mean ideal mask of each feature region.

    Higher is better, in [-1, 1]. Features whose patch mean is NaN (empty regions) are left out.

    Args:
        values: (M,) SHAP values of one output over the M time-frequency regions.
        patch_means: (M,) ``patch_mask_means`` of the IBM or IRM.
        method: ``"pearson"`` or ``"spearman"`` (Pearson of average ranks).

    Returns:
        The correlation, NaN when either input is constant or fewer than two features are left.
    """
    if method not in ("pearson", "spearman"):
        raise ConfigError(f"method={method!r}: choose 'pearson' or 'spearman'")
    v = _vector(values, "values").numpy()
    p = torch.as_tensor(patch_means).detach().cpu().double().flatten().numpy()
    if p.shape != v.shape:
        raise ConfigError(f"values have {v.size} features but patch_means {p.size}: give one mean per feature")
    keep = np.isfinite(p)
    v, p = v[keep], p[keep]
    if method == "spearman":
        v, p = _ranks(v), _ranks(p)
    return _pearson(v, p)


def speech_noise_identification_accuracy(values, ibm_patch_means, threshold: float = 0.5,
                                         balanced: bool = False) -> float:
    """Accuracy of the map's signs as a speech/noise classifier of the time-frequency regions.

    Truth: a region is speech-dominated when its mean IBM exceeds ``threshold``. Prediction: speech
    when the SHAP value is positive (> 0), noise otherwise. ``balanced`` averages the recall of the
    classes present instead (so a map that calls everything speech scores 0.5 when both occur).
    Higher is better, in [0, 1]; regions with a NaN patch mean are left out; NaN when none is left.
    """
    v = _vector(values, "values")
    p = torch.as_tensor(ibm_patch_means).detach().cpu().double().flatten()
    if p.shape != v.shape:
        raise ConfigError(f"values have {v.numel()} features but ibm_patch_means {p.numel()}: one mean per feature")
    keep = torch.isfinite(p)
    if not keep.any():
        return math.nan
    truth, predicted = p[keep] > threshold, v[keep] > 0
    if not balanced:
        return float((truth == predicted).double().mean())
    recalls = [float((predicted[truth == cls] == cls).double().mean()) for cls in (True, False) if (truth == cls).any()]
    return float(np.mean(recalls))


def cross_condition_consistency(maps: Mapping[str, torch.Tensor]) -> float:
    """Mean pairwise Spearman correlation between the maps (M,) of one utterance under several noise types.

    Higher means the explanation depends less on the noise, in [-1, 1]. Pairs with a constant map
    (undefined correlation) are left out; NaN when fewer than two maps or no defined pair.
    """
    vectors = {name: _vector(m, f"maps[{name!r}]").flatten().numpy() for name, m in maps.items()}
    sizes = {v.size for v in vectors.values()}
    if len(sizes) > 1:
        raise ConfigError(f"maps have different numbers of features {sorted(sizes)}: explain every condition "
                          f"with the same features")
    rhos = [_pearson(_ranks(vectors[a]), _ranks(vectors[b])) for a, b in combinations(vectors, 2)]
    rhos = [r for r in rhos if not math.isnan(r)]
    return float(np.mean(rhos)) if rhos else math.nan


def _spearman(x: np.ndarray, y: np.ndarray) -> dict:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"spearman": math.nan, "p_value": math.nan, "n": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        result = stats.spearmanr(x, y)
    return {"spearman": float(result.statistic), "p_value": float(result.pvalue), "n": n}


def mass_correlations(shap_mass: Sequence[float], wers: Sequence[float], confidences: Sequence[float]) -> dict:
    """Spearman correlations over utterances of SHAP mass with WER and with the model's confidence.

    Args:
        shap_mass: per utterance, e.g. the total absolute SHAP value of its explanation.
        wers: per-utterance word error rates; confidences: per-utterance model confidence (e.g. the
            transcript's mean log-probability per word). Same length; NaN pairs are dropped.

    Returns:
        ``{"wer": {"spearman", "p_value", "n"}, "confidence": {...}}`` (``scipy.stats.spearmanr``, two-sided);
        NaN statistics when fewer than 3 pairs are left or a series is constant.
    """
    mass, wer, conf = (np.asarray(x, dtype=np.float64).ravel() for x in (shap_mass, wers, confidences))
    if not mass.size == wer.size == conf.size:
        raise ConfigError(f"shap_mass, wers and confidences have lengths {mass.size}, {wer.size}, {conf.size}: "
                          f"give one value per utterance in each")
    return {"wer": _spearman(mass, wer), "confidence": _spearman(mass, conf)}
