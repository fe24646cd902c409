import pytest
import torch

from audioxai.data.phonemes import mean_per_phoneme, phoneme_class
from audioxai.errors import ConfigError


def test_espeak_labels_of_the_ten_digits_get_their_classes():
    assert [phoneme_class(p) for p in ("z", "ˈiə", "ɹ", "ʌʊ")] == ["fricative", "vowel", "approximant", "vowel"]
    assert [phoneme_class(p) for p in ("t", "ˈɔː", "n", "θ", "k", "ˈeː")] == \
        ["plosive", "vowel", "nasal", "fricative", "plosive", "vowel"]
    assert phoneme_class("ˈ") == "other" and phoneme_class("_") == "other"


def test_mean_per_phoneme_averages_the_frames_inside_each_interval():
    profile = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0])  # 10 frames over 1 s
    rows = mean_per_phoneme(profile, [("s", 0.1, 0.3), ("ˈɪ", 0.4, 0.6), ("k", 0.62, 0.64)], 1.0)
    assert rows[0] == ("s", "fricative", 1.0) and rows[1] == ("ˈɪ", "vowel", 0.5)
    assert rows[2] == ("k", "plosive", 0.0)  # no frame centre inside: the frame at its midpoint
    with pytest.raises(ConfigError, match="1-D time profile"):
        mean_per_phoneme(torch.zeros(2, 3), [], 1.0)
