import json
from types import SimpleNamespace

import pytest

from audioxai.errors import ConfigError
from audioxai.moe.frontend import SpectroConfig
from audioxai.moe.policy import (EXPERT_FAMILIES, Policy, load_policy, make_policy, policy_summary, save_policy)

SPECTRO = SpectroConfig(kind="logmel", sample_rate=16000, n_fft=512, hop_length=160, n_mels=64, fmin=0.0,
                        fmax=8000.0, num_samples=16000)  # F = 64 rows, T = 101 frames


def make_profile(**overrides) -> SimpleNamespace:
    """A stand-in for DatasetProfile with the spec's fields: clean broadband data, few transients."""
    values = dict(fs_mode=16000, fs_unique=[16000], fmin_eff=50.0, fmax_eff=7000.0,
                  duration={"min": 1.0, "median": 1.0, "mean": 1.0, "max": 1.0}, snr_db_proxy=30.0,
                  transient_rate=0.05, spectral_flatness=0.3, clipping_rate=0.0, num_files=100, num_classes=4,
                  class_counts={"a": 25, "b": 25, "c": 25, "d": 25}, quality_score=0.8, per_class={})
    values.update(overrides)
    return SimpleNamespace(**values)


def priors(policy: Policy) -> dict[str, float]:
    return {e.family: e.prior for e in policy.experts}


def test_clean_broadband_data_enables_every_family_with_bands_inside_the_front_end():
    policy = make_policy(make_profile(), SPECTRO)
    assert [e.family for e in policy.experts] == list(EXPERT_FAMILIES)
    assert policy.disabled == {} and policy.rules == []
    assert (policy.num_experts, policy.k_min, policy.k_max) == (8, 1, 3)
    assert policy.patch_size == policy.patch_stride == (16, 25)  # F/4 rows x 0.25 s of 10 ms frames
    assert sum(priors(policy).values()) == pytest.approx(1.0)
    assert list(priors(policy).values()) == pytest.approx([1 / 8] * 8)
    for expert in policy.experts:
        assert 0.0 <= expert.band_hz[0] < expert.band_hz[1] <= 8000.0
        assert all(k % 2 == 1 and k <= p for k, p in zip(expert.kernel, policy.patch_size))
    bands = {e.family: e.band_hz for e in policy.experts}
    assert bands["NoiseRobust_Broadband"] == (0.0, 8000.0)
    assert bands["NoiseRobust_LowFreq"][1] == pytest.approx(bands["MidbandGeneral"][0])
    assert bands["HighbandGeneral"][0] >= 2000.0


def test_narrow_band_data_disables_the_high_band_experts_with_reasons():
    spectro = SpectroConfig(kind="stft", sample_rate=8000, n_fft=512, hop_length=80, n_mels=0, fmin=90.0,
                            fmax=1650.0, num_samples=8000)
    policy = make_policy(make_profile(fmax_eff=1500.0), spectro)
    assert set(policy.disabled) == {"NoiseRobust_HighFreq", "HighbandGeneral"}
    assert all("1500 Hz" in why and "2000 Hz" in why for why in policy.disabled.values())
    assert {e.family for e in policy.experts} == set(EXPERT_FAMILIES) - set(policy.disabled)
    assert all(90.0 <= e.band_hz[0] < e.band_hz[1] <= 1650.0 for e in policy.experts)
    # a user's low fmax on broadband data masks them too
    low_cut = SpectroConfig(kind="logmel", sample_rate=16000, n_mels=32, fmin=0.0, fmax=1800.0)
    assert "HighbandGeneral" in make_policy(make_profile(), low_cut).disabled
    assert make_policy(make_profile(fmax_eff=2500.0), SPECTRO).disabled == {}


def test_low_quality_disables_the_fine_frequency_expert():
    policy = make_policy(make_profile(quality_score=0.2), SPECTRO)
    assert list(policy.disabled) == ["FineFreqExpert"]
    assert "Q 0.20" in policy.disabled["FineFreqExpert"]
    assert "FineFreqExpert" not in priors(policy)
    assert "FineFreqExpert" in priors(make_policy(make_profile(quality_score=0.6), SPECTRO))


