import itertools
import math

import pytest
import torch
from torch import nn

from audioxai.errors import ConfigError
from audioxai.explain.shap_asr import (AudioFeatures, AudioGame, exact_shapley, kernel_shap, sample_coalitions,
                                       shap_kernel, solve_kernel_regression)
from audioxai.features.spectrogram import log_mel_spectrogram

SR = 16000


def _waveform(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    chirp = torch.sin(2 * torch.pi * (300 + 2000 * t) * t) * torch.sin(torch.pi * t * 9).abs()
    return 0.3 * chirp + 0.05 * torch.randn(n, generator=g)


class TinyNet(nn.Module):
    """A seeded untrained CNN on a log-mel spectrogram, three outputs."""

    def __init__(self, outputs: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, outputs))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(log_mel_spectrogram(w, SR, n_mels=16, hop_length=160)[:, None] / 20)


def readout_game(game_fn, num_features: int, n: int = 4000) -> AudioGame:
    """An AudioGame whose value is ``game_fn(z)`` exactly: the value function reads the coalition back
    from the masked waveform (silence masking is w = z @ bases, so z = w @ pinv(bases))."""
    features = AudioFeatures.time_segments(n, SR, num_segments=num_features)
    game = AudioGame(_waveform(n), features, lambda w: w)
    readout = torch.linalg.pinv(game.masker.bases.double())
    game.value_fn = lambda w: game_fn((w.double() @ readout).round(decimals=6))
    return game


def majority_and_pair(z: torch.Tensor) -> torch.Tensor:
    """Weighted majority [3; 2, 1, 1, 1] and the product of players 0 and 1."""
    votes = z @ torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=z.dtype)
    return torch.stack([(votes >= 2.5).to(z.dtype), z[:, 0] * z[:, 1]], 1)


def permutation_shapley(v, m: int) -> torch.Tensor:
    """The definition: the average over all orders of each player's marginal contribution."""
    phi = torch.zeros(m, 2, dtype=torch.float64)
    for order in itertools.permutations(range(m)):
        z = torch.zeros(1, m, dtype=torch.float64)
        for player in order:
            before = v(z)[0]
            z[0, player] = 1.0
            phi[player] += v(z)[0] - before
    return phi / math.factorial(m)


def test_exact_shapley_matches_the_permutation_definition():
    game = readout_game(majority_and_pair, 4)
    e = exact_shapley(game)
    assert e.values.shape == (4, 2) and e.num_evaluations == 16 and e.method == "exact_shapley"
    assert torch.allclose(e.values, permutation_shapley(majority_and_pair, 4), atol=1e-9)
    assert torch.allclose(e.values[:, 1], torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64), atol=1e-9)
    assert e.values[0, 0] == pytest.approx(0.5) and e.max_additivity_error < 1e-12


@pytest.fixture(scope="module")
def cnn_game() -> AudioGame:
    n = 4000
    return AudioGame(_waveform(n), AudioFeatures.time_segments(n, SR, num_segments=8), TinyNet(), batch_size=128)


def test_kernel_shap_with_every_coalition_is_exact_shapley(cnn_game):
    exact = exact_shapley(cnn_game)
    full = kernel_shap(cnn_game, num_coalitions=10_000)
    assert full.num_evaluations == 256 and full.details["coalitions"].shape == (254, 8)
    assert (full.values - exact.values).abs().max() < 1e-6
    assert exact.values.abs().max() > 1e-3  # a real signal, not zeros


