"""Gradient explanations of a waveform classifier turned into masks, to compare with L-MAC on equal terms.

Five Captum methods: ``saliency``, ``smoothgrad`` (Saliency under Captum's NoiseTunnel),
``integrated_gradients``, ``gradcam`` (LayerGradCam on the classifier's last feature-encoder layer)
and ``gradient_shap``. Each explains the classifier's predicted class in L-MAC's mask domain and is
turned into a mask in [0, 1] the same way:

- ``stft`` domain: attributions are taken with respect to the STFT magnitude |X| of the input, the
  classifier seeing ``iSTFT(|X| e^{i phase(X)})`` (the input's own phase, as L-MAC's resynthesis), so
  each attribution sits on the bin a mask would scale.
- ``waveform`` domain: attributions are taken with respect to the samples and their absolute values
  averaged over a window of ``hop_length`` samples (raw sample gradients flip sign from one sample to
  the next; a mask of them would be noise).
- Grad-CAM's map is temporal (the encoder's frames; for a 2-D CNN averaged over frequency), linearly
  interpolated to the domain's time axis and, in the ``stft`` domain, repeated over frequency.

Then ``mask = |a| / max |a|`` per sample (the largest attribution becomes 1). Baselines: zeros
(silence) for Integrated Gradients, and a distribution of zeros and the input scaled by 0.5 for
GradientSHAP; noise for SmoothGrad and GradientSHAP has standard deviation ``noise_fraction`` times
each input's maximum absolute value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import GradientShap, IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
from torch import nn

from audioxai.errors import ConfigError
from audioxai.explain.gradients import ig_internal_batch_size

__all__ = ["MASK_METHODS", "attribution_masks", "normalise_mask"]

MASK_METHODS = ("saliency", "smoothgrad", "integrated_gradients", "gradcam", "gradient_shap")


class _MagnitudeClassifier(nn.Module):
    """The classifier as a function of the STFT magnitude, with the phase of ``reference`` held fixed."""

    def __init__(self, classifier: nn.Module, reference: torch.Tensor, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.classifier, self.n_fft, self.hop, self.length = classifier, n_fft, hop_length, reference.shape[-1]
        self.window = torch.hann_window(n_fft, device=reference.device)
        spec = torch.stft(reference, n_fft, hop_length, window=self.window, center=True, return_complex=True)
        self.magnitude, self.phase = spec.abs(), torch.polar(torch.ones_like(spec.abs()), spec.angle())

    def forward(self, magnitude: torch.Tensor) -> torch.Tensor:
        phase = self.phase.repeat(magnitude.shape[0] // self.phase.shape[0], 1, 1)  # Captum repeats the batch
        wave = torch.istft(magnitude * phase, self.n_fft, self.hop, window=self.window, center=True, length=self.length)
        return self.classifier(wave)


def normalise_mask(attributions: torch.Tensor) -> torch.Tensor:
    """``|a| / max |a|`` per sample (all-zero maps stay zero)."""
    a = attributions.abs()
    top = a.flatten(1).amax(dim=1).clamp_min(torch.finfo(a.dtype).tiny)
    return a / top.view(-1, *([1] * (a.ndim - 1)))


def _gradcam(classifier: nn.Module, waveform: torch.Tensor, target: torch.Tensor, frames: int) -> torch.Tensor:
    cam = LayerGradCam(classifier, classifier.feature_encoder_layer()).attribute(waveform, target=target,
                                                                                  relu_attributions=True)
    if cam.ndim == 4:  # a 2-D CNN: (B, 1, freq, time) -> time
        cam = cam.mean(dim=2)
    return F.interpolate(cam.reshape(cam.shape[0], 1, -1), size=frames, mode="linear", align_corners=False)[:, 0]


def attribution_masks(classifier: nn.Module, waveform: torch.Tensor, method: str, domain: str = "stft",
                      target: torch.Tensor | None = None, n_fft: int = 512, hop_length: int = 128,
                      ig_steps: int = 50, num_samples: int = 8, noise_fraction: float = 0.1,
                      seed: int = 0) -> torch.Tensor:
    """The ``method``'s explanation of ``target`` (default: the predicted class) as a mask in ``domain``.

    Returns ``(B, F, frames)`` for ``stft`` (as ``LMAC`` with the same ``n_fft`` and ``hop_length``),
    ``(B, T)`` for ``waveform``, values in [0, 1].
    """
    if method not in MASK_METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(MASK_METHODS)}")
    if domain not in ("waveform", "stft"):
        raise ConfigError(f"mask domain {domain!r}: choose waveform or stft")
    classifier.eval()
    waveform = waveform.detach()
    if target is None:
        with torch.no_grad():
            target = classifier(waveform).argmax(dim=1)
    target = target.to(waveform.device).long()
    if domain == "stft":
        model: nn.Module = _MagnitudeClassifier(classifier, waveform, n_fft, hop_length)
        x = model.magnitude.clone()
    else:
        model, x = classifier, waveform.clone()
    frames = x.shape[-1]
    torch.manual_seed(seed)  # SmoothGrad's and GradientSHAP's draws
    sigma = float(noise_fraction) * x.flatten(1).abs().amax(dim=1).mean().item()
    x.requires_grad_(True)
    if method == "gradcam":
        cam = _gradcam(classifier, waveform, target, frames)
        attr = cam[:, None, :].expand(-1, x.shape[1], -1) if domain == "stft" else cam
    elif method == "saliency":
        attr = Saliency(model).attribute(x, target=target, abs=True)
    elif method == "smoothgrad":
        attr = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=num_samples, stdevs=sigma,
                                                      target=target, abs=True)
    elif method == "integrated_gradients":
        attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=ig_steps,
                                                    internal_batch_size=ig_internal_batch_size(x, ig_steps))
    else:
        baselines = torch.stack([torch.zeros_like(x), 0.5 * x.detach()]).flatten(0, 1)
        attr = GradientShap(model).attribute(x, baselines=baselines, n_samples=num_samples, stdevs=sigma, target=target)
    attr = attr.detach()
    if domain == "waveform" and method != "gradcam":
        attr = F.avg_pool1d(attr.abs()[:, None], hop_length, stride=1, padding=hop_length // 2,
                            count_include_pad=False)[:, 0, : waveform.shape[-1]]
    return normalise_mask(attr)
