"""Ground-truth scores of ASR explanations on hand-made cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import balanced_accuracy_score

from audioxai.data.speech import Segment
from audioxai.errors import ConfigError
from audioxai.metrics import aggregate
from audioxai.metrics.asr_attribution import (HIGHER_IS_BETTER, align_words, bootstrap_ci, cross_condition_consistency,
                                              mask_correlation, mass_correlations, patch_mask_means,
                                              phoneme_attribution_accuracy, speech_noise_identification_accuracy,
                                              top_segment_in_interval, word_attribution_accuracy)

# Ten 0.1 s segments over one second; three words at 0.0-0.3, 0.3-0.6 and 0.6-1.0 s.
BOUNDS = [(i / 10, (i + 1) / 10) for i in range(10)]
WORDS = [Segment("lay", 0.0, 0.3), Segment("red", 0.3, 0.6), Segment("now", 0.6, 1.0)]
INTERVALS = [(w.start, w.end) for w in WORDS]


def peaked(index: int, size: int = 10) -> torch.Tensor:
    values = torch.linspace(-0.1, 0.1, size)
    values[index] = 1.0
    return values


def test_top_segment_is_judged_by_its_centre():
    assert top_segment_in_interval(peaked(2), BOUNDS, (0.2, 0.3))
    assert not top_segment_in_interval(peaked(3), BOUNDS, (0.0, 0.3))
    assert top_segment_in_interval(torch.tensor([1.0, 1.0, 0.0]), [(0, 1), (1, 2), (2, 3)], (0.0, 1.0))  # first of ties
    boxes = [(t0, t1, 0.0, 8000.0) for t0, t1 in BOUNDS]  # AudioFeatures.bounds: frequencies ignored
    assert top_segment_in_interval(peaked(2), boxes, (0.2, 0.3))
    assert not top_segment_in_interval(peaked(2), boxes, (0.0, 0.2))
    with pytest.raises(ConfigError, match="3 values but 10 feature bounds"):
        top_segment_in_interval(torch.zeros(3), BOUNDS, (0, 1))


def test_word_accuracy_is_one_when_peaks_sit_in_the_words_and_zero_when_shifted():
    inside = [peaked(1), peaked(4), peaked(8)]
    shifted = [peaked(4), peaked(8), peaked(1)]
    assert word_attribution_accuracy(inside, BOUNDS, INTERVALS) == 1.0
    assert word_attribution_accuracy(shifted, BOUNDS, INTERVALS) == 0.0
    assert word_attribution_accuracy([peaked(1), peaked(4), peaked(2)], BOUNDS, INTERVALS) == pytest.approx(2 / 3)
    # an unmatched hypothesis word is skipped, in list or dict form
    assert word_attribution_accuracy(shifted, BOUNDS, [INTERVALS[1], None, None]) == 1.0
    assert word_attribution_accuracy(shifted, BOUNDS, {0: INTERVALS[1], 2: INTERVALS[2]}) == 0.5
    assert math.isnan(word_attribution_accuracy(inside, BOUNDS, [None, None, None]))
    with pytest.raises(ConfigError, match="word indices \\[5\\] have no values"):
        word_attribution_accuracy(inside, BOUNDS, {5: INTERVALS[0]})


def test_phoneme_accuracy_counts_the_words_own_phonemes_within_a_tolerance():
    phonemes = [(0.0, 0.1), (0.1, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 1.0)]
    own = [peaked(1, 7), peaked(3, 7), peaked(6, 7)]
    neighbour = [peaked(2, 7), peaked(5, 7), peaked(0, 7)]
    assert phoneme_attribution_accuracy(own, phonemes, INTERVALS) == 1.0
    assert phoneme_attribution_accuracy(neighbour, phonemes, INTERVALS) == 0.0
    rounded = [(a + 0.004, b + 0.004) for a, b in phonemes]  # bounds moved by half a hop
    assert phoneme_attribution_accuracy(own, rounded, INTERVALS) == 1.0
    # without tolerance the first and last words' top phonemes now end 4 ms past the word
    assert phoneme_attribution_accuracy(own, rounded, INTERVALS, tolerance_s=0.0) == pytest.approx(1 / 3)


def test_align_words_pairs_matches_and_substitutions_and_skips_insertions():
    assert align_words(["lay", "red", "now"], WORDS) == INTERVALS
    assert align_words(["lay", "uh", "red", "now"], WORDS) == [INTERVALS[0], None, INTERVALS[1], INTERVALS[2]]
    assert align_words(["lay", "bed", "now"], WORDS) == INTERVALS
    assert align_words(["lay", "bed", "now"], WORDS, keep_substitutions=False) == [INTERVALS[0], None, INTERVALS[2]]
    assert align_words(["now"], WORDS) == [INTERVALS[2]] and align_words([], WORDS) == []


def test_patch_means_average_the_mask_inside_each_region():
    mask = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 12
    regions = torch.zeros(3, 3, 4)
    regions[0, :, :2] = 1  # left half: values 0,1,4,5,8,9
    regions[1, 1, 3] = 1  # one bin: value 7
    means = patch_mask_means(mask, regions)
    assert means[0].item() == pytest.approx(27 / 6 / 12) and means[1].item() == pytest.approx(7 / 12)
    assert math.isnan(means[2].item())  # empty region
    with pytest.raises(ConfigError, match="same n_fft and hop_length"):
        patch_mask_means(mask, torch.ones(2, 4, 3))


def test_mask_correlation_is_one_for_a_perfect_map_and_matches_scipy():
    means = torch.tensor([0.1, 0.9, 0.4, 0.7, 0.2, float("nan")])
    assert mask_correlation(2 * means.nan_to_num(0) + 1, means) == pytest.approx(1.0)
    assert mask_correlation(-means.nan_to_num(0), means) == pytest.approx(-1.0)
    curved = torch.exp(5 * means.nan_to_num(0))
    assert mask_correlation(curved, means, "spearman") == pytest.approx(1.0)
    assert mask_correlation(curved, means, "pearson") < 0.99
    assert math.isnan(mask_correlation(torch.ones(6), means))
    assert math.isnan(mask_correlation(torch.ones(6), means, "spearman"))
    gen = np.random.default_rng(0)
    a, b = gen.normal(size=40), gen.normal(size=40)
    b[:5] = b[5]  # ties
    assert mask_correlation(torch.tensor(a), torch.tensor(b)) == pytest.approx(stats.pearsonr(a, b).statistic)
    rho = stats.spearmanr(a, b).statistic
    assert mask_correlation(torch.tensor(a), torch.tensor(b), "spearman") == pytest.approx(rho)
    with pytest.raises(ConfigError, match="'pearson' or 'spearman'"):
        mask_correlation(a, b, "kendall")


def test_speech_noise_identification_accuracy_and_its_balanced_form():
    ibm_means = torch.tensor([0.9, 0.1, 0.2, 0.3, float("nan")])
    values = torch.tensor([1.0, 1.0, -1.0, 0.0, 5.0])  # zero counts as noise; the NaN region is left out
    assert speech_noise_identification_accuracy(values, ibm_means) == pytest.approx(0.75)
    balanced = speech_noise_identification_accuracy(values, ibm_means, balanced=True)
    assert balanced == pytest.approx(balanced_accuracy_score([1, 0, 0, 0], [1, 1, 0, 0])) == pytest.approx(5 / 6)
    assert speech_noise_identification_accuracy(-values, ibm_means) == pytest.approx(0.5)  # -0.0 stays noise
    assert speech_noise_identification_accuracy(values, ibm_means, threshold=0.05) == pytest.approx(0.5)


def test_cross_condition_consistency_is_the_mean_pairwise_spearman():
    base = torch.tensor([0.3, -0.2, 0.9, 0.1, 0.5])
    assert cross_condition_consistency({"white": base, "babble": base ** 3, "music": base + 2}) == pytest.approx(1.0)
    assert cross_condition_consistency({"white": base, "babble": base, "music": -base}) == pytest.approx(-1 / 3)
    assert cross_condition_consistency({"white": base, "wind": torch.zeros(5), "pink": 2 * base}) == pytest.approx(1.0)
    assert math.isnan(cross_condition_consistency({"white": base}))
    with pytest.raises(ConfigError, match="different numbers of features"):
        cross_condition_consistency({"white": base, "pink": base[:3]})


def test_mass_correlations_match_scipy_and_drop_missing_values():
    mass = [1.0, 2.0, 3.0, 4.0, 5.0, float("nan")]
    wers = [0.0, 0.1, 0.3, 0.2, 0.5, 0.9]
    conf = [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6]
    result = mass_correlations(mass, wers, conf)
    expected = stats.spearmanr(mass[:5], wers[:5])
    assert result["wer"]["spearman"] == pytest.approx(expected.statistic)
    assert result["wer"]["p_value"] == pytest.approx(expected.pvalue) and result["wer"]["n"] == 5
    assert result["confidence"]["spearman"] == pytest.approx(-1.0)
    assert math.isnan(mass_correlations([1, 2, 3], [0.1, 0.1, 0.1], [1, 2, 3])["wer"]["spearman"])
    with pytest.raises(ConfigError, match="lengths 2, 3, 3"):
        mass_correlations([1, 2], [1, 2, 3], [1, 2, 3])


def test_bootstrap_ci_is_the_repository_one_and_brackets_the_mean():
    assert bootstrap_ci is aggregate.bootstrap_ci
    mean, low, high = bootstrap_ci([0.2, 0.4, 0.6, 0.8, float("nan")], num_resamples=500, seed=0)
    assert mean == pytest.approx(0.5) and 0.2 <= low < mean < high <= 0.8
    assert set(HIGHER_IS_BETTER.values()) == {True}
