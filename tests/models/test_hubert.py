import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.models.cnn import DigitCNN, first_pool_for
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig, SpectrogramClassifier

TINY = HubertClassifierConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_channels=16,
                              num_classes=4, num_samples=8000)


@pytest.fixture(scope="module")
def hubert():
    torch.manual_seed(0)
    return HubertClassifier(TINY).eval()


def test_hubert_classifier_gives_logits_and_20_ms_hidden_states(hubert):
    x = torch.randn(3, 8000) * 0.1
    logits, states = hubert.classify_with_hidden_states(x, (1, 2))
    assert logits.shape == (3, 4) and len(states) == 2
    assert states[0].shape == (3, 24, 32)  # 0.5 s at 16 kHz: 24 frames of 20 ms (HuBERT's conv strides)
    assert torch.allclose(logits, hubert(x), atol=1e-5)
    assert hubert.default_layers() == (1, 2) and hubert.layer_channels((1, 2)) == (32, 32)


def test_hubert_does_not_normalise_its_input_so_a_uniform_mask_changes_the_output(hubert):
    x = torch.randn(2, 8000) * 0.1
    assert not torch.allclose(hubert(x), hubert(0.1 * x), atol=1e-3)


def test_bad_inputs_and_layers_are_refused_with_the_fix(hubert):
    with pytest.raises(ConfigError, match="expects 8000 samples .*resample to 16000 Hz"):
        hubert(torch.randn(2, 7000))
    with pytest.raises(ConfigError, match="mono waveforms"):
        hubert(torch.randn(2, 2, 8000))
    with pytest.raises(ConfigError, match="NaN"):
        hubert(torch.full((1, 8000), float("nan")))
    with pytest.raises(ConfigError, match=r"layers \[3\]: the encoder has 2 layers; choose indices from 1 to 2"):
        hubert.hidden_states(torch.randn(1, 8000), (3,))
    with pytest.raises(ConfigError, match="not found"):
        HubertClassifier.from_pretrained("/nonexistent/hubert-large")


def test_from_pretrained_reads_a_local_folder_without_network(tmp_path, hubert):
    hubert.encoder.save_pretrained(tmp_path)
    loaded = HubertClassifier.from_pretrained(tmp_path, num_classes=4, num_samples=8000).eval()
    x = torch.randn(1, 8000) * 0.1
    a = loaded.hidden_states(x, (2,))[0]
    b = hubert.hidden_states(x, (2,))[0]
    assert torch.allclose(a, b, atol=1e-5) and loaded.num_layers == 2


def test_a_24_layer_encoder_defaults_to_the_design_layers_and_deeper_ones_to_four_spread_layers():
    def layers(n):
        cfg = HubertClassifierConfig(hidden_size=8, num_layers=n, num_heads=1, intermediate_size=8, conv_channels=4)
        return HubertClassifier(cfg).default_layers()
    assert layers(24) == (6, 12, 18, 24)
    assert layers(8) == (2, 4, 6, 8)
    assert layers(3) == (1, 2, 3)


def test_spectrogram_classifier_exposes_conv_blocks_as_frame_sequences():
    torch.manual_seed(0)
    cnn = DigitCNN(first_pool=first_pool_for(64)).eval()
    model = SpectrogramClassifier(cnn).eval()
    x = torch.randn(2, 8000) * 0.1
    logits, states = model.classify_with_hidden_states(x, (1, 4))
    assert logits.shape == (2, 10) and torch.allclose(logits, model(x), atol=1e-5)
    assert states[0].shape == (2, 16, 16) and states[1].shape == (2, 4, 64)
    assert model.layer_channels((1, 4)) == (16, 64)
    with pytest.raises(ConfigError, match="the CNN has 4 layers"):
        model.hidden_states(x, (0,))
