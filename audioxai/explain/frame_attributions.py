"""Frame-level baseline explanations of a frozen spoofing detector, at the encoder's 20 ms frame rate.

Every method takes ``(detector, waveform (B, T), ...)`` and returns a ``(B, F)`` non-negative float map,
``F = detector.frame_count(T)``, explaining class ``target`` (default 1 = spoof). Maps are not
normalised per utterance: their scale differs between methods (and, for Grad-CAM and Integrated
Gradients, between utterances, which carries information); a caller comparing methods normalises.

- ``gradcam``: Grad-CAM (Selvaraju et al., 2017) on the frame positions of the last Conformer
  layer's input: weights = time-averaged gradient of the target logit per channel, map = ReLU of the
  weighted channel sum. The last layer's own frame outputs feed nothing (the classifier reads only
  the head tokens), so their gradient is zero; the layer's input is the deepest frame representation
  the logits depend on. Written by hand: Captum's ``LayerGradCam`` expects a layer whose output is
  (B, C, time), while torchaudio's Conformer layers run time-major with the head tokens in front.
- ``integrated_gradients``: Captum's Integrated Gradients (Sundararajan et al., 2017) on the waveform
  from a silent (zeros) baseline; |attribution| summed over each frame's receptive-field window
  (``SpoofDetector.frame_windows``; by default frame k = samples [320k, 320k + 400), with
  ``centre_frames`` the field centred on [320k, 320k + 320)). Windows overlap (by 80 samples at the
  default field), so those samples count more than once: the map is what each frame's encoder input
  holds, not a partition of the total. A detector with a spectral input (``spectral_window``) also
  reads a longer window per frame; the map still pools over the conv field.
- ``attention_rollout``: Abnar & Zuidema (2020). Per layer: heads averaged, identity added, rows
  renormalised; multiplied through the wav2vec2 layers (frames only; head tokens attend to
  themselves there) and then the Conformer layers (K head tokens + F frames). The map is the head
  tokens' rows over the frame positions, averaged over tokens. Rollout sees attention only: the
  convolutional positional embedding and the Conformer's depthwise convolution also mix frames.

The detector is not modified: it runs in eval mode (its previous mode is restored after), no
parameter or buffer is written, and gradients are taken with respect to inputs or activations only.
Computation runs on the detector's device; the map is returned on the waveform's device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from captum.attr import IntegratedGradients

from audioxai.errors import ConfigError
from audioxai.explain.gradients import ig_internal_batch_size
from audioxai.models.detector import SpoofDetector

__all__ = ["gradcam_frames", "integrated_gradients_frames", "attention_rollout_frames", "attention_rollout",
           "FRAME_METHODS", "frame_attributions"]


@contextmanager
def _eval_mode(detector: SpoofDetector) -> Iterator[None]:
    was_training = detector.training
    detector.eval()
    try:
        yield
    finally:
        detector.train(was_training)


def _prepare(detector: SpoofDetector, waveform: torch.Tensor, target: int | torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The waveform on the detector's device and a (B,) class-index target, both checked."""
    device = next(detector.parameters()).device
    x = detector.check_waveform(waveform).detach().to(device)
    target = torch.as_tensor(target, device=device).long().expand(x.shape[0]).contiguous()
    if ((target < 0) | (target > 1)).any():
        raise ConfigError(f"target={target.tolist()}: the detector has classes 0 (bona fide) and 1 (spoof)")
    return x, target


def gradcam_frames(detector: SpoofDetector, waveform: torch.Tensor, target: int | torch.Tensor = 1) -> torch.Tensor:
    """Grad-CAM over the last Conformer layer's input frames: ``ReLU(sum_c mean_t(dy/dA[t, c]) A[t, c])``, (B, F)."""
    x, target = _prepare(detector, waveform, target)
    with _eval_mode(detector), torch.enable_grad():
        out = detector.forward_details(x.requires_grad_(True))
        acts = out["conformer_frames_in"]
        (grads,) = torch.autograd.grad(out["logits"].gather(1, target[:, None]).sum(), acts)
        cam = torch.relu((grads.mean(dim=1, keepdim=True) * acts).sum(dim=-1))
    return cam.detach().to(waveform.device)


