"""Inputs of the cross-modality study: digit images and log-mel spectrograms at matched resolutions.

Images are resized (bilinear) to ``resolution x resolution``; spectrograms of 1 s of SynthDigits (or
AudioMNIST) at 8 kHz, the AudioMNIST paper's rate, have ``resolution`` mel bands and the same
number of frames: the hop is chosen so that one second gives ``resolution`` frames, and the time axis
is cropped to exactly that. Each split is a ``ModalityData`` with the inputs, labels, the ground-truth
masks for localisation (the digit's ink for images; the spoken digit's time span for audio) and
what a figure needs to label its axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from audioxai.data.audiomnist import AudioMNIST
from audioxai.data.images import DigitsImages
from audioxai.features.spectrogram import log_mel_spectrogram

__all__ = ["ModalityData", "image_data", "audio_data", "spectrogram_hop", "AUDIO_SAMPLE_RATE", "AUDIO_N_FFT"]

AUDIO_SAMPLE_RATE = 8000
AUDIO_N_FFT = 1024
AUDIO_DURATION = 1.0


@dataclass
class ModalityData:
    """One split of one modality at one resolution."""

    inputs: torch.Tensor  # (N, 1, R, R)
    labels: torch.Tensor  # (N,)
    truth: torch.Tensor | None  # (N, 1, R, R) bool, where the evidence is; None when unknown
    kind: str  # "image" or "spectrogram"
    resolution: int
    duration: float = AUDIO_DURATION
    sample_rate: int = AUDIO_SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ModalityData:
        truth = None if self.truth is None else self.truth[index]
        return ModalityData(self.inputs[index], self.labels[index], truth, self.kind, self.resolution,
                            self.duration, self.sample_rate)


def image_data(images: DigitsImages, split: str, resolution: int, ink_threshold: float = 0.5) -> ModalityData:
    """Images of ``split`` resized to ``resolution``; truth is the ink (pixels above ``ink_threshold`` x max)."""
    x, y = images.split(split)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False).clamp(0, 1)
    ink = x > ink_threshold * x.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return ModalityData(x, y, ink, "image", resolution)


def spectrogram_hop(resolution: int, sample_rate: int = AUDIO_SAMPLE_RATE, duration: float = AUDIO_DURATION) -> int:
    """Hop giving at least ``resolution`` centred frames over ``duration`` (then cropped to exactly that)."""
    return int(sample_rate * duration) // (resolution - 1)


def audio_data(dataset: AudioMNIST, resolution: int) -> ModalityData:
    """Log-mel spectrograms (dB, 80 dB range) with ``resolution`` bands and frames; truth is the digit's span."""
    waves = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    hop = spectrogram_hop(resolution, dataset.sample_rate)
    spec = log_mel_spectrogram(waves, dataset.sample_rate, n_mels=resolution, n_fft=AUDIO_N_FFT, hop_length=hop,
                               f_min=0.0, f_max=dataset.sample_rate / 2)[..., :resolution].unsqueeze(1)
    truth = None
    if all(r.word_span is not None for r in dataset.recordings):
        centres = torch.arange(resolution) * hop / dataset.sample_rate
        spans = torch.tensor([r.word_span for r in dataset.recordings])
        inside = (centres[None] >= spans[:, :1]) & (centres[None] <= spans[:, 1:])
        truth = inside[:, None, None, :].expand(-1, 1, resolution, -1).contiguous()
    return ModalityData(spec.contiguous(), labels, truth, "spectrogram", resolution,
                        dataset.num_samples / dataset.sample_rate, dataset.sample_rate)
