import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from audioxai.data.mixing import ideal_binary_mask, ideal_ratio_mask, mix_at_snr
from audioxai.data.noise import make_noise
from audioxai.data.speech import synthesize
from audioxai.viz.figures import audio_player, plot_alignment, plot_masks, save_figure


@pytest.fixture(scope="module")
def utterance():
    return synthesize("one two", sample_rate=16000)


def test_alignment_figure_marks_every_word_and_phoneme(utterance, tmp_path):
    fig = plot_alignment(utterance.waveform, 16000, utterance.words, utterance.phonemes, n_mels=40)
    wave_ax, spec_ax = fig.axes[:2]
    assert [t.get_text() for t in wave_ax.texts] == ["one", "two"]
    assert len(spec_ax.texts) == len(utterance.phonemes)
    assert spec_ax.images[0].get_array().shape[0] == 40
    save_figure(fig, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_mask_figure_shows_binary_and_ratio_masks(utterance):
    mix = mix_at_snr(utterance.waveform, make_noise("white", utterance.waveform.numel(), seed=0), 0.0)
    ibm = ideal_binary_mask(mix.clean, mix.noise, hop_length=128)
    irm = ideal_ratio_mask(mix.clean, mix.noise, hop_length=128)
    fig = plot_masks(mix.mixture, mix.clean, 16000, ibm, irm, 128)
    shown = [ax.images[0].get_array() for ax in fig.axes[:4]]
    assert set(torch.unique(torch.as_tensor(shown[2].data)).tolist()) <= {0.0, 1.0}
    assert shown[3].shape == tuple(irm.shape)


def test_audio_player_embeds_wav_at_the_rate(utterance):
    html = audio_player(utterance.waveform, 16000)._repr_html_()
    assert "<audio" in html and "data:audio/wav;base64," in html
