"""L-MAC on a tiny HuBERT-architecture classifier: shapes, masking, frozen classifier, loss, checkpoints."""

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.explain.lmac import LMAC, LMACConfig, classifier_fingerprint, load_lmac_config, train_lmac
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig

TINY = HubertClassifierConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_channels=16,
                              num_classes=4, num_samples=8000)


def classifier(seed=0):
    torch.manual_seed(seed)
    return HubertClassifier(TINY).eval()


def config(**kw):
    base = dict(channels=6, n_fft=128, hop_length=64, num_epochs=2, batch_size=4, device="cpu")
    return LMACConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def audio():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t) * (t > 0.2) * (t < 0.35)
    return 0.5 * tone + 0.05 * torch.randn(8, 8000, generator=g)


@pytest.mark.parametrize("domain,shape", [("stft", (3, 65, 126)), ("waveform", (3, 8000))])
def test_masks_lie_in_0_1_with_the_domain_shape(domain, shape, audio):
    lmac = LMAC(classifier(), config(mask_domain=domain))
    mask = lmac(audio[:3])
    assert mask.shape == shape and mask.min() >= 0 and mask.max() <= 1
    assert lmac.decoder_param_ratio() <= 0.10


@pytest.mark.parametrize("domain", ["stft", "waveform"])
def test_a_mask_of_ones_gives_back_the_input_and_zeros_give_silence(domain, audio):
    lmac = LMAC(classifier(), config(mask_domain=domain))
    shape = lmac(audio[:2]).shape
    assert torch.allclose(lmac.apply_mask(audio[:2], torch.ones(shape)), audio[:2], atol=1e-5)
    assert lmac.apply_mask(audio[:2], torch.zeros(shape)).abs().max() < 1e-6


def test_the_stft_mask_keeps_the_phase_and_scales_the_magnitude(audio):
    lmac = LMAC(classifier(), config(mask_domain="stft"))
    x = audio[:1]
    half = lmac.apply_mask(x, torch.full(lmac(x).shape, 0.5))
    assert torch.allclose(half, 0.5 * x, atol=1e-5)


def test_training_updates_only_the_decoder_and_lowers_the_loss(audio):
    model = classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fingerprint = classifier_fingerprint(model)
    lmac = LMAC(model, config(num_epochs=6, lr=3e-3, patience=10))
    decoder_before = [p.clone() for p in lmac.decoder.parameters()]
    history = train_lmac(lmac, (audio,), (audio[:4],))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert classifier_fingerprint(model) == fingerprint and not model.training
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, lmac.decoder.parameters()))
    assert len(history.train_loss) == 6 and history.train_loss[-1] < history.train_loss[0]
    assert all(0 <= f <= 1 for f in history.val_fid_in)


def test_same_seed_same_decoder(audio):
    a, b = (LMAC(classifier(), config()) for _ in range(2))
    torch.manual_seed(1)
    train_lmac(a, (audio,), (audio[:4],))
    torch.manual_seed(2)
    train_lmac(b, (audio,), (audio[:4],))
    assert all(torch.equal(p, q) for p, q in zip(a.decoder.parameters(), b.decoder.parameters()))


def test_the_guide_term_pulls_towards_the_ideal_binary_mask(audio):
    lmac = LMAC(classifier(), config(guide_weight=1.0, guide_threshold=-1.0))  # threshold -1: every sample guided
    clean = audio.clone()
    noise = 0.05 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(3))
    out = lmac.loss(clean + noise, clean, noise)
    assert out["guided"] == 1.0 and out["guide"] > 0
    plain = LMAC(classifier(), config()).loss(clean + noise)
    assert plain["guide"] == 0 and plain["guided"] == 0


def test_decoder_checkpoints_refuse_another_classifier(tmp_path, audio):
    lmac = LMAC(classifier(0), config())
    path = lmac.save(tmp_path / "decoder.safetensors")
    same = LMAC(classifier(0), config()).load_decoder(path)
    assert torch.allclose(same(audio[:2]), lmac(audio[:2]))
    with pytest.raises(ConfigError, match="trained for classifier .* not this one"):
        LMAC(classifier(1), config()).load_decoder(path)
    with pytest.raises(ConfigError, match="waveform domain"):
        LMAC(classifier(0), config(mask_domain="waveform")).load_decoder(path)


def test_bad_settings_are_refused_with_the_fix(audio):
    with pytest.raises(ConfigError, match="mask_domain='mel': choose one of waveform, stft"):
        config(mask_domain="mel")
    with pytest.raises(ConfigError, match=r"layers \[5\]: the encoder has 2 layers"):
        LMAC(classifier(), config(layers=(5,)))
    with pytest.raises(ConfigError, match="lower channels=64"):
        LMAC(classifier(), config(channels=64))
    lmac = LMAC(classifier(), config())
    with pytest.raises(ConfigError, match="expects 8000 samples"):
        lmac(torch.randn(2, 4000))
    with pytest.raises(ConfigError, match="an stft mask must be"):
        lmac.apply_mask(audio[:1], torch.ones(1, 10, 10))
    with pytest.raises(ConfigError, match="mask_domaine.*mask_domain"):
        load_lmac_config(mask_domaine="stft")
