from types import SimpleNamespace

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.moe.experts import ExpertBank, band_rows
from audioxai.moe.router import (ROUTING_TAU, SaliencyRouter, adaptive_k, band_saliency, dispatch, dispatch_loop,
                                 gradient_x_input, importance_statistics, load_balance_loss, patch_grid_shape,
                                 patch_importance)

EDGES = torch.linspace(0.0, 4000.0, 17)  # 16 rows of 250 Hz


def spec(name, family, band, kernel=(3, 3), channels=4, prior=1.0):
    """A stand-in for policy.ExpertSpec with the spec's fields."""
    return SimpleNamespace(name=name, family=family, band_hz=band, kernel=kernel, channels=channels, prior=prior)


SPECS = [spec("broad", "NoiseRobust_Broadband", (0, 4000)), spec("low", "NoiseRobust_LowFreq", (0, 1000), (5, 3)),
         spec("onsets", "TransientExpert", (0, 4000), (1, 5), 6), spec("fine", "FineFreqExpert", (500, 2500), (4, 2)),
         spec("high", "HighbandGeneral", (2000, 4000), channels=3)]


def router(tau, k_max, seed=0):
    torch.manual_seed(seed)
    bank_mask = ExpertBank(SPECS, EDGES, 4, 8).band_mask
    return SaliencyRouter(8, bank_mask, [s.prior for s in SPECS], 1, k_max, tau, (4, 4), (2, 2))


def test_band_rows_map_hz_to_the_overlapping_rows():
    assert band_rows(EDGES, (0, 4000)) == (0, 16)
    assert band_rows(EDGES, (0, 1000)) == (0, 4)
    assert band_rows(EDGES, (600, 1100)) == (2, 5)  # rows 500-750, 750-1000, 1000-1250
    assert band_rows(EDGES, (3000, 9000)) == (12, 16)  # clipped to the front-end's range
    with pytest.raises(ConfigError, match="'hi'.*outside the front-end's range"):
        band_rows(EDGES, (5000, 8000), "hi")
    with pytest.raises(ConfigError, match="empty"):
        band_rows(EDGES, (1000, 1000))


def test_unknown_family_and_bad_bounds_are_refused():
    with pytest.raises(ConfigError, match="unknown family 'Bassoon'"):
        ExpertBank([spec("b", "Bassoon", (0, 1000))], EDGES, 4, 8)
    mask = ExpertBank(SPECS, EDGES, 4, 8).band_mask
    with pytest.raises(ConfigError, match="k_max=6 with 5 experts"):
        SaliencyRouter(8, mask, [1.0] * 5, 1, 6, 0.9, (4, 4), (2, 2))
    with pytest.raises(ConfigError, match="non-negative prior"):
        SaliencyRouter(8, mask, [1.0, -0.5, 1.0, 1.0, 1.0], 1, 3, 0.9, (4, 4), (2, 2))


@pytest.mark.parametrize("training", [False, True])
def test_batched_dispatch_equals_the_per_sample_loop(training):
    torch.manual_seed(1)
    bank = ExpertBank(SPECS, EDGES, 4, 8).train(training)
    features = torch.randn(9, 4, 16, 12)
    probs = torch.rand(9, len(SPECS)).softmax(dim=1)
    k, selected = adaptive_k(probs, 0.7, 1, 4)
    weights = probs * selected / (probs * selected).sum(dim=1, keepdim=True)
    batched = bank(features, selected, weights)
    looped = dispatch_loop(bank.experts, features, selected, weights, 8)
    assert batched.shape == (9, 8)
    assert torch.allclose(batched, looped, atol=1e-5, rtol=1e-5)
    assert torch.equal(selected.sum(dim=1), k)


def test_dispatch_calls_each_expert_once_on_its_group():
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, i):
            super().__init__()
            self.i = i

        def forward(self, x):
            calls.append((self.i, x.shape[0]))
            return x[:, :2] * (self.i + 1)

    selected = torch.tensor([[True, False, True], [True, False, False], [False, False, True], [True, False, True]])
    weights = selected.float() / selected.float().sum(dim=1, keepdim=True)
    x = torch.arange(12.0).view(4, 3)
    out = dispatch([Recorder(i) for i in range(3)], x, selected, weights, 2)
    assert calls == [(0, 3), (2, 3)]  # expert 1 never ran, no per-sample calls
    assert torch.allclose(out, dispatch_loop([Recorder(i) for i in range(3)], x, selected, weights, 2))
    assert torch.allclose(out[0], 0.5 * x[0, :2] + 0.5 * 3 * x[0, :2])


