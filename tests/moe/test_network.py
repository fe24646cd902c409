import math
from types import SimpleNamespace

import pytest
import torch
import torchaudio
from torch import nn

from audioxai.errors import AudioInputError, ConfigError
from audioxai.moe.network import (MoENetwork, MoENetworkConfig, MonolithicCNN, flops_per_sample, gradcam,
                                  matched_baseline, moe_loss)

SR, NUM_SAMPLES = 8000, 2000  # 0.25 s clips


class TinyLogMel(nn.Module):
    """A stand-in front-end: log-mel in dB, (B, N) -> (B, 1, n_mels, T), with HTK-mel row edges."""

    def __init__(self, n_mels: int = 24) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=256, hop_length=64, n_mels=n_mels, f_min=0.0,
                                                        f_max=SR / 2, mel_scale="htk")

    def band_edges_hz(self) -> torch.Tensor:
        mels = torch.linspace(0.0, 2595.0 * math.log10(1.0 + (SR / 2) / 700.0), self.n_mels + 1)
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(self.mel(waveform) + 1e-10)[:, None]


def expert(name, family, band, kernel=(3, 3), channels=6, prior=1.0):
    return SimpleNamespace(name=name, family=family, band_hz=band, kernel=kernel, channels=channels, prior=prior)


def policy(budget="accuracy", k_max=3):
    """A stand-in for policy.Policy with the spec's fields."""
    experts = [expert("broad", "NoiseRobust_Broadband", (0, 4000)), expert("low", "NoiseRobust_LowFreq", (0, 1500), (5, 3)),
               expert("high", "HighbandGeneral", (1500, 4000)), expert("onsets", "TransientExpert", (0, 4000), (1, 5)),
               expert("harmonic", "HarmonicExpert", (0, 4000), (7, 1), prior=2.0)]
    return SimpleNamespace(experts=experts, disabled={}, k_max=k_max, k_min=1, patch_size=(4, 4), patch_stride=(4, 4),
                           budget=budget)


def network(budget="accuracy", k_max=3, seed=0, **kw):
    torch.manual_seed(seed)
    return MoENetwork(TinyLogMel(), policy(budget, k_max), num_classes=2, **kw)


