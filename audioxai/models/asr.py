"""A character CTC speech recogniser of the ``Wav2Vec2ForCTC`` architecture.

``CTCRecognizer`` wraps any transformers CTC model (the in-book one is a small ``Wav2Vec2ForCTC``
built by ``build_ctc_model`` and trained from scratch by ``audioxai.models.asr_training``; any local
Hugging Face CTC checkpoint folder loads with ``CTCRecognizer.from_pretrained``, offline) with its
character vocabulary. The in-book vocabulary is ``VOCAB``: ``<pad>`` (id 0) is the CTC blank, ``|``
separates words. Waveforms are 16 kHz float32 ``(B, N)``; the model never standardises them unless
the checkpoint's ``preprocessor_config.json`` says ``do_normalize`` (the in-book model does not: with
a layer-norm front-end the input level stays visible, so masking a segment by silence changes
what the model hears and Integrated Gradients from silence is not degenerate).

What SHAP explains of it (forced alignment, per-word scores): ``audioxai.models.ctc_scores``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCTC, PreTrainedModel, Wav2Vec2Config, Wav2Vec2ForCTC
from transformers.utils import logging as hf_logging

from audioxai.data.audio import check_waveform, resample_to
from audioxai.errors import AudioInputError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["VOCAB", "BLANK_ID", "ASRConfig", "build_ctc_model", "gabor_filterbank", "init_gabor_", "CTCRecognizer",
           "encode_transcript", "decode_ids"]

VOCAB: tuple[str, ...] = ("<pad>", "|", "'", *"abcdefghijklmnopqrstuvwxyz")
BLANK_ID = 0


@dataclass(frozen=True)
class ASRConfig:
    """Size of the in-book ``Wav2Vec2ForCTC`` (defaults: 0.44 M parameters, 20 ms frames).

    Attributes:
        hidden_size, num_layers, num_heads, intermediate_size: the transformer.
        conv_dim, conv_kernel, conv_stride: the convolutional front-end, one entry per layer; the
            product of the strides is the hop between frames in samples (320 = 20 ms at 16 kHz).
        feat_extract_norm: ``"layer"`` (layer norm in every convolution, pre-norm transformer, as in
            XLS-R; keeps the input level visible and learns fastest from scratch here) or ``"group"``.
        num_conv_pos_embeddings, num_conv_pos_embedding_groups: the convolutional position embedding.
        hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout, final_dropout: dropout.
        mask_time_prob, mask_time_length: SpecAugment-style time masking while training (0 = off).
        layerdrop: probability of skipping a transformer layer while training.
        filterbank_init: start the first convolution as mel-spaced Gabor band-pass filters (cosine and
            sine pairs under a Hann window, 150 Hz to 0.44 x sample_rate), as learnable time-domain
            filterbanks do (Zeghidour et al., 2018); it is trained like any layer. From scratch on the
            sentence corpus it halves the steps spent at the all-blank plateau.
        sample_rate: the rate the model listens at.
    """

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    conv_dim: tuple[int, ...] = (32, 64, 64)
    conv_kernel: tuple[int, ...] = (80, 8, 4)
    conv_stride: tuple[int, ...] = (10, 8, 4)
    feat_extract_norm: str = "layer"
    num_conv_pos_embeddings: int = 32
    num_conv_pos_embedding_groups: int = 4
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.0
    final_dropout: float = 0.0
    mask_time_prob: float = 0.0
    mask_time_length: int = 5
    layerdrop: float = 0.0
    filterbank_init: bool = True
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) >= 1:
            raise ConfigError(f"conv_dim, conv_kernel and conv_stride need one entry per layer, got "
                              f"{len(self.conv_dim)}, {len(self.conv_kernel)} and {len(self.conv_stride)}")
        if self.feat_extract_norm not in ("layer", "group"):
            raise ConfigError(f"feat_extract_norm={self.feat_extract_norm!r}: use 'layer' or 'group'")
        if self.hidden_size % self.num_heads or self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ConfigError(f"hidden_size={self.hidden_size} must divide by num_heads={self.num_heads} and by "
                              f"num_conv_pos_embedding_groups={self.num_conv_pos_embedding_groups}")

    def wav2vec2_config(self) -> Wav2Vec2Config:
        """The transformers config: character vocabulary, blank = pad = 0, mean CTC loss, infinities zeroed."""
        layer = self.feat_extract_norm == "layer"
        return Wav2Vec2Config(
            vocab_size=len(VOCAB), pad_token_id=BLANK_ID, ctc_loss_reduction="mean", ctc_zero_infinity=True,
            hidden_size=self.hidden_size, num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size, conv_dim=tuple(self.conv_dim),
            conv_kernel=tuple(self.conv_kernel), conv_stride=tuple(self.conv_stride),
            feat_extract_norm=self.feat_extract_norm, conv_bias=layer, do_stable_layer_norm=layer,
            num_conv_pos_embeddings=self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups=self.num_conv_pos_embedding_groups, hidden_dropout=self.hidden_dropout,
            attention_dropout=self.attention_dropout, activation_dropout=self.activation_dropout,
            feat_proj_dropout=self.feat_proj_dropout, final_dropout=self.final_dropout, layerdrop=self.layerdrop,
            apply_spec_augment=self.mask_time_prob > 0, mask_time_prob=self.mask_time_prob,
            mask_time_length=self.mask_time_length, mask_feature_prob=0.0)


def gabor_filterbank(num_filters: int, kernel_size: int, sample_rate: int = 16000) -> torch.Tensor:
    """``(num_filters, kernel_size)`` unit-norm Hann-windowed cosines (even rows) and sines (odd rows).

    Pair k is centred at the k-th of ``ceil(num_filters / 2)`` frequencies evenly spaced on the mel
    scale, ``m(f) = 2595 log10(1 + f / 700)``, from 150 Hz to ``0.44 * sample_rate``.
    """
    pairs = (num_filters + 1) // 2
    low, high = (2595 * math.log10(1 + f / 700) for f in (150.0, 0.44 * sample_rate))
    mels = torch.linspace(low, high, pairs, dtype=torch.float64) if pairs > 1 else torch.tensor([low], dtype=torch.float64)
    freqs = 700 * (10 ** (mels / 2595) - 1)
    t = (torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2) / sample_rate
    window = torch.hann_window(kernel_size, periodic=False, dtype=torch.float64) if kernel_size > 1 else torch.ones(1)
    rows = [window * torch.cos(2 * math.pi * freqs[k // 2] * t + (math.pi / 2) * (k % 2)) for k in range(num_filters)]
    bank = torch.stack(rows)
    return (bank / bank.norm(dim=1, keepdim=True).clamp_min(1e-12)).float()


@torch.no_grad()
def init_gabor_(conv: nn.Conv1d, sample_rate: int = 16000) -> nn.Conv1d:
    """Set a one-input-channel ``conv``'s filters to ``gabor_filterbank`` (bias to zero), in place; returns it."""
    conv.weight.copy_(gabor_filterbank(conv.out_channels, conv.kernel_size[0], sample_rate)[:, None])
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