def test_adaptive_k_is_the_smallest_k_covering_tau():
    probs = torch.tensor([[0.5, 0.1, 0.3, 0.1], [0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]])
    k, selected = adaptive_k(probs, 0.75, 1, 4)
    assert k.tolist() == [2, 1, 3]
    assert selected.tolist() == [[True, False, True, False], [True, False, False, False], [True, True, True, False]]
    k, _ = adaptive_k(probs, 0.85, 2, 3)
    assert k.tolist() == [3, 2, 3]  # k_min lifts the confident sample, k_max caps the others


def test_k_stays_in_bounds_and_latency_budget_lowers_mean_k():
    features, saliency = torch.randn(64, 8), torch.randn(64, 1, 16, 12)
    accuracy = router(ROUTING_TAU["accuracy"], 4)(features, saliency)
    latency = router(ROUTING_TAU["latency"], 2)(features, saliency)
    assert torch.allclose(accuracy.probs, latency.probs)  # same weights, same inputs: only the rule differs
    for out, k_max in ((accuracy, 4), (latency, 2)):
        assert int(out.k.min()) >= 1 and int(out.k.max()) <= k_max
        assert torch.equal(out.selected.sum(dim=1), out.k)
        assert torch.allclose(out.weights.sum(dim=1), torch.ones(64))
        assert float(out.weights.detach()[~out.selected].abs().sum()) == 0.0
    assert (latency.k <= accuracy.k).all()
    assert latency.k.float().mean() < accuracy.k.float().mean()


def test_load_balance_loss_is_one_for_uniform_routing_and_n_when_collapsed():
    n = 4
    uniform_probs = torch.full((8, n), 1.0 / n)
    round_robin = torch.eye(n, dtype=torch.bool).repeat(2, 1)
    assert float(load_balance_loss(uniform_probs, round_robin)) == pytest.approx(1.0)
    collapsed_probs = torch.zeros(8, n)
    collapsed_probs[:, 0] = 1.0
    collapsed = torch.zeros(8, n, dtype=torch.bool)
    collapsed[:, 0] = True
    assert float(load_balance_loss(collapsed_probs, collapsed)) == pytest.approx(n)
    skewed = torch.tensor([0.7, 0.1, 0.1, 0.1]).expand(8, n)
    assert 1.0 < float(load_balance_loss(skewed, collapsed)) < n
    probs = uniform_probs.clone().requires_grad_(True)
    load_balance_loss(probs, collapsed).backward()
    assert torch.allclose(probs.grad[:, 0], torch.full((8,), n / 8.0)) and float(probs.grad[:, 1:].abs().sum()) == 0


def test_saliency_is_gradient_times_input_of_a_linear_scout():
    torch.manual_seed(2)
    scout = torch.nn.Linear(12, 3)
    x = torch.randn(5, 1, 3, 4, requires_grad=True)
    logits = scout(x.flatten(1))
    top = logits.argmax(dim=1)
    saliency = gradient_x_input(logits, x)
    expected = scout.weight[top].view(5, 1, 3, 4) * x
    assert torch.allclose(saliency, expected.detach(), atol=1e-6)
    floor = x.detach().flatten(1).amin(dim=1).view(5, 1, 1, 1)
    relative = gradient_x_input(scout(x.flatten(1)), x, baseline="min", target=torch.zeros(5, dtype=torch.long))
    assert torch.allclose(relative, (scout.weight[0].view(1, 1, 3, 4) * (x - floor)).detach(), atol=1e-6)
    assert not saliency.requires_grad


def test_patch_importance_pools_the_absolute_saliency_into_a_distribution():
    saliency = torch.zeros(2, 1, 8, 8)
    saliency[0, 0, 6, 1] = -3.0  # bottom-left patch only
    saliency[1] = 1.0
    importance = patch_importance(saliency, (4, 4), (4, 4))
    assert patch_grid_shape(8, 8, (4, 4), (4, 4)) == (2, 2)
    assert importance.tolist() == [[0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]]
    stats = importance_statistics(importance)
    assert torch.allclose(stats, torch.tensor([[0.0, 1.0], [1.0, 0.25]]), atol=1e-5)
    assert patch_importance(saliency, (4, 4), (2, 2)).shape == (2, 9)
    assert patch_importance(saliency, (20, 3), (1, 1)).shape == (2, 6)  # patch taller than the map: clipped


def test_band_saliency_is_the_share_of_saliency_in_each_band():
    mask = ExpertBank(SPECS, EDGES, 4, 8).band_mask
    saliency = torch.zeros(1, 1, 16, 5)
    saliency[0, 0, 1] = 1.0   # row 1: 250-500 Hz
    saliency[0, 0, 14] = -3.0  # row 14: 3500-3750 Hz
    shares = band_saliency(saliency, mask)
    assert torch.allclose(shares, torch.tensor([[1.0, 0.25, 1.0, 0.0, 0.75]]))
