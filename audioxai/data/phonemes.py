"""Broad phoneme classes of eSpeak NG's IPA labels, and how much of a time profile falls on each phoneme.

eSpeak NG writes a phoneme as IPA with stress and length marks (``ˈiə``, ``ɔː``). ``phoneme_class``
strips the marks and classifies by the first symbol: vowel (including diphthongs), plosive,
fricative, nasal or approximant (liquids and glides); anything else is "other".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from audioxai.errors import ConfigError

__all__ = ["PHONEME_CLASSES", "phoneme_class", "mean_per_phoneme"]

PHONEME_CLASSES = ("vowel", "plosive", "fricative", "nasal", "approximant", "other")
_MARKS = set("ˈˌːˑ'\u0303\u0329\u032f")
_SYMBOLS = {
    "vowel": set("aeiouyæɑɒɔəɛɜɪʊʌøœɐɘɵɤɨʉɯɚɝ"),
    "plosive": set("pbtdkgʔcɟq"),
    "fricative": set("fvθðszʃʒhçxɣχʁħʕɸβ"),
    "nasal": set("mnŋɲɱɴ"),
    "approximant": set("wjlɹɾrɻʋɭʎʟɥ"),
}


def phoneme_class(label: str) -> str:
    """The broad class of an IPA phoneme label (stress and length marks ignored)."""
    core = [c for c in label if c not in _MARKS]
    if not core:
        return "other"
    for name, symbols in _SYMBOLS.items():
        if core[0] in symbols:
            return name
    return "other"


def mean_per_phoneme(profile: torch.Tensor, phonemes: Sequence[tuple[str, float, float]],
                     duration: float) -> list[tuple[str, str, float]]:
    """Mean of a time profile over each phoneme's interval: ``[(label, class, mean), ...]``.

    Args:
        profile: (frames,) values spread evenly over ``duration`` seconds (frame i covers
            [i, i + 1) * duration / frames); e.g. a mask averaged over frequency.
        phonemes: (label, start, end) in seconds, as SynthDigits' alignments.
    Phonemes that cover no frame centre get the value of the frame holding their midpoint.
    """
    if profile.ndim != 1 or profile.numel() == 0:
        raise ConfigError(f"profile must be a non-empty 1-D time profile, got shape {tuple(profile.shape)}")
    frames = profile.numel()
    centres = (torch.arange(frames, dtype=torch.float64) + 0.5) * duration / frames
    rows = []
    for label, start, end in phonemes:
        inside = (centres >= start) & (centres < end)
        if inside.any():
            value = float(profile[inside].double().mean())
        else:
            value = float(profile[min(frames - 1, int((start + end) / 2 / duration * frames))])
        rows.append((label, phoneme_class(label), value))
    return rows
