import pytest
import torch

from audioxai.data.audiomnist import AudioMNIST
from audioxai.data.mixing import signal_to_noise_ratio
from audioxai.data.noisy_digits import noisy_digits
from audioxai.data.synthdigits import synth_digits
from audioxai.errors import ConfigError


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        patch.delenv("AUDIOMNIST_ROOT", raising=False)
        root = synth_digits(num_speakers=5, repetitions=2, seed=3, progress=False)
    return AudioMNIST(root, split="train", sample_rate=16000, duration=1.0)


def test_mixtures_keep_their_parts_snr_and_timings(split):
    data = noisy_digits(split, ("babble", "white"), (-5.0, 10.0), seed=1, limit=12, bank_seconds=2.0)
    assert data.mixture.shape == (12, 16000) and len(data) == 12
    assert torch.allclose(data.mixture, data.clean + data.noise, atol=1e-6)
    assert torch.allclose(signal_to_noise_ratio(data.clean, data.noise).float(), data.snr_db, atol=1e-3)
    assert data.snr_db.min() >= -5.0 and data.snr_db.max() <= 10.0
    assert set(data.noise_type) <= {"babble", "white"} and len(set(data.noise_type)) == 2
    assert torch.allclose(data.mixture.abs().amax(dim=1), torch.full((12,), 0.9), atol=1e-6)
    assert all(span is not None and 0 <= span[0] < span[1] <= 1.0 for span in data.word_span)
    assert all(len(p) >= 2 for p in data.phonemes)
    assert data.labels.tolist() == [r.digit for r in split.recordings[:12]]


def test_same_seed_same_mixtures_other_seed_other_ones(split):
    a = noisy_digits(split, ("white", "music"), seed=4, limit=4, bank_seconds=2.0)
    b = noisy_digits(split, ("white", "music"), seed=4, limit=4, bank_seconds=2.0)
    c = noisy_digits(split, ("white", "music"), seed=5, limit=4, bank_seconds=2.0)
    assert torch.equal(a.mixture, b.mixture) and not torch.equal(a.mixture, c.mixture)
    sub = a.subset([3, 1])
    assert torch.equal(sub.mixture[0], a.mixture[3]) and sub.noise_type == [a.noise_type[3], a.noise_type[1]]


def test_bad_parameters_are_named(split):
    with pytest.raises(ConfigError, match="noise_types.*choose from"):
        noisy_digits(split, ("jet",))
    with pytest.raises(ConfigError, match="low <= high"):
        noisy_digits(split, snr_range_db=(10, -5))


def test_noise_banks_are_cached_on_disk_and_differ_between_seeds(split, tmp_path, monkeypatch):
    from audioxai.data import noisy_digits as module
    monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path))
    module._bank.cache_clear()
    first = module.noise_bank("pink", 2.0, 16000, seed=7)
    assert first.shape == (32000,) and abs(float(first.square().mean()) - 1.0) < 1e-3
    assert len(list((tmp_path / "noise_bank").glob("*/noise.npy"))) == 1
    module._bank.cache_clear()
    assert torch.equal(module.noise_bank("pink", 2.0, 16000, seed=7), first)  # read back from disk
    assert len(list((tmp_path / "noise_bank").glob("*/noise.npy"))) == 1
    assert not torch.equal(module.noise_bank("pink", 2.0, 16000, seed=8), first)
    with pytest.raises(ConfigError, match="unknown noise kind 'jet'"):
        module.noise_bank("jet")


def test_the_remixing_loader_draws_new_noise_every_epoch_reproducibly(split):
    from audioxai.data.noisy_digits import RemixingLoader
    data = noisy_digits(split, ("white", "pink"), seed=2, limit=10, bank_seconds=2.0)
    make = lambda: RemixingLoader(data.clean, data.labels, ("white", "pink"), seed=2, batch_size=4,  # noqa: E731
                                  bank_seconds=2.0)
    a, b = make(), make()
    first, second = list(a), list(a)
    assert len(a) == 3 and [len(y) for _, y in first] == [4, 4, 2]
    assert not torch.equal(first[0][0], second[0][0])  # a new epoch, new noise and order
    again = list(b)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(first, again))
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(data.labels.tolist())
    x, _ = first[0]
    assert torch.allclose(x.abs().amax(dim=1), torch.full((4,), 0.9), atol=1e-6)
    with pytest.raises(ConfigError, match="one label per row"):
        RemixingLoader(data.clean, data.labels[:3])