def build_ctc_model(cfg: ASRConfig = ASRConfig()) -> Wav2Vec2ForCTC:
    """A freshly initialised ``Wav2Vec2ForCTC`` over ``VOCAB`` (torch's global seed sets the weights)."""
    model = Wav2Vec2ForCTC(cfg.wav2vec2_config())
    if cfg.filterbank_init:
        init_gabor_(model.wav2vec2.feature_extractor.conv_layers[0].conv, cfg.sample_rate)
    return model


def _delimiter(vocab: Sequence[str]) -> str | None:
    return "|" if "|" in vocab else (" " if " " in vocab else None)


def encode_transcript(text: str, vocab: Sequence[str] = VOCAB) -> list[int]:
    """Token ids of ``text``: lower-cased, words joined by the word delimiter ``|``.

    Characters are looked up as written lower-case, then upper-case (for checkpoints with capital
    letters). Raises ConfigError naming a character the vocabulary lacks.
    """
    lookup = {token: i for i, token in enumerate(vocab)}
    delimiter = _delimiter(vocab)
    ids: list[int] = []
    for k, word in enumerate(str(text).lower().split()):
        if k:
            if delimiter is None:
                raise ConfigError(f"the vocabulary has no word delimiter ('|' or ' '), so {text!r} cannot be encoded "
                                  f"as several words")
            ids.append(lookup[delimiter])
        for ch in word:
            idx = lookup.get(ch, lookup.get(ch.upper()))
            if idx is None:
                raise ConfigError(f"character {ch!r} in transcript {text!r} is not in the recogniser's vocabulary "
                                  f"{''.join(t for t in vocab if len(t) == 1)!r}: remove it or spell it out")
            ids.append(idx)
    return ids