def test_kernel_shap_on_shaps_coalitions_equals_shap():
    n = 4000
    game = AudioGame(_waveform(n, seed=2), AudioFeatures.time_segments(n, SR, num_segments=10), TinyNet(),
                     batch_size=512)
    theirs = shap_kernel(game, nsamples=300, seed=0)
    ours = kernel_shap(game, coalitions=theirs.details["coalitions"], weights=theirs.details["weights"])
    assert theirs.values.shape == ours.values.shape == (10, 3) and theirs.num_evaluations == 302
    assert (ours.values - theirs.values).abs().max() <= 1e-5 * theirs.values.abs().max()
    sampled = kernel_shap(game, num_coalitions=300, seed=0)
    assert sampled.num_evaluations == 302

    def enumerated_sizes(rows: torch.Tensor) -> set[int]:
        sizes = rows.sum(1).long()
        return {s for s in range(1, 10) if int((sizes == s).sum()) == math.comb(10, s)}

    ours_full, theirs_full = (enumerated_sizes(e.details["coalitions"]) for e in (sampled, theirs))
    assert ours_full == theirs_full == {1, 2, 8, 9}  # the same sizes enumerated completely as shap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_kernel_shap_is_additive_for_every_sample(seed):
    n = 6000
    for features in (AudioFeatures.time_segments(n, SR, num_segments=12),
                     AudioFeatures.time_frequency_patches(n, SR, num_bands=4, num_windows=5)):
        game = AudioGame(_waveform(n, seed), features, TinyNet(), replacement=("silence", "noise", "mean")[seed])
        e = kernel_shap(game, num_coalitions=100, seed=seed)
        assert e.values.shape == (features.num_features, 3) and e.num_evaluations == 102
        assert e.max_additivity_error < 1e-6  # float64 solve with the constraint built in; goal < 1e-3


def test_sampled_kernel_shap_approaches_exact_shapley_as_the_budget_grows():
    n = 6000
    game = AudioGame(_waveform(n, 3), AudioFeatures.time_segments(n, SR, num_segments=12), TinyNet(), batch_size=512)
    exact = exact_shapley(game).values
    errors = [float((kernel_shap(game, num_coalitions=budget, seed=1).values - exact).abs().max())
              for budget in (200, 1500, 4094)]
    scale = float(exact.abs().max())
    assert errors[0] > errors[1] and errors[1] < 0.1 * scale and errors[2] < 1e-6  # 4094 = every coalition


def test_sample_coalitions_follow_the_kernel_and_the_budget():
    rows, weights = sample_coalitions(10, 300, seed=4)
    sizes = rows.sum(1)
    assert rows.shape == (300, 10) and len(torch.unique(rows, dim=0)) == 300
    assert sizes.min() >= 1 and sizes.max() <= 9 and weights.sum().item() == pytest.approx(1.0)
    singles = weights[sizes == 1]
    kernel = 9 / (1 * 9) / sum(9 / (s * (10 - s)) for s in range(1, 10))  # mass of size 1
    assert len(singles) == 10 and torch.allclose(singles, torch.full((10,), kernel / 10, dtype=torch.float64))
    present = {tuple(r.tolist()) for r in rows}
    assert sum(tuple((1 - r).tolist()) not in present for r in rows) <= 1  # paired (the last pair may be cut)
    again, _ = sample_coalitions(10, 300, seed=4)
    other, _ = sample_coalitions(10, 300, seed=5)
    assert torch.equal(rows, again) and not torch.equal(rows, other)
    assert sample_coalitions(4, 1000)[0].shape == (14, 4)  # capped at 2^M - 2


def test_exact_shapley_refuses_more_than_16_features():
    game = AudioGame(_waveform(4000), AudioFeatures.time_segments(4000, SR, num_segments=17), lambda w: w[:, :1])
    with pytest.raises(ConfigError, match="M=17.*kernel_shap"):
        exact_shapley(game)
    assert game.num_evaluations == 0
    with pytest.raises(ConfigError, match="together with weights"):
        kernel_shap(game, coalitions=torch.ones(3, 17))


def test_too_few_coalitions_warn_and_stay_efficient(caplog):
    rows, weights = sample_coalitions(12, 5, seed=0)
    gains = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    total = torch.tensor([1.0, -2.0], dtype=torch.float64)
    with caplog.at_level("WARNING"):
        phi = solve_kernel_regression(rows, weights, gains, total)
    assert "singular (5 coalitions for 12 features)" in caplog.text
    assert torch.isfinite(phi).all() and torch.allclose(phi.sum(0), total, atol=1e-9)
