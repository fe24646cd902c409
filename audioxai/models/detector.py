"""A spoofing detector in the manner of XLSR-Conformer-TCM (Truong et al., Interspeech 2024), at a tiny size.

Shape kept from XLSR-Conformer-TCM: raw waveform -> self-supervised speech encoder of wav2vec2/XLS-R's
architecture (transformers' ``Wav2Vec2Model``: seven strided convolutions, 20 ms frames with a
400-sample receptive field, then transformer layers) -> linear projection -> Conformer blocks with
one learnable token per attention head prepended ("temporal-channel head tokens": each summarises
the sequence for one head) -> the head tokens' outputs concatenated -> linear -> 2 logits (index 1 =
spoof). Training (``audioxai.models.detector_training``) averages the weights of the 5 epochs with the
lowest validation EER (``avg_5_best``).

Simplified: the encoder is tiny and trained from scratch (``SpoofDetector.from_pretrained`` puts a
real XLS-R folder underneath); the Conformer layers are torchaudio's (standard multi-head
self-attention, no positional encoding of their own: the wav2vec2 convolutional positional embedding
already carries position). In TCM the head tokens are rebuilt inside every attention layer from each
head's channel slice averaged over time and merged into one class token the classifier reads; here
K learnable tokens are prepended once, carried through every layer, and read directly, so each
layer's attention is a plain ``(K+F) x (K+F)`` matrix an explainer can multiply through. No
RawBoost augmentation and no padding masks (a batch holds clips of one length); the encoder's own
learning rate is optional (``DetectorTrainConfig.encoder_lr``, for a pretrained XLS-R).

Frames and window: the feature encoder's field of 400 samples (25 ms) gives a frequency resolution of
about 80 Hz, too coarse to see harmonics of a 100 to 200 Hz voice smeared within mel bands (the
chapter's mel-vocoder spoofs: a linear probe on log spectra of 25 ms windows tells those frames from
bona fide speech on held-out voices with AUC 0.77, on 64 ms windows with 0.87,
``benchmarks/spoof_window_probe.py``). ``DetectorConfig.first_conv_kernel`` lengthens the first
convolution, a learnable filterbank, without changing the 20 ms hop; ``centre_frames`` pads the
waveform so every frame is centred on its 20 ms label frame whatever the field
(``SpoofDetector.frame_centres``, ``frame_windows``). Trained from scratch on chapter 3's 36 voices, a
64 ms field did worse on held-out voices: from random weights it fitted both the training and the
held-out voices worse, from Gabor filters it fitted the training voices best and held-out voices
worst (test EER 20.8 % and 22.2 %, against 14.9 % at 25 ms; CPU, 20 epochs), so the defaults stay
wav2vec2's. ``DetectorConfig.spectral_window`` takes the other road: a fixed (not learned) log
spectrum of a long window per frame, added to the feature encoder's output through a learned linear
map (``SpectralInput``). ``DetectorConfig.spectral_norm`` says how each bin is centred:
``"dataset"`` standardises it with the mean and standard deviation over the training clips' frames,
fitted once before training and kept in the checkpoint (close to what the probe reads; it
standardises speech frames only), so a frame's spectral input depends on that frame's window alone; ``"utterance"`` removes each clip's own mean per bin, which
makes every frame's local representation depend on the whole clip, as group norm already does, and
makes the spectral path blind to a global gain, with group norm's consequence for Integrated
Gradients from silence (next paragraph). The clip mean also removes whatever a fully spoofed clip
carries in every frame: in chapter 3's full run a linear probe trained on the true frame labels read
the spoofed frames from z with AUC 0.68 under ``"utterance"``, against 0.83 without the spectral
input. Per-sample attributions are still pooled over the conv field (``frame_windows``), although
frame k's spectral window reaches ``spectral_window / 2`` samples either side of the field's centre.
In chapter 3's full run (CPU, 99 voices, 40 epochs, seed 0), ``spectral_window=1024`` with the
utterance norm lowered the test EER from 9.4 % to 3.1 % (mel-vocoder partial spoofs 16.9 % to 7.8 %),
and raised it on the unseen Klatt spoofs from 23.5 % to 38.8 %.

Level: the model never standardises the waveform (XLS-R's processor would, with ``do_normalize``).
The default encoder norm is XLS-R's (layer norm over channels in every convolution, with biases,
pre-norm transformer), so halving the input changes the output. wav2vec2 Base's ``"group"`` norm
normalises each first-layer channel over the whole utterance, which makes the encoder nearly
blind to a global gain (exactly so but for its epsilon): a mask that shrinks the input uniformly
would then go unnoticed, and Integrated Gradients from silence would put all its path in the
near-silent regime. Choose it only knowing that.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.models import Conformer
from transformers import Wav2Vec2Config, Wav2Vec2Model

from audioxai.config import load_config
from audioxai.errors import ConfigError
from audioxai.models.asr import init_gabor_
from audioxai.models.checkpoints import load_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["ARCHITECTURE", "SPOOF", "EMBEDDING_LAYERS", "DetectorConfig", "SpoofDetector", "multihead_attention_weights", "freeze",
           "load_detector"]

ARCHITECTURE = "xlsr_conformer_tcm"
SPOOF = 1  # logit index of the spoof class; 0 is bona fide
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)  # wav2vec2's feature encoder: 400-sample receptive field,
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)   # 320-sample hop (20 ms at 16 kHz)
EMBEDDING_LAYERS = ("features", "context")  # wav2vec2's z (local) and c (contextual) representations
SPECTRAL_NORMS = ("utterance", "dataset")
ENCODER_FIELDS = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "conv_channels", "feat_extract_norm",
                  "first_conv_kernel", "filterbank_init")


@dataclass(frozen=True)
class DetectorConfig:
    """Size of the detector. Encoder fields are ignored by ``from_pretrained`` (the checkpoint sets them).

    Attributes:
        hidden_size: width of the wav2vec2 transformer, the frame embedding size D (XLS-R 300M: 1024).
        num_layers: wav2vec2 transformer layers (XLS-R 300M: 24).
        num_heads: attention heads per wav2vec2 layer.
        intermediate_size: feed-forward width of each wav2vec2 layer.
        conv_channels: channels of each of the seven feature-encoder convolutions (XLS-R: 512).
        feat_extract_norm: ``"layer"`` (XLS-R: layer norm in every convolution, conv biases, pre-norm
            transformer; keeps the input level visible) or ``"group"`` (wav2vec2 Base: group norm in the
            first convolution only, post-norm transformer; nearly gain-invariant, see the module note).
        first_conv_kernel: length in samples of the first convolution (wav2vec2 and XLS-R: 10, which
            gives the feature encoder a 400-sample, 25 ms receptive field; the field is
            ``390 + first_conv_kernel`` samples, so 634 gives 1024, 64 ms). A longer first filter
            resolves the harmonics of low voices, which a 25 ms window smears (see the module note).
        filterbank_init: start the first convolution as mel-spaced Gabor band-pass filters
            (``audioxai.models.asr.gabor_filterbank``: Hann-windowed cosines and sines, 150 Hz to
            7 kHz) instead of a random init; a long first filter learns slowly from random weights.
            Only the initial weights change (a checkpoint's weights replace them).
        centre_frames: pad the waveform with zeros before the encoder, ``(field - hop) // 2`` samples in
            front and the rest behind, so that frame k's receptive field is centred on samples
            ``[hop k, hop (k + 1))`` (20 ms label frame k) whatever the field, and a clip of
            ``N * hop`` samples gives exactly N frames. Off (wav2vec2's own framing): frame k starts at
            sample ``hop k``, so its centre lies ``(field - hop) / 2`` samples after the label frame's.
        spectral_window: 0 (off) or a window length in samples (1024: 64 ms) of a fixed spectral input
            added to the feature encoder's output (``SpectralInput``): per frame, the log magnitude
            spectrum of a Hann window of this length centred on the frame's receptive field, centred
            per bin (``spectral_norm``), linearly projected to the conv channels (zero-initialised,
            so the detector starts as plain wav2vec2). It gives every frame the frequency resolution that
            resolves harmonics smeared within mel bands (see the module note) without learning the
            filters, which fitted the training voices when they were learned. Both wav2vec2 layers
            (``features`` z and ``context`` c) then carry it. Works on a pretrained encoder too.
        spectral_norm: how the spectral input's log magnitudes are centred per bin: ``"utterance"``
            (less the clip's own mean: gain-blind, but each frame then depends on the whole clip and a
            fully spoofed clip's common trace cancels) or ``"dataset"`` (standardised with the mean
            and standard deviation over the training frames, ``SpoofDetector.fit_spectral_norm``,
            which ``train_detector`` calls before the first epoch; they are saved with the weights).
            Without ``spectral_window`` it has no effect.
        conformer_dim: width of the Conformer (TCM: 128 or 144); the encoder frames are projected to it.
        num_head_tokens: learnable tokens prepended to the frames, one per Conformer head.
        conformer_layers: Conformer blocks.
        conformer_heads: attention heads per Conformer block.
        conformer_ffn_dim: feed-forward width of each Conformer block.
        depthwise_kernel_size: the Conformer convolution's kernel, in frames (odd).
        dropout: in the encoder (hidden, attention, activation, projection) and the Conformer.
        sample_rate: the rate the detector listens at; only messages use it.
    """

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    conv_channels: int = 64
    feat_extract_norm: str = "layer"
    first_conv_kernel: int = CONV_KERNELS[0]
    filterbank_init: bool = False
    centre_frames: bool = False
    spectral_window: int = 0
    spectral_norm: str = "utterance"
    conformer_dim: int = 128
    num_head_tokens: int = 4
    conformer_layers: int = 2
    conformer_heads: int = 4
    conformer_ffn_dim: int = 256
    depthwise_kernel_size: int = 15
    dropout: float = 0.1
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.feat_extract_norm not in ("layer", "group"):
            raise ConfigError(f"feat_extract_norm={self.feat_extract_norm!r}: use 'layer' (XLS-R) or 'group' (wav2vec2 Base)")
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "conv_channels", "conformer_dim",
                     "num_head_tokens", "conformer_layers", "conformer_heads", "conformer_ffn_dim", "sample_rate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use an integer >= 1")
        if isinstance(self.first_conv_kernel, bool) or not isinstance(self.first_conv_kernel, int) \
                or self.first_conv_kernel < CONV_STRIDES[0]:
            raise ConfigError(f"first_conv_kernel={self.first_conv_kernel!r}: use an integer >= {CONV_STRIDES[0]} "
                              f"(the first convolution's stride; a shorter filter would skip samples)")
        for name in ("centre_frames", "filterbank_init"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r}: use true or false")
        if isinstance(self.spectral_window, bool) or not isinstance(self.spectral_window, int) \
                or not (self.spectral_window == 0 or self.spectral_window >= math.prod(CONV_STRIDES)):
            raise ConfigError(f"spectral_window={self.spectral_window!r}: use 0 (no spectral input) or a window "
                              f"length in samples of at least the {math.prod(CONV_STRIDES)}-sample hop (a shorter one "
                              f"skips samples between frames), e.g. 1024 (64 ms at 16 kHz)")
        if self.spectral_norm not in SPECTRAL_NORMS:
            raise ConfigError(f"spectral_norm={self.spectral_norm!r}: use 'utterance' (less each clip's mean per bin) "
                              f"or 'dataset' (standardised with the training frames' statistics)")
        if self.hidden_size % self.num_heads or self.hidden_size % 4:
            raise ConfigError(f"hidden_size={self.hidden_size} must divide by num_heads={self.num_heads} and by 4 "
                              f"(the positional convolution's groups)")
        if self.conformer_dim % self.conformer_heads:
            raise ConfigError(f"conformer_dim={self.conformer_dim} must divide by conformer_heads={self.conformer_heads}")
        if self.depthwise_kernel_size < 1 or self.depthwise_kernel_size % 2 == 0:
            raise ConfigError(f"depthwise_kernel_size={self.depthwise_kernel_size}: use an odd kernel ('same' padding)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r}: use a probability in [0, 1)")

    def wav2vec2_config(self) -> Wav2Vec2Config:
        """The encoder's transformers config: no masking, no layer drop, eager attention (so it can be returned)."""
        layer = self.feat_extract_norm == "layer"
        d = self.dropout
        return Wav2Vec2Config(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size, conv_dim=(self.conv_channels,) * 7,
            conv_kernel=(self.first_conv_kernel,) + CONV_KERNELS[1:],
            conv_stride=CONV_STRIDES, feat_extract_norm=self.feat_extract_norm, conv_bias=layer,
            do_stable_layer_norm=layer, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
            hidden_dropout=d, attention_dropout=d, activation_dropout=d, feat_proj_dropout=d, layerdrop=0.0,
            apply_spec_augment=False, mask_time_prob=0.0, mask_feature_prob=0.0, attn_implementation="eager")


def multihead_attention_weights(attention: nn.MultiheadAttention, query: torch.Tensor) -> torch.Tensor:
    """Self-attention weights ``(B, H, S, S)`` of ``attention`` on ``query``, before dropout.

    Recomputes softmax(q k^T / sqrt(d)) from the module's packed in-projection, equal to what
    ``attention(query, query, query, need_weights=True, average_attn_weights=False)`` returns in eval
    mode; ``query`` is ``(S, B, D)``, or ``(B, S, D)`` for a ``batch_first`` module.
    """
    if attention.in_proj_weight is None or attention.bias_k is not None or attention.add_zero_attn:
        raise ConfigError("multihead_attention_weights needs a packed in-projection without bias_k or zero attention")
    x = query.transpose(0, 1) if attention.batch_first else query
    length, batch, dim = x.shape
    heads = attention.num_heads
    bias = None if attention.in_proj_bias is None else attention.in_proj_bias[: 2 * dim]
    q, k = F.linear(x, attention.in_proj_weight[: 2 * dim], bias).chunk(2, dim=-1)
    q, k = (t.reshape(length, batch, heads, dim // heads).permute(1, 2, 0, 3) for t in (q, k))
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // heads), dim=-1)


class SpectralInput(nn.Module):
    """A fixed-window log spectrum per encoder frame, projected to ``channels`` (``DetectorConfig.spectral_window``).

    Frame k's window of ``window`` samples (Hann) is centred where the feature encoder's frame k is
    centred, ``centre + hop k`` samples into the (padded) waveform the encoder reads; the waveform is
    zero-padded by half a window at both ends. The log magnitude (floor 1e-5) is centred per bin
    (``norm``): ``"utterance"`` removes its mean over the clip's frames (so a global gain cancels, as
    under group norm); ``"dataset"`` subtracts ``bin_mean`` and divides by ``bin_std``, persistent
    buffers that ``fit`` sets from training clips (the module refuses to run before). A linear map,
    zero at the start, takes the result to ``channels``.
    """

    def __init__(self, window: int, channels: int, hop: int, centre: int, norm: str = "utterance") -> None:
        super().__init__()
        if norm not in SPECTRAL_NORMS:
            raise ConfigError(f"spectral norm {norm!r}: use one of {', '.join(SPECTRAL_NORMS)}")
        self.window, self.hop, self.centre, self.norm = int(window), int(hop), int(centre), norm
        self.register_buffer("hann", torch.hann_window(self.window), persistent=False)
        if norm == "dataset":
            bins = self.window // 2 + 1
            self.register_buffer("bin_mean", torch.zeros(bins))
            self.register_buffer("bin_std", torch.ones(bins))
            self.register_buffer("fitted_frames", torch.zeros((), dtype=torch.long))
        self._fitted = norm != "dataset"  # mirrors fitted_frames > 0 without a device sync per forward
        self.projection = nn.Linear(self.window // 2 + 1, channels)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    @property
    def fitted(self) -> bool:
        """Whether the per-bin statistics are set (always true for the utterance norm)."""
        return self._fitted

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.norm == "dataset":
            self._fitted = int(self.fitted_frames) > 0

    def raw_log_spectra(self, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``(B, num_frames, window // 2 + 1)`` log magnitudes of each frame's window, before centring."""
        half = self.window // 2
        x = F.pad(waveform, (half, self.window - half))
        needed = self.centre + (num_frames - 1) * self.hop + self.window
        if x.shape[-1] < needed:
            x = F.pad(x, (0, needed - x.shape[-1]))
        frames = x[:, self.centre:needed].unfold(1, self.window, self.hop)[:, :num_frames]
        return torch.fft.rfft(frames * self.hann, dim=-1).abs().clamp_min(1e-5).log()

    def log_spectra(self, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``(B, num_frames, window // 2 + 1)`` log magnitudes, centred per bin (``norm``)."""
        spectra = self.raw_log_spectra(waveform, num_frames)
        if self.norm == "utterance":
            return spectra - spectra.mean(dim=1, keepdim=True)
        if not self.fitted:
            raise ConfigError("the detector's spectral input uses spectral_norm='dataset' but its per-bin statistics "
                              "were never fitted: call SpoofDetector.fit_spectral_norm(training waveforms) first "
                              "(train_detector does), or load a trained checkpoint")
        return (spectra - self.bin_mean) / self.bin_std

    @torch.no_grad()
    def fit(self, waveform: torch.Tensor, num_frames: int, batch_size: int = 64, min_std: float = 1e-3) -> None:
        """Set ``bin_mean`` and ``bin_std`` from the first ``num_frames`` frames of each clip (float64 sums).

        ``waveform`` ``(N, T)`` must be what the feature encoder reads (already padded under
        ``centre_frames``) and ``num_frames`` its frame count, or the statistics describe windows the
        model never sees: call ``SpoofDetector.fit_spectral_norm`` on the raw clips instead.
        ``min_std`` floors the standard deviation of a bin that barely varies. Only for the dataset norm.
        """
        if self.norm != "dataset":
            raise ConfigError(f"fit: the spectral input's norm is {self.norm!r}; only 'dataset' has statistics to fit")
        if waveform.ndim != 2 or len(waveform) == 0 or num_frames < 1:
            raise ConfigError(f"fit needs training waveforms (N, T) with N >= 1 and at least one frame, got shape "
                              f"{tuple(waveform.shape)} and {num_frames} frames")
        bins = self.window // 2 + 1
        total = torch.zeros(bins, dtype=torch.float64)
        square = torch.zeros(bins, dtype=torch.float64)
        count = 0
        device = self.hann.device
        for start in range(0, len(waveform), batch_size):
            spectra = self.raw_log_spectra(waveform[start:start + batch_size].to(device), num_frames)
            spectra = spectra.reshape(-1, bins).double().cpu()
            total += spectra.sum(dim=0)
            square += spectra.square().sum(dim=0)
            count += len(spectra)
        mean = total / count
        variance = (square / count - mean.square()).clamp_min(0.0) * count / max(count - 1, 1)
        self.bin_mean.copy_(mean.to(self.bin_mean.dtype))
        self.bin_std.copy_(variance.sqrt().clamp_min(min_std).to(self.bin_std.dtype))
        self.fitted_frames.fill_(count)
        self._fitted = True

    def forward(self, waveform: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``(B, channels, num_frames)``, to add to the feature encoder's output."""
        return self.projection(self.log_spectra(waveform, num_frames)).transpose(1, 2)


class SpoofDetector(nn.Module):
    """wav2vec2-architecture encoder + Conformer with head tokens: ``(B, T)`` waveforms to ``(B, 2)`` logits.

    Args:
        config: the detector's size (encoder fields unused when ``encoder`` is given).
        encoder: an existing ``Wav2Vec2Model`` (from a checkpoint) to put the Conformer head on.
    """

    def __init__(self, config: DetectorConfig = DetectorConfig(), encoder: Wav2Vec2Model | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else Wav2Vec2Model(config.wav2vec2_config())
        if encoder is None and config.filterbank_init:
            init_gabor_(self.encoder.feature_extractor.conv_layers[0].conv, config.sample_rate)
        self.encoder.config._attn_implementation = "eager"
        width, k = config.conformer_dim, config.num_head_tokens
        self.projection = nn.Linear(int(self.encoder.config.hidden_size), width)
        self.head_tokens = nn.Parameter(0.02 * torch.randn(k, width))
        self.conformer = Conformer(input_dim=width, num_heads=config.conformer_heads, ffn_dim=config.conformer_ffn_dim,
                                   num_layers=config.conformer_layers,
                                   depthwise_conv_kernel_size=config.depthwise_kernel_size, dropout=config.dropout)
        self.classifier = nn.Linear(k * width, 2)
        self.receptive_field, self.hop_length = 1, 1
        for kernel, stride in zip(self.encoder.config.conv_kernel, self.encoder.config.conv_stride):
            self.receptive_field += (kernel - 1) * self.hop_length
            self.hop_length *= stride
        extra = max(self.receptive_field - self.hop_length, 0) if config.centre_frames else 0
        self.frame_padding = (extra // 2, extra - extra // 2)  # zeros before and after the waveform
        self.spectral = None
        if config.spectral_window:
            self.spectral = SpectralInput(config.spectral_window, int(self.encoder.config.conv_dim[-1]),
                                          self.hop_length, (self.receptive_field - 1) // 2, config.spectral_norm)
            self.encoder.feature_extractor.register_forward_hook(self._add_spectral)

    def _add_spectral(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the feature encoder: its ``(B, C, F)`` output plus the spectral input."""
        return output + self.spectral(args[0], output.shape[-1])

    def fit_spectral_norm(self, waveform: torch.Tensor, batch_size: int = 64) -> bool:
        """Fit the spectral input's per-bin statistics on training waveforms ``(N, T)`` (``spectral_norm='dataset'``).

        Returns whether there was anything to fit (False without a spectral input or with the utterance
        norm). The frames are those the encoder gives for ``T`` samples, on the padded waveform it reads.
        """
        if self.spectral is None or self.spectral.norm != "dataset":
            return False
        self.spectral.fit(self._encoder_input(waveform), self.frame_count(waveform.shape[-1]), batch_size=batch_size)
        return True

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **config) -> SpoofDetector:
        """A local wav2vec2/XLS-R folder (``config.json`` + weights) under a new Conformer head; never downloads.

        ``config``: ``DetectorConfig`` fields of the head (Conformer, dropout, sample rate, ``spectral_window``,
        ``spectral_norm``, ``centre_frames``); the encoder fields come from the checkpoint. Masking and layer drop are turned off in the loaded encoder.
        """
        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"wav2vec2/XLS-R checkpoint folder {path} not found: point at a local folder holding "
                              f"config.json and the weights (nothing is downloaded)")
        given = sorted(set(config) & set(ENCODER_FIELDS))
        if given:
            raise ConfigError(f"{given}: the encoder's size comes from the checkpoint in {path}; pass head fields only")
        head = load_config(DetectorConfig, config)
        try:
            model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as err:
            raise ConfigError(f"{path} has no readable config.json: not a transformers checkpoint folder ({err})") from err
        if model_type != "wav2vec2":
            raise ConfigError(f"{path} holds a {model_type!r} checkpoint, not wav2vec2/XLS-R (model_type 'wav2vec2')")
        try:
            encoder, info = Wav2Vec2Model.from_pretrained(
                path, local_files_only=True, attn_implementation="eager", output_loading_info=True, layerdrop=0.0,
                apply_spec_augment=False, mask_time_prob=0.0, mask_feature_prob=0.0)
        except (OSError, ValueError, RuntimeError) as err:
            raise ConfigError(f"{path} could not be read as a wav2vec2 checkpoint: {err}") from err
        bad = sorted(info.get("missing_keys") or []) + sorted(str(k) for k in info.get("mismatched_keys") or [])
        if bad:
            raise ConfigError(f"{path}: the weights do not fit its config.json (missing or mismatched: {bad[:5]})")
        enc = encoder.config
        head = replace(head, hidden_size=enc.hidden_size, num_layers=enc.num_hidden_layers,
                       num_heads=enc.num_attention_heads, intermediate_size=enc.intermediate_size,
                       conv_channels=int(enc.conv_dim[-1]), feat_extract_norm=enc.feat_extract_norm,
                       first_conv_kernel=int(enc.conv_kernel[0]))
        return cls(head, encoder)

    @property
    def min_samples(self) -> int:
        """The shortest waveform that gives one frame: the receptive field, less the centring padding."""
        return max(self.receptive_field - sum(self.frame_padding), 1)

    def frame_count(self, num_samples: int) -> int:
        """Frames the feature encoder gives for ``num_samples`` samples (0 below ``min_samples``)."""
        length = int(num_samples) + sum(self.frame_padding)
        for kernel, stride in zip(self.encoder.config.conv_kernel, self.encoder.config.conv_stride):
            length = (length - kernel) // stride + 1
            if length < 1:
                return 0
        return length

    def frame_centres(self, num_samples: int) -> torch.Tensor:
        """Where each frame's receptive field is centred, in samples of the unpadded waveform (float64, (F,))."""
        k = torch.arange(self.frame_count(num_samples), dtype=torch.float64)
        return k * self.hop_length - self.frame_padding[0] + (self.receptive_field - 1) / 2

    def frame_windows(self, values: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` per-sample values summed over each frame's receptive field, ``(B, F)`` (the padding adds 0)."""
        return F.pad(values, self.frame_padding).unfold(1, self.receptive_field, self.hop_length).sum(dim=-1)

    def _encoder_input(self, waveform: torch.Tensor) -> torch.Tensor:
        """The checked waveform, padded as the encoder reads it (``centre_frames``)."""
        x = self.check_waveform(waveform)
        return F.pad(x, self.frame_padding) if any(self.frame_padding) else x

    def _encode(self, waveform: torch.Tensor, **kwargs):
        """The encoder's outputs on the checked, padded (``centre_frames``) waveform."""
        return self.encoder(self._encoder_input(waveform), **kwargs)

    def check_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        """``waveform`` if it is a finite float ``(B, T)`` tensor of at least one frame, else a ConfigError."""
        if not torch.is_tensor(waveform) or not waveform.is_floating_point():
            raise ConfigError(f"the spoof detector takes float waveform tensors, got "
                              f"{getattr(waveform, 'dtype', type(waveform).__name__)}")
        if waveform.ndim != 2:
            raise ConfigError(f"the spoof detector takes mono waveforms (batch, samples), got shape "
                              f"{tuple(waveform.shape)}: use waveform[None] for one clip, average stereo channels")
        rf, sr = self.min_samples, self.config.sample_rate
        if waveform.shape[1] < rf:
            raise ConfigError(f"the spoof detector needs at least {rf} samples ({1000 * rf / sr:g} ms at "
                              f"{sr / 1000:g} kHz), one frame of its feature encoder; got {waveform.shape[1]}: "
                              f"pad short clips")
        if not torch.isfinite(waveform).all():
            raise ConfigError("the spoof detector: the waveform holds NaN or infinite values")
        return waveform

    def embeddings(self, waveform: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden state ``(B, F, hidden_size)``: one embedding per 20 ms frame."""
        return self._encode(waveform).last_hidden_state

    def layer_embeddings(self, waveform: torch.Tensor, layers: tuple[str, ...] = EMBEDDING_LAYERS) -> dict[str, torch.Tensor]:
        """The encoder's frame representations named in ``layers``, each ``(B, F, layer_dim(name))``.

        ``features``: the convolutional feature encoder's output after its layer norm (wav2vec2's local
        representation z: one receptive field per frame, 400 samples (25 ms) by default, nothing from
        the rest of the clip with the ``layer`` norm; the ``group`` norm normalises each first-layer
        channel over the whole clip, so there the clip's statistics enter every frame; with
        ``spectral_window``, z also holds the frame's projected log spectrum, whose window is
        ``spectral_window`` samples, centred per bin by the clip's mean or the training set's
        statistics, ``spectral_norm``);
        ``context``: the last transformer layer (wav2vec2's contextual representation c, what
        ``embeddings`` returns: every frame has seen the whole clip).
        """
        _check_layers(layers)
        out = self._encode(waveform)
        found = {"features": out.extract_features, "context": out.last_hidden_state}
        return {name: found[name] for name in layers}

    def layer_dim(self, name: str) -> int:
        """Width of the representation ``name`` (see ``layer_embeddings``)."""
        _check_layers((name,))
        return int(self.encoder.config.conv_dim[-1] if name == "features" else self.encoder.config.hidden_size)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 2)``; index 1 is spoof."""
        return self.forward_details(waveform)["logits"]

    def forward_details(self, waveform: torch.Tensor, output_attentions: bool = False) -> dict[str, torch.Tensor]:
        """One pass, with what explainers read.

        Returns:
            ``logits`` (B, 2); ``embeddings`` (B, F, hidden_size); ``conformer_frames`` (B, F,
            conformer_dim), the last Conformer layer's outputs on the frame positions;
            ``conformer_frames_in``, that layer's input on the frame positions (what the head tokens'
            outputs read, so the layer Grad-CAM uses: the last layer's frame outputs feed nothing).
            With ``output_attentions``: ``encoder_attentions``, one (B, H, F, F) per wav2vec2 layer, and
            ``conformer_attentions``, one (B, H, K+F, K+F) per Conformer layer, the K head tokens first;
            both are the softmax weights before attention dropout (take them in eval mode).
        """
        out = self._encode(waveform, output_attentions=output_attentions)
        k = self.config.num_head_tokens
        frames = self.projection(out.last_hidden_state)
        x = torch.cat([self.head_tokens.expand(frames.shape[0], -1, -1), frames], dim=1).transpose(0, 1)
        weights: list[torch.Tensor] = []
        hooks = [layer.self_attn.register_forward_pre_hook(
            lambda module, args, kwargs: weights.append(multihead_attention_weights(module, kwargs["query"])),
            with_kwargs=True) for layer in self.conformer.conformer_layers] if output_attentions else []
        try:
            for i, layer in enumerate(self.conformer.conformer_layers):
                if i == len(self.conformer.conformer_layers) - 1:  # route the last input's frames through a
                    frames_in = x[k:].transpose(0, 1)               # (B, F, C) node, so gradients reach it
                    x = torch.cat([x[:k], frames_in.transpose(0, 1)])
                x = layer(x, None)
        finally:
            for hook in hooks:
                hook.remove()
        x = x.transpose(0, 1)
        details = {"logits": self.classifier(x[:, :k].flatten(1)), "embeddings": out.last_hidden_state,
                   "conformer_frames": x[:, k:], "conformer_frames_in": frames_in}
        if output_attentions:
            details["encoder_attentions"] = tuple(out.attentions)
            details["conformer_attentions"] = tuple(weights)
        return details

    def describe(self) -> dict:
        """Plain-type architecture record for checkpoint metadata; ``load_detector`` rebuilds from it."""
        return {"architecture": ARCHITECTURE, "detector": asdict(self.config),
                "encoder": json.loads(self.encoder.config.to_json_string(use_diff=False))}


def _check_layers(layers: tuple[str, ...]) -> None:
    unknown = [name for name in layers if name not in EMBEDDING_LAYERS]
    if unknown:
        raise ConfigError(f"embedding layers {unknown}: choose from {', '.join(EMBEDDING_LAYERS)}")


def freeze(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with ``requires_grad`` off everywhere (what explainers expect); returns it."""
    return model.requires_grad_(False).eval()


# ----------------------------------------------------------------------------------------------- loading


def _state_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """What differs between two state dicts' keys and shapes ('' when they match)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k}: {tuple(found[k].shape)} in the file, {tuple(expected[k].shape)} in the model"
              for k in sorted(set(expected) & set(found)) if found[k].shape != expected[k].shape]
    parts = [f"{len(missing)} missing keys (e.g. {missing[:3]})" if missing else "",
             f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})" if unexpected else "",
             f"{len(shapes)} shape mismatches (e.g. {shapes[:3]})" if shapes else ""]
    return "; ".join(p for p in parts if p)


def load_detector(path: str | os.PathLike[str], config: DetectorConfig | None = None) -> SpoofDetector:
    """A detector rebuilt from a ``train_detector`` checkpoint (weights-only loading), in eval mode, on CPU.

    Args:
        path: the ``avg_5_best.pth`` file (or any checkpoint ``save_checkpoint`` wrote from a detector).
        config: build this architecture instead of the one recorded in the metadata (for a file
            without it); the weights must still fit.

    Raises:
        ConfigError: a checkpoint of another architecture, or weights whose keys or shapes do not fit.
    """
    state, meta = load_checkpoint(path)
    architecture = meta.get("architecture")
    if architecture not in (ARCHITECTURE, None):
        raise ConfigError(f"checkpoint {path} holds a {architecture!r} model, not a spoof detector ({ARCHITECTURE!r})")
    if config is not None:
        recorded = meta.get("detector")
        if isinstance(recorded, dict) and recorded.get("centre_frames", False) != config.centre_frames:
            logger.warning("checkpoint %s was trained with centre_frames=%s but is loaded with centre_frames=%s: "
                           "its frames will sit where it never saw them", path, recorded.get("centre_frames", False),
                           config.centre_frames)
        model = SpoofDetector(config)
    elif architecture is None:
        raise ConfigError(f"checkpoint {path} records no architecture: pass the DetectorConfig it was trained with")
    else:
        encoder_config = Wav2Vec2Config.from_dict(meta["encoder"])
        encoder_config._attn_implementation = "eager"
        model = SpoofDetector(load_config(DetectorConfig, meta["detector"]), Wav2Vec2Model(encoder_config))
    differs = _state_mismatch(model.state_dict(), state)
    if differs:
        norm_keys = {f"spectral.{name}" for name in ("bin_mean", "bin_std", "fitted_frames")}
        if model.spectral is not None and (norm_keys & set(state)) != (norm_keys & set(model.state_dict())):
            trained = "dataset" if norm_keys & set(state) else "utterance"
            differs += (f"; the checkpoint's spectral input was trained with spectral_norm={trained!r}: "
                        f"pass that in the DetectorConfig")
        raise ConfigError(f"checkpoint {path} does not fit the spoof detector: {differs}")
    model.load_state_dict(state)
    return model.eval()
