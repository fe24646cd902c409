"""Gradient baselines as masks in L-MAC's domains, on a tiny HuBERT-architecture classifier."""

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.explain.lmac import LMAC, LMACConfig
from audioxai.explain.mask_baselines import MASK_METHODS, attribution_masks, normalise_mask
from audioxai.models.cnn import DigitCNN
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig, SpectrogramClassifier

TINY = HubertClassifierConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_channels=16,
                              num_classes=4, num_samples=8000)


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return HubertClassifier(TINY).eval()


@pytest.fixture(scope="module")
def audio():
    return 0.1 * torch.randn(3, 8000, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", MASK_METHODS)
@pytest.mark.parametrize("domain", ["stft", "waveform"])
def test_every_method_gives_a_mask_of_lmacs_shape_with_max_one(classifier, audio, method, domain):
    lmac = LMAC(classifier, LMACConfig(mask_domain=domain, channels=6, n_fft=128, hop_length=64, device="cpu"))
    mask = attribution_masks(classifier, audio, method, domain, n_fft=128, hop_length=64, ig_steps=4, num_samples=2)
    assert mask.shape == lmac(audio).shape
    assert mask.min() >= 0 and torch.allclose(mask.flatten(1).amax(dim=1), torch.ones(3))
    assert lmac.apply_mask(audio, mask).shape == audio.shape


def test_stft_saliency_is_the_gradient_with_respect_to_the_magnitude(classifier, audio):
    x = audio[:1]
    window = torch.hann_window(128)
    spec = torch.stft(x, 128, 64, window=window, center=True, return_complex=True)
    mag = spec.abs().clone().requires_grad_(True)
    wave = torch.istft(torch.polar(mag, spec.angle()), 128, 64, window=window, center=True, length=8000)
    target = classifier(x).argmax(dim=1)
    classifier(wave)[0, target[0]].backward()
    expected = normalise_mask(mag.grad)
    got = attribution_masks(classifier, x, "saliency", "stft", n_fft=128, hop_length=64)
    assert torch.allclose(got, expected, atol=1e-5)


def test_same_seed_same_smoothgrad(classifier, audio):
    a = attribution_masks(classifier, audio, "smoothgrad", "waveform", num_samples=3, seed=1)
    b = attribution_masks(classifier, audio, "smoothgrad", "waveform", num_samples=3, seed=1)
    c = attribution_masks(classifier, audio, "smoothgrad", "waveform", num_samples=3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gradcam_works_on_a_spectrogram_cnn_too():
    torch.manual_seed(0)
    model = SpectrogramClassifier(DigitCNN(first_pool=4)).eval()
    x = 0.1 * torch.randn(2, 8000)
    mask = attribution_masks(model, x, "gradcam", "waveform", hop_length=64)
    assert mask.shape == (2, 8000) and mask.max() <= 1


def test_unknown_method_or_domain_is_refused(classifier, audio):
    with pytest.raises(ConfigError, match="unknown method 'lrp'"):
        attribution_masks(classifier, audio, "lrp")
    with pytest.raises(ConfigError, match="mask domain 'mel'"):
        attribution_masks(classifier, audio, "saliency", "mel")
