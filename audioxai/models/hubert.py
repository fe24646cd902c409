"""Waveform classifiers whose hidden states an interpreter can read (chapter 2, L-MAC).

``HubertClassifier``: a speech encoder of transformers' ``HubertModel`` architecture (a strided
convolutional feature encoder, then transformer layers) with a small head: mean over frames of the
last layer, dropout, linear. The in-book encoder is small and trained from scratch on SynthDigits in
noise; ``HubertClassifier.from_pretrained(path)`` puts a HuBERT checkpoint from a local folder (for
example HuBERT Large, whose layers 6, 12, 18 and 24 the design note feeds to the decoder) under a
fresh head. Nothing is downloaded: the folder must hold the model.

``SpectrogramClassifier``: the chapter 1 ``DigitCNN`` on a log-mel front-end computed inside the
model, so it too takes waveforms and exposes its conv blocks as hidden states.

Both take raw waveforms ``(B, num_samples)`` at ``sample_rate`` with no normalisation inside the
model: a mask that scales the whole input down must change what the classifier sees, or a sparsity
penalty could be met by shrinking the mask uniformly. Inputs are peak-normalised by the data pipeline.
``hidden_states(waveform, layers)`` returns one ``(B, frames, channels)`` tensor per requested layer.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from torch import nn
from transformers import HubertConfig, HubertModel

from audioxai.errors import ConfigError
from audioxai.features.spectrogram import log_mel_spectrogram
from audioxai.models.cnn import DigitCNN

__all__ = ["HubertClassifierConfig", "HubertClassifier", "SpectrogramClassifier", "check_waveforms",
           "HUBERT_LARGE_LAYERS"]

HUBERT_LARGE_LAYERS = (6, 12, 18, 24)


@dataclass(frozen=True)
class HubertClassifierConfig:
    """Size of the in-book encoder (HuBERT's layout at a fraction of HuBERT Base's width and depth).

    Attributes:
        hidden_size, num_layers, num_heads, intermediate_size: the transformer.
        conv_channels: width of each of the seven feature-encoder convolutions (HuBERT: 512); the
            strides (5, 2, 2, 2, 2, 2, 2) are HuBERT's, so one frame is 20 ms at 16 kHz. Normalisation
            is HuBERT Base's (group norm in the first convolution, post-norm transformer): trained from
            scratch on a few hundred noisy clips it learns several times faster than HuBERT Large's
            layer-norm variant (val. accuracy 0.39 vs 0.19 after 8 epochs in our trial).
        num_classes: outputs of the head.
        dropout: in the transformer and before the head.
        sample_rate, num_samples: the input the classifier is trained on (1 s at 16 kHz).
    """

    hidden_size: int = 96
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 192
    conv_channels: int = 64
    num_classes: int = 10
    dropout: float = 0.1
    sample_rate: int = 16000
    num_samples: int = 16000

    def hubert_config(self) -> HubertConfig:
        return HubertConfig(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size, conv_dim=(self.conv_channels,) * 7,
            conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2), feat_extract_norm="group",
            do_stable_layer_norm=False, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
            hidden_dropout=self.dropout, attention_dropout=self.dropout, activation_dropout=self.dropout,
            feat_proj_dropout=self.dropout, layerdrop=0.0, apply_spec_augment=False)


def check_waveforms(waveform: torch.Tensor, num_samples: int, sample_rate: int, what: str = "classifier") -> torch.Tensor:
    """``(B, num_samples)`` finite float waveforms, or a ConfigError saying what is wrong and what to do."""
    if not torch.is_tensor(waveform) or not waveform.is_floating_point():
        raise ConfigError(f"{what} takes float waveform tensors, got {type(waveform).__name__}")
    if waveform.ndim == 1:
        waveform = waveform[None]
    if waveform.ndim != 2:
        raise ConfigError(f"{what} takes mono waveforms (batch, samples), got shape {tuple(waveform.shape)}; "
                          f"average stereo channels first")
    if waveform.shape[1] != num_samples:
        raise ConfigError(f"{what} expects {num_samples} samples ({num_samples / sample_rate:g} s at {sample_rate} Hz), "
                          f"got {waveform.shape[1]}: resample to {sample_rate} Hz and pad or crop with "
                          f"audioxai.data.audiomnist.fix_length")
    if not torch.isfinite(waveform).all():
        raise ConfigError(f"{what}: the waveform holds NaN or infinite values")
    return waveform


def _check_layers(layers: tuple[int, ...] | list[int], available: int, what: str) -> tuple[int, ...]:
    layers = tuple(int(i) for i in layers)
    bad = [i for i in layers if not 1 <= i <= available]
    if not layers or bad:
        raise ConfigError(f"layers {list(layers)}: {what} has {available} layers; choose indices from 1 to {available}")
    return layers


class HubertClassifier(nn.Module):
    """HuBERT-architecture encoder + mean-pooling linear head on raw waveforms.

    Args:
        config: the in-book encoder's size (ignored by ``from_pretrained``, which reads the checkpoint's).
        encoder: an existing ``HubertModel`` to wrap instead of building one from ``config``.
    """

    def __init__(self, config: HubertClassifierConfig = HubertClassifierConfig(), encoder: HubertModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else HubertModel(config.hubert_config())
        width = self.encoder.config.hidden_size
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, config.num_classes))
        self.sample_rate, self.num_samples = config.sample_rate, config.num_samples

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], num_classes: int = 10, sample_rate: int = 16000,
                        num_samples: int = 16000) -> HubertClassifier:
        """A local HuBERT checkpoint folder (``config.json`` + weights) under a fresh head; never downloads."""
        if not os.path.isdir(path):
            raise ConfigError(f"HuBERT checkpoint folder {path} not found: point at a folder holding config.json "
                              f"and the weights (nothing is downloaded)")
        encoder = HubertModel.from_pretrained(path, local_files_only=True)
        cfg = HubertClassifierConfig(hidden_size=encoder.config.hidden_size, num_layers=encoder.config.num_hidden_layers,
                                     num_classes=num_classes, sample_rate=sample_rate, num_samples=num_samples)
        return cls(cfg, encoder)

    @property
    def num_layers(self) -> int:
        return int(self.encoder.config.num_hidden_layers)

    def default_layers(self) -> tuple[int, ...]:
        """HuBERT Large's 6, 12, 18, 24 when the encoder has 24 layers; otherwise every layer (up to four, evenly spaced)."""
        n = self.num_layers
        if n == 24:
            return HUBERT_LARGE_LAYERS
        if n <= 4:
            return tuple(range(1, n + 1))
        return tuple(round(n * k / 4) for k in range(1, 5))

    def layer_channels(self, layers: tuple[int, ...]) -> tuple[int, ...]:
        _check_layers(layers, self.num_layers, "the encoder")
        return (int(self.encoder.config.hidden_size),) * len(layers)

    def _encode(self, waveform: torch.Tensor, hidden: bool):
        waveform = check_waveforms(waveform, self.num_samples, self.sample_rate)
        return self.encoder(waveform, output_hidden_states=hidden)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.head(self._encode(waveform, False).last_hidden_state.mean(dim=1))

    def classify_with_hidden_states(self, waveform: torch.Tensor, layers: tuple[int, ...]):
        """``(logits, [hidden state (B, frames, hidden_size) after each layer in layers])``, one encoder pass."""
        layers = _check_layers(layers, self.num_layers, "the encoder")
        out = self._encode(waveform, True)
        return self.head(out.last_hidden_state.mean(dim=1)), [out.hidden_states[i] for i in layers]

    def hidden_states(self, waveform: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        return self.classify_with_hidden_states(waveform, layers)[1]

    def feature_encoder_layer(self) -> nn.Module:
        """The last convolution of the feature encoder: the layer Grad-CAM reads (a (B, C, frames) map)."""
        return self.encoder.feature_extractor.conv_layers[-1]

    def describe(self) -> dict:
        return {"architecture": "hubert", **asdict(self.config)}


class SpectrogramClassifier(nn.Module):
    """``DigitCNN`` on a log-mel front-end inside the model, so it takes waveforms like ``HubertClassifier``.

    Args:
        cnn: the spectrogram CNN (chapter 1's ``DigitCNN``).
        sample_rate, num_samples: the waveform it takes.
        n_mels, n_fft, hop_length: the log-mel front-end; the defaults are chapter 1's at 64 bands.
    """

    def __init__(self, cnn: DigitCNN, sample_rate: int = 8000, num_samples: int = 8000, n_mels: int = 64,
                 n_fft: int = 1024, hop_length: int = 126) -> None:
        super().__init__()
        self.cnn, self.sample_rate, self.num_samples = cnn, sample_rate, num_samples
        self.n_mels, self.n_fft, self.hop_length = n_mels, n_fft, hop_length

    @property
    def num_layers(self) -> int:
        return len(self.cnn.features)

    def default_layers(self) -> tuple[int, ...]:
        return tuple(range(1, self.num_layers + 1))

    def layer_channels(self, layers: tuple[int, ...]) -> tuple[int, ...]:
        layers = _check_layers(layers, self.num_layers, "the CNN")
        return tuple(self.cnn.features[i - 1][0].out_channels for i in layers)

    def spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        waveform = check_waveforms(waveform, self.num_samples, self.sample_rate)
        spec = log_mel_spectrogram(waveform, self.sample_rate, n_mels=self.n_mels, n_fft=self.n_fft,
                                   hop_length=self.hop_length, f_min=0.0, f_max=self.sample_rate / 2)
        return spec[..., : self.n_mels].unsqueeze(1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.cnn(self.spectrogram(waveform))

    def classify_with_hidden_states(self, waveform: torch.Tensor, layers: tuple[int, ...]):
        """Logits and each chosen conv block's output averaged over frequency: ``(B, frames, channels)``."""
        layers = _check_layers(layers, self.num_layers, "the CNN")
        h = (self.spectrogram(waveform) - self.cnn.input_mean) / self.cnn.input_std
        states = []
        for i, block in enumerate(self.cnn.features, start=1):
            h = block(h)
            if i in layers:
                states.append(h.mean(dim=2).transpose(1, 2))
        return self.cnn.classifier(h), states

    def hidden_states(self, waveform: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        return self.classify_with_hidden_states(waveform, layers)[1]

    def feature_encoder_layer(self) -> nn.Module:
        return self.cnn.features[-1]

    def describe(self) -> dict:
        return {"architecture": "cnn", "sample_rate": self.sample_rate, "num_samples": self.num_samples,
                "n_mels": self.n_mels, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "first_pool": self.cnn.first_pool}