def tones(n_per_class=16, seed=0):
    """Class 0: a tone at 250-450 Hz; class 1: a tone at 2.2-3 kHz; random phase and level, light noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    low = 250 + 200 * torch.rand(n_per_class, generator=gen)
    high = 2200 + 800 * torch.rand(n_per_class, generator=gen)
    freq = torch.cat([low, high])[:, None]
    phase = 2 * math.pi * torch.rand(2 * n_per_class, 1, generator=gen)
    level = 0.3 + 0.7 * torch.rand(2 * n_per_class, 1, generator=gen)
    t = torch.arange(NUM_SAMPLES) / SR
    noise = 0.05 * torch.randn(2 * n_per_class, NUM_SAMPLES, generator=gen)
    return level * torch.sin(2 * math.pi * freq * t + phase) + noise, labels


def test_forward_returns_the_documented_shapes():
    net = network().eval()
    x, _ = tones(2)
    out = net(x)
    spec = net.spectrogram(x)
    assert out.logits.shape == (4, 2) and out.scout_logits.shape == (4, 2)
    assert out.gates.shape == out.selected.shape == out.weights.shape == (4, 5) and out.selected.dtype == torch.bool
    assert torch.allclose(out.gates.sum(dim=1), torch.ones(4))
    assert out.k.dtype == torch.int64 and torch.equal(out.selected.sum(dim=1), out.k)
    assert int(out.k.min()) >= 1 and int(out.k.max()) <= 3
    assert out.saliency.shape == spec.shape == (4, 1, 24, 32) and not out.saliency.requires_grad
    assert out.patch_grid == (6, 8) and out.patch_importance.shape == (4, 48)
    assert torch.allclose(out.patch_importance.sum(dim=1), torch.ones(4))
    assert out.load_balance_loss.ndim == 0 and float(out.load_balance_loss.detach()) > 0.0


def test_samples_do_not_interact_and_the_same_seed_gives_the_same_numbers():
    x, _ = tones(3)
    a, b = network(seed=3).eval(), network(seed=3).eval()
    whole, again = a(x), b(x)
    assert torch.equal(whole.logits, again.logits) and torch.equal(whole.saliency, again.saliency)
    alone = a(x[4:5])
    assert torch.allclose(alone.logits, whole.logits[4:5], atol=1e-5)
    assert torch.allclose(alone.saliency, whole.saliency[4:5], atol=1e-5, rtol=1e-4)
    assert torch.equal(alone.selected, whole.selected[4:5])


def test_no_grad_and_inference_mode_give_the_same_routing():
    net = network().eval()
    x, _ = tones(2)
    with torch.no_grad():
        plain = net(x)
    with torch.inference_mode():
        inference = net(x)
    assert torch.allclose(plain.logits, inference.logits) and torch.equal(plain.k, inference.k)
    assert not plain.logits.requires_grad


def test_a_few_training_steps_learn_low_versus_high_tones():
    net = network(seed=1)
    x, y = tones(16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = moe_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        accuracy = float((net(x).logits.argmax(dim=1) == y).float().mean())
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy > 0.9
    assert all(p.grad is not None for p in net.router.gate.parameters())


def test_multi_label_loss_uses_binary_cross_entropy():
    net = network(multi_label=True).eval()
    x, y = tones(2)
    out = net(x)
    multi_hot = nn.functional.one_hot(y, 2).float()
    expected = (nn.functional.binary_cross_entropy_with_logits(out.logits, multi_hot)
                + 0.5 * nn.functional.binary_cross_entropy_with_logits(out.scout_logits, multi_hot)
                + 0.01 * out.load_balance_loss)
    assert torch.allclose(moe_loss(out, multi_hot, multi_label=True), expected)


def test_flops_of_single_layers_match_the_hand_formula():
    conv = nn.Sequential(nn.Unflatten(1, (1, 20, 20)), nn.Conv2d(1, 8, 3, stride=2, padding=1))
    assert flops_per_sample(conv, 400) == 8 * 10 * 10 * 3 * 3  # out channels * out positions * kernel * in channels
    grouped = nn.Sequential(nn.Unflatten(1, (4, 10, 10)), nn.Conv2d(4, 8, (3, 1), groups=2))
    assert flops_per_sample(grouped, 400) == 8 * 8 * 10 * (4 // 2) * 3
    conv1d = nn.Sequential(nn.Unflatten(1, (1, 400)), nn.Conv1d(1, 2, 5, stride=5))
    assert flops_per_sample(conv1d, 400, batch_size=3) == 2 * 80 * 5
    assert flops_per_sample(nn.Linear(400, 5), 400) == 400 * 5


def test_moe_costs_less_at_the_latency_budget_and_counts_only_experts_that_ran():
    accuracy, latency = network("accuracy", 4, seed=2), network("latency", 2, seed=2)
    x, _ = tones(8)
    cost_accuracy, cost_latency = flops_per_sample(accuracy, NUM_SAMPLES, waveform=x), flops_per_sample(
        latency, NUM_SAMPLES, waveform=x)
    with torch.no_grad():
        k_accuracy, k_latency = accuracy.eval()(x).k.float().mean(), latency.eval()(x).k.float().mean()
    assert k_latency < k_accuracy
    assert cost_latency < cost_accuracy
    one = network("accuracy", 1, seed=2)
    assert flops_per_sample(one, NUM_SAMPLES, waveform=x) <= cost_latency


def test_gradcam_has_the_spectrogram_shape_and_is_finite():
    net = network()
    x, _ = tones(2)
    cam = gradcam(net, x, 1)
    assert cam.shape == (4, 24, 32)
    assert torch.isfinite(cam).all() and float(cam.min()) >= 0.0 and float(cam.abs().sum()) > 0.0
    assert net.training  # restored


def test_matched_baseline_has_a_similar_cost():
    net = network()
    x, y = tones(4)
    baseline = matched_baseline(net, NUM_SAMPLES, waveform=x)
    assert isinstance(baseline, MonolithicCNN) and baseline(x).shape == (8, 2)
    moe, mono = flops_per_sample(net, NUM_SAMPLES, waveform=x), flops_per_sample(baseline, NUM_SAMPLES, waveform=x)
    assert 0.7 < mono / moe < 1.4


def test_bad_inputs_are_refused_with_the_fix():
    net = network()
    with pytest.raises(AudioInputError, match=r"waveform of shape \(2000,\).*waveform\[None\]"):
        net(torch.zeros(NUM_SAMPLES))
    with pytest.raises(ConfigError, match="has no band_edges_hz"):
        MoENetwork(nn.Identity(), policy(), 2)
    with pytest.raises(ConfigError, match="budget 'fast'"):
        MoENetwork(TinyLogMel(), policy("fast"), 2)
    with pytest.raises(ConfigError, match="k_max=9 with 5 experts"):
        MoENetwork(TinyLogMel(), policy(k_max=9), 2)
    with pytest.raises(ConfigError, match="num_classes=1"):
        MoENetwork(TinyLogMel(), policy(), 1, config=MoENetworkConfig())


def test_the_shared_path_adds_the_pooled_stem_features_to_the_experts_mixture():
    x, _ = tones(2)
    with_shared = network(config=MoENetworkConfig(dropout=0.0)).eval()
    without = network(config=MoENetworkConfig(dropout=0.0, shared_path=False)).eval()
    assert without.shared is None and isinstance(with_shared.shared, nn.Linear)
    extra = sum(p.numel() for p in with_shared.parameters()) - sum(p.numel() for p in without.parameters())
    assert extra == with_shared.shared.weight.numel() + with_shared.shared.bias.numel()
    # Zero the shared map: the network is then the one without it (same seed, same other weights).
    without.load_state_dict({k: v for k, v in with_shared.state_dict().items() if not k.startswith("shared.")})
    out_with, out_without = with_shared(x), without(x)
    assert torch.equal(out_with.selected, out_without.selected)
    assert not torch.allclose(out_with.logits, out_without.logits)
    with torch.no_grad():
        with_shared.shared.weight.zero_()
        with_shared.shared.bias.zero_()
    assert torch.allclose(with_shared(x).logits, out_without.logits, atol=1e-6)


def test_experts_pool_three_times_and_widen_the_last_conv():
    net = network().eval()
    x, _ = tones(1)
    features = net.stem(net.spectrogram(x))  # (B, C, 24, 16)
    for e in net.experts.experts:
        assert e.conv3.out_channels == 2 * e.conv2.out_channels == 2 * e.conv1.out_channels
        seen = {}
        handle = e.conv3.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
        e(features)
        handle.remove()
        rows = e.rows[1] - e.rows[0]
        assert seen["shape"][-1] == features.shape[-1] // 8, e.name
        assert seen["shape"][-2] == (rows if e.freq_pool == 1 else rows // 8), e.name