def integrated_gradients_frames(detector: SpoofDetector, waveform: torch.Tensor, target: int | torch.Tensor = 1,
                                n_steps: int = 50, internal_batch_size: int | None = None) -> torch.Tensor:
    """|Integrated Gradients| from silence, summed over each frame's receptive field, (B, F).

    ``internal_batch_size``: path rows per forward pass; by default as many as keep the inputs
    under ``ig_internal_batch_size``'s memory bound. The result does not depend on it beyond rounding.
    """
    x, target = _prepare(detector, waveform, target)
    with _eval_mode(detector):
        attr = IntegratedGradients(detector).attribute(
            x.requires_grad_(True), baselines=torch.zeros_like(x), target=target, n_steps=n_steps,
            internal_batch_size=internal_batch_size or ig_internal_batch_size(x, n_steps))
    frames = detector.frame_windows(attr.detach().abs())
    return frames.to(waveform.device)


def attention_rollout(encoder_attentions: tuple[torch.Tensor, ...], conformer_attentions: tuple[torch.Tensor, ...],
                      num_head_tokens: int) -> torch.Tensor:
    """The rollout matrix ``(B, K+F, K+F)`` (row-stochastic): Conformer layers after wav2vec2 layers.

    Each layer's ``(B, H, S, S)`` weights become ``A' = rownorm(mean_h A + I)``; the product is
    ``A'_L ... A'_1``, the encoder's ``(F, F)`` product embedded as ``diag(I_K, R_enc)``.
    """
    def step(attention: torch.Tensor) -> torch.Tensor:
        a = attention.mean(dim=1)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        return a / a.sum(dim=-1, keepdim=True)

    first = (encoder_attentions or conformer_attentions)[0]
    batch, frames = first.shape[0], first.shape[-1] - (0 if encoder_attentions else num_head_tokens)
    size = num_head_tokens + frames
    rollout = torch.eye(size, dtype=first.dtype, device=first.device).expand(batch, size, size).clone()
    for attention in encoder_attentions:
        rollout[:, num_head_tokens:, num_head_tokens:] = step(attention) @ rollout[:, num_head_tokens:, num_head_tokens:]
    for attention in conformer_attentions:
        rollout = step(attention) @ rollout
    return rollout


@torch.no_grad()
def attention_rollout_frames(detector: SpoofDetector, waveform: torch.Tensor, target: int | torch.Tensor = 1
                             ) -> torch.Tensor:
    """Attention rollout from the head tokens to the frames, averaged over head tokens, (B, F).

    A row of the rollout sums to 1 over tokens and frames; the map keeps the frame part only, so it
    sums to at most 1 per utterance. Class-agnostic: ``target`` is accepted (one signature for all
    methods) and ignored.
    """
    x, _ = _prepare(detector, waveform, target)
    with _eval_mode(detector):
        out = detector.forward_details(x, output_attentions=True)
    k = detector.config.num_head_tokens
    rollout = attention_rollout(out["encoder_attentions"], out["conformer_attentions"], k)
    return rollout[:, :k, k:].mean(dim=1).to(waveform.device)


FRAME_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "gradcam": gradcam_frames,
    "integrated_gradients": integrated_gradients_frames,
    "attention_rollout": attention_rollout_frames,
}


def frame_attributions(detector: SpoofDetector, waveform: torch.Tensor, method: str, **kwargs) -> torch.Tensor:
    """``FRAME_METHODS[method](detector, waveform, **kwargs)``: a (B, F) non-negative map."""
    if method not in FRAME_METHODS:
        raise ConfigError(f"unknown frame attribution method {method!r}: use one of {sorted(FRAME_METHODS)}")
    return FRAME_METHODS[method](detector, waveform, **kwargs)