def decode_ids(ids: Sequence[int] | torch.Tensor, vocab: Sequence[str] = VOCAB, blank_id: int = BLANK_ID,
               ctc: bool = False) -> str:
    """Text of token ids: ``|`` becomes a space and special tokens (``<...>``) vanish; lower-case.

    Args:
        ctc: collapse repeated ids and drop ``blank_id`` first (greedy CTC decoding of a frame path).
    """
    ids = [int(i) for i in (ids.tolist() if torch.is_tensor(ids) else ids)]
    if ctc:
        ids = [i for k, i in enumerate(ids) if (k == 0 or i != ids[k - 1]) and i != blank_id]
    delimiter = _delimiter(vocab)
    chars = [" " if vocab[i] == delimiter else ("" if vocab[i].startswith("<") and len(vocab[i]) > 1 else vocab[i])
             for i in ids]
    return " ".join("".join(chars).lower().split())


def _conv_geometry(config) -> tuple[int, int]:
    """(receptive field, hop) in samples of a wav2vec2-style convolutional front-end."""
    field, hop = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * hop
        hop *= stride
    return field, hop


@contextlib.contextmanager
def _quiet_offline() -> Iterator[None]:
    """Set HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE and hide transformers' progress bars, then restore them."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` (old content removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "previous")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not readable JSON ({err}): re-save the checkpoint") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} should hold a JSON object, not {type(data).__name__}")
    return data


def _read_vocab(folder: Path, size: int) -> tuple[str, ...]:
    """The id-ordered tokens of ``folder/vocab.json`` (missing ids become ``<unused_i>``), else ``VOCAB``."""
    path = folder / "vocab.json"
    if not path.is_file():
        if size != len(VOCAB):
            raise ConfigError(f"{folder} has no vocab.json and its CTC head has {size} outputs, not the {len(VOCAB)} "
                              f"of audioxai's VOCAB: add the tokenizer's vocab.json to the folder")
        return VOCAB
    mapping = _read_json(path)
    if not all(isinstance(i, int) for i in mapping.values()):
        raise ConfigError(f"{path} should map each token to an integer id (one language, not nested)")
    if max(mapping.values(), default=-1) >= size or len(set(mapping.values())) != len(mapping):
        raise ConfigError(f"{path} has {len(mapping)} tokens with ids that do not fit the CTC head's {size} outputs "
                          f"(or repeat): use the vocab.json the model was trained with")
    tokens = [f"<unused_{i}>" for i in range(size)]
    for token, i in mapping.items():
        tokens[i] = token
    return tuple(tokens)


class CTCRecognizer(nn.Module):
    """A transformers CTC model plus its vocabulary: waveforms in, frame log-posteriors and text out.

    Args:
        model: a ``Wav2Vec2ForCTC`` (or any ``*ForCTC`` of the wav2vec2 family).
        vocab: token of each output id; ``model.config.pad_token_id`` is the CTC blank.
        sample_rate: the rate the model listens at.
        normalize: standardise each waveform to zero mean and unit variance inside the model
            (checkpoints whose feature extractor has ``do_normalize``); the in-book model does not.
    """

    def __init__(self, model: PreTrainedModel, vocab: Sequence[str] = VOCAB, sample_rate: int = 16000,
                 normalize: bool = False) -> None:
        super().__init__()
        size = int(model.lm_head.out_features) if hasattr(model, "lm_head") else int(model.config.vocab_size)
        if len(vocab) != size:
            raise ConfigError(f"the vocabulary has {len(vocab)} tokens but the CTC head has {size} outputs: "
                              f"pass the vocabulary the model was trained with")
        self.model, self.vocab, self.sample_rate, self.normalize = model, tuple(vocab), int(sample_rate), normalize
        pad = model.config.pad_token_id
        self.blank_id = int(pad) if pad is not None else (self.vocab.index("<pad>") if "<pad>" in self.vocab else 0)
        self.receptive_field, self.hop_length = _conv_geometry(model.config)
        self.frame_seconds = self.hop_length / self.sample_rate

    @classmethod
    def from_config(cls, cfg: ASRConfig = ASRConfig()) -> CTCRecognizer:
        """A fresh in-book recogniser (``build_ctc_model(cfg)`` over ``VOCAB``)."""
        return cls(build_ctc_model(cfg), VOCAB, cfg.sample_rate)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def frame_count(self, num_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Frames the front-end gives for ``num_samples`` samples (an int, or a tensor of lengths)."""
        length = num_samples
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            length = (length - kernel) // stride + 1
        return length.clamp_min(0) if torch.is_tensor(length) else max(int(length), 0)

    def encode(self, text: str) -> list[int]:
        return encode_transcript(text, self.vocab)

    def decode(self, ids: Sequence[int] | torch.Tensor, ctc: bool = False) -> str:
        return decode_ids(ids, self.vocab, self.blank_id, ctc=ctc)

    def _check_batch(self, waveforms: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(waveforms) or not waveforms.is_floating_point():
            raise AudioInputError(f"the recogniser takes float waveform tensors, got "
                                  f"{getattr(waveforms, 'dtype', type(waveforms).__name__)}")
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        if waveforms.ndim != 2:
            raise AudioInputError(f"the recogniser takes (batch, samples) waveforms, got shape {tuple(waveforms.shape)}")
        rf = self.receptive_field
        if waveforms.shape[1] < rf:
            raise AudioInputError(f"the waveform has {waveforms.shape[1]} samples but the recogniser needs at least "
                                  f"{rf} samples ({rf / self.sample_rate:.4f} s at {self.sample_rate} Hz), one frame "
                                  f"of its convolutional front-end: pad it or use a longer clip")
        return waveforms

    def log_probs(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Frame log-posteriors ``(B, T, V)`` (log-softmax) of ``(B, N)`` waveforms on the model's device.

        Args:
            lengths: valid samples per row of a zero-padded batch; layer-norm models then get an
                attention mask (frames past ``frame_count(lengths)`` are padding).
        """
        x = self._check_batch(waveforms).to(self.device, torch.float32)
        mask = None
        if lengths is not None:
            mask = torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None]
        if self.normalize:
            valid = mask.float() if mask is not None else torch.ones_like(x)
            count = valid.sum(1, keepdim=True)
            mean = (x * valid).sum(1, keepdim=True) / count
            var = ((x - mean).square() * valid).sum(1, keepdim=True) / count
            x = (x - mean) / (var + 1e-7).sqrt() * valid
        if mask is not None and self.model.config.feat_extract_norm != "layer":
            mask = None  # group-norm models were trained on zero padding without a mask
        logits = self.model(x, attention_mask=None if mask is None else mask.long()).logits
        return logits.float().log_softmax(dim=-1)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.log_probs(waveforms)

    def greedy_decode(self, log_probs: torch.Tensor, frames: torch.Tensor | None = None) -> list[str]:
        """Best-path CTC decoding of ``(B, T, V)`` log-posteriors (first ``frames[b]`` frames of row b)."""
        best = log_probs.argmax(dim=-1).cpu()
        lengths = [best.shape[1]] * len(best) if frames is None else frames.tolist()
        return [self.decode(row[: int(n)], ctc=True) for row, n in zip(best, lengths)]

    @torch.no_grad()
    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> list[str]:
        """Greedy CTC transcripts of ``(B, N)`` waveforms (``lengths``: valid samples of padded rows)."""
        lp = self.log_probs(waveforms, lengths)
        return self.greedy_decode(lp, None if lengths is None else self.frame_count(lengths.cpu()))

    def prepare(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One utterance checked and made ready: mono float32 ``(N,)`` at the model's rate.

        Raises:
            AudioInputError: empty, NaN/inf, several channels, or shorter than the receptive field
                after resampling (the message gives the minimum in samples and seconds).
        """
        x = check_waveform(waveform, sample_rate, name="waveform").float()
        if sample_rate != self.sample_rate:
            logger.info("waveform sampled at %d Hz: resampling to the recogniser's %d Hz", sample_rate, self.sample_rate)
            x = resample_to(x, sample_rate, self.sample_rate)
        self._check_batch(x)
        return x

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write a Hugging Face folder (config.json, model.safetensors, vocab.json, preprocessor_config.json) atomically."""
        target = Path(directory)
        with _atomic_directory(target) as tmp, _quiet_offline():
            self.model.save_pretrained(tmp)
            (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(self.vocab)}, indent=1))
            extractor = {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                         "sampling_rate": self.sample_rate, "do_normalize": self.normalize, "padding_value": 0.0,
                         "padding_side": "right",
                         "return_attention_mask": self.model.config.feat_extract_norm == "layer"}
            (tmp / "preprocessor_config.json").write_text(json.dumps(extractor, indent=1))
        logger.info("saved CTC recogniser to %s", target)
        return target

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> CTCRecognizer:
        """Load a local Hugging Face CTC checkpoint folder, offline; vocabulary from its vocab.json.

        Raises:
            ConfigError: the folder or its config.json is missing, or the checkpoint has no CTC head.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigError(f"CTC checkpoint folder {folder} not found: point at a local folder holding config.json, "
                              f"the weights and vocab.json (nothing is downloaded)")
        if not (folder / "config.json").is_file():
            raise ConfigError(f"{folder} has no config.json: not a Hugging Face checkpoint folder; write one with "
                              f"CTCRecognizer.save_pretrained or transformers' save_pretrained")
        architectures = _read_json(folder / "config.json").get("architectures") or []
        no_head = (f"{folder} holds a checkpoint without a CTC head (architectures {architectures}, no lm_head "
                   f"weights): fine-tune it with a CTC head (e.g. Wav2Vec2ForCTC) or point at a *ForCTC checkpoint")
        if architectures and not any(str(a).endswith("ForCTC") for a in architectures):
            raise ConfigError(no_head)
        try:
            with _quiet_offline():
                model, info = AutoModelForCTC.from_pretrained(folder, local_files_only=True, output_loading_info=True)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ConfigError(f"{folder} could not be read as a CTC checkpoint: {err}") from err
        if any("lm_head" in key for key in info.get("missing_keys") or []):
            raise ConfigError(no_head)
        extractor = folder / "preprocessor_config.json"
        settings = _read_json(extractor) if extractor.is_file() else {}
        vocab = _read_vocab(folder, int(model.lm_head.out_features))
        model.eval()
        return cls(model, vocab, int(settings.get("sampling_rate", 16000)), bool(settings.get("do_normalize", False)))
