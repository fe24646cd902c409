import numpy as np
import pytest
import torch
from torch import nn

from audioxai.errors import ConfigError
from audioxai.explain.shap_asr import (ESTIMATORS, AudioFeatures, AudioGame, exact_shapley, integrated_gradients,
                                       lime, shap_deep_explainer, shap_gradient_explainer, shap_partition,
                                       time_hierarchy)
from audioxai.features.spectrogram import log_mel_spectrogram

SR, N = 16000, 4000


def _waveform(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(N) / SR
    return 0.3 * torch.sin(2 * torch.pi * (300 + 2000 * t) * t) + 0.05 * torch.randn(N, generator=g)


class TinyNet(nn.Module):
    """A seeded untrained CNN on a log-mel spectrogram, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.LazyLinear(2))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(log_mel_spectrogram(w, SR, n_mels=8, hop_length=400)[:, None] / 20)


COEFFICIENTS = torch.tensor([[1.0, -2.0, 0.5, 3.0, 0.0, 1.5], [0.2, 0.2, -1.0, 0.0, 2.0, 0.7]]).T.double()  # (6, 2)


def additive_game(features: AudioFeatures | None = None) -> AudioGame:
    """v(z) = z @ COEFFICIENTS exactly (the value function reads z back from the silence-masked waveform):
    its Shapley values are the coefficients."""
    features = features or AudioFeatures.time_segments(N, SR, num_segments=6)
    game = AudioGame(_waveform(), features, lambda w: w)
    readout = torch.linalg.pinv(game.masker.bases.double())
    game.value_fn = lambda w: (w.double() @ readout) @ COEFFICIENTS[: features.num_features]
    return game


def test_partition_is_efficient_and_exact_on_an_additive_game():
    e = shap_partition(additive_game(), max_evals=200)
    assert e.values.shape == (6, 2) and torch.allclose(e.values, COEFFICIENTS, atol=1e-6)
    assert e.max_additivity_error < 1e-6 and e.num_evaluations <= 200
    tf = AudioFeatures.time_frequency_patches(N, SR, num_bands=2, num_windows=3)
    e = shap_partition(additive_game(tf), max_evals=200)
    assert torch.allclose(e.values, COEFFICIENTS, atol=1e-6)
    cnn = AudioGame(_waveform(1), AudioFeatures.time_segments(N, SR, num_segments=8), TinyNet())
    few = shap_partition(cnn, max_evals=10)  # the budget runs out: credit is spread, efficiency still holds
    assert few.max_additivity_error < 1e-5 and few.num_evaluations <= 10
    with pytest.raises(ConfigError, match="hierarchy='frequency'"):
        shap_partition(cnn, hierarchy="frequency")


def _leaf_sets(linkage: np.ndarray, m: int) -> list[set[int]]:
    sets = [{i} for i in range(m)]
    for left, right, _, size in linkage:
        sets.append(sets[int(left)] | sets[int(right)])
        assert len(sets[-1]) == size
    return sets


def test_time_hierarchy_merges_neighbours_only():
    f = AudioFeatures.time_segments(N, SR, num_segments=7)
    sets = _leaf_sets(time_hierarchy(f), 7)
    assert sets[-1] == set(range(7)) and all(max(s) - min(s) == len(s) - 1 for s in sets)  # contiguous in time
    tf = AudioFeatures.time_frequency_patches(N, SR, num_bands=3, num_windows=4)
    linkage = time_hierarchy(tf)
    sets = _leaf_sets(linkage, 12)
    for s in sets:
        windows = {m // 3 for m in s}
        within_one = len(windows) == 1 and max(s) - min(s) == len(s) - 1
        whole_windows = len(s) == 3 * len(windows) and max(windows) - min(windows) == len(windows) - 1
        assert within_one or whole_windows, s
    heights = np.concatenate([np.zeros(12), linkage[:, 2]])
    assert all(h > heights[int(a)] and h > heights[int(b)] for a, b, h, _ in linkage)  # a valid, monotone tree


def test_gradient_methods_are_exact_on_a_game_linear_in_z():
    game = additive_game()
    ig = integrated_gradients(game, steps=16)
    assert torch.allclose(ig.values, COEFFICIENTS, atol=1e-5) and ig.max_additivity_error < 1e-5
    assert ig.num_evaluations == 2 * 16  # K = 2 paths of 16 steps, in one batched call
    grad = shap_gradient_explainer(game, nsamples=20)
    assert torch.allclose(grad.values, COEFFICIENTS, atol=1e-5)
    fitted = lime(game, num_samples=300, seed=0)
    assert fitted.num_evaluations == 300  # the same perturbations serve both outputs
    assert torch.corrcoef(torch.stack([fitted.values.flatten(), COEFFICIENTS.flatten()]))[0, 1] > 0.95


def test_every_estimator_explains_k_outputs_on_a_cnn():
    game = AudioGame(_waveform(2), AudioFeatures.time_segments(N, SR, num_segments=6), TinyNet(), batch_size=64)
    budgets = {"num_coalitions": 40, "nsamples": 40, "max_evals": 40, "num_samples": 40, "steps": 8}
    for name, estimator in ESTIMATORS.items():
        e = estimator(game, **budgets)
        assert e.method == name and e.values.shape == (6, 2) and e.base_value.shape == e.full_value.shape == (2,)
        assert e.num_evaluations > 0 or name == "shap_deep_explainer" and e.error is not None, name
        if e.error is None:
            assert torch.isfinite(e.values).all() and torch.isfinite(e.additivity_error).all(), name
    exact = exact_shapley(game)
    assert torch.allclose(game.endpoints()[1], exact.full_value, atol=1e-5)


def test_deep_explainer_reports_failure_instead_of_raising():
    def detached(w: torch.Tensor) -> torch.Tensor:  # no graph: DeepExplainer's backward pass must fail
        return w.pow(2).mean(1, keepdim=True).detach()

    game = AudioGame(_waveform(), AudioFeatures.time_segments(N, SR, num_segments=4), detached)
    e = shap_deep_explainer(game)
    assert e.error is not None and "grad" in e.error and torch.isnan(e.values).all() and e.values.shape == (4, 1)
    net = TinyNet()
    net(torch.zeros(1, N))  # materialise the lazy layer
    names = [name for name, _ in net.named_parameters()]
    net.train()
    ok = shap_deep_explainer(AudioGame(_waveform(), AudioFeatures.time_segments(N, SR, num_segments=4), net))
    assert ok.error is None and torch.isfinite(ok.values).all()
    assert [name for name, _ in net.named_parameters()] == names  # shap's saved x/y activations are removed
    assert net.training and net.net[0].training  # and shap's model.eval() undone