@pytest.mark.parametrize("extra", [{}, {"snr_db_proxy": 2.0, "spectral_flatness": 0.01}])
def test_dominant_transients_raise_the_transient_prior_above_the_others(extra):
    policy = make_policy(make_profile(transient_rate=0.6, **extra), SPECTRO)
    p = priors(policy)
    others = [v for family, v in p.items() if family != "TransientExpert"]
    assert p["TransientExpert"] > max(others)
    assert sum(p.values()) == pytest.approx(1.0)
    assert any("transient_rate 0.60" in rule for rule in policy.rules)
    calm = priors(make_policy(make_profile(transient_rate=0.1, **extra), SPECTRO))
    assert calm["TransientExpert"] <= max(calm.values())
    assert p["TransientExpert"] > calm["TransientExpert"]


def test_latency_budget_has_a_smaller_k_max():
    profile = make_profile()
    accuracy = make_policy(profile, SPECTRO, budget="accuracy")
    latency = make_policy(profile, SPECTRO, budget="latency")
    assert latency.k_max < accuracy.k_max
    assert (accuracy.k_max, latency.k_max) == (3, 2)
    two = [make_policy(profile, SPECTRO, budget=b, num_experts=2).k_max for b in ("accuracy", "latency")]
    assert two == [2, 1]


def test_num_experts_keeps_the_highest_priors_and_is_capped():
    policy = make_policy(make_profile(transient_rate=0.6), SPECTRO, num_experts=3)
    assert policy.num_experts == 3
    assert "TransientExpert" in priors(policy)
    assert len(policy.disabled) == 5 and all("num_experts=3" in why for why in policy.disabled.values())
    capped = make_policy(make_profile(fmax_eff=1500.0), SPECTRO, num_experts=20)
    assert capped.num_experts == 6
    assert any("capped" in rule for rule in capped.rules)


def test_overrides_are_used_when_valid():
    policy = make_policy(make_profile(), SPECTRO, k_max=5, patch_size=(8, 10), patch_stride=(4, 5))
    assert (policy.k_max, policy.patch_size, policy.patch_stride) == (5, (8, 10), (4, 5))
    assert all(k <= p for e in policy.experts for k, p in zip(e.kernel, (8, 10)))
    small = make_policy(make_profile(), SpectroConfig(kind="logmel", n_mels=16))
    assert small.patch_size[0] == 4
    assert {e.family: e.kernel for e in small.experts}["HarmonicExpert"] == (3, 3)


@pytest.mark.parametrize("kwargs,key", [
    ({"budget": "fast"}, "budget"),
    ({"num_experts": 0}, "num_experts"),
    ({"num_experts": 2.5}, "num_experts"),
    ({"k_max": 9}, "k_max"),
    ({"k_max": 0}, "k_max"),
    ({"patch_size": (100, 10)}, "patch_size"),
    ({"patch_size": (0, 3)}, "patch_size"),
    ({"patch_size": (8,)}, "patch_size"),
    ({"patch_stride": (32, 1)}, "patch_stride"),
])
def test_bad_overrides_raise_config_error_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        make_policy(make_profile(), SPECTRO, **kwargs)


def test_policy_json_round_trip(tmp_path):
    policy = make_policy(make_profile(fmax_eff=1500.0, quality_score=0.2, transient_rate=0.5), SPECTRO,
                         budget="latency")
    path = save_policy(policy, tmp_path)
    assert path == tmp_path / "policy.json"
    loaded = load_policy(path)
    assert loaded == policy
    assert loaded.experts[0].band_hz == policy.experts[0].band_hz and isinstance(loaded.patch_size, tuple)
    assert load_policy(tmp_path) == policy
    assert [p.name for p in tmp_path.iterdir()] == ["policy.json"]


@pytest.mark.parametrize("change,key", [
    (lambda v: v["experts"][0].update(kernal=[3, 3]), "kernal"),
    (lambda v: v.update(k_max=99), "k_max"),
    (lambda v: v["experts"][0].update(family="Mystery"), "family"),
    (lambda v: v.update(patch_size=[16]), "patch_size"),
])
def test_load_policy_refuses_bad_files_naming_the_key(tmp_path, change, key):
    values = json.loads(save_policy(make_policy(make_profile(), SPECTRO), tmp_path).read_text())
    change(values)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=key):
        load_policy(bad)


def test_policy_summary_lists_experts_masks_and_rules():
    policy = make_policy(make_profile(fmax_eff=1500.0, transient_rate=0.5), SPECTRO)
    text = policy_summary(policy)
    lines = text.splitlines()
    assert lines[0].startswith("Policy (budget=accuracy): N=6 experts, K in [1, 3]")
    for expert in policy.experts:
        assert any(line.split()[1:2] == [expert.name] for line in lines)
    for family in policy.disabled:
        assert f"  {family}: " in text
    assert "rules:" in text and "TransientExpert" in text
