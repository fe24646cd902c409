"""Gradient explainers through Captum, behind one signature: ``explain(model, inputs, target, **kw)``.

Every explainer returns attributions of the inputs' shape, detached, on the inputs' device, so a
notebook or a metric can loop over ``EXPLAINERS`` without caring which method it holds.

- ``saliency``: |d logit_target / d x| (Simonyan et al., 2014), Captum's ``Saliency`` with ``abs=True``.
- ``integrated_gradients``: (x - x0) * mean over ``n_steps`` of the gradient along the straight path
  from the baseline x0 (Sundararajan et al., 2017), Gauss-Legendre steps, 50 by default. The
  baseline is a number or tensor: zeros (black) for images, the spectrogram's floor (silence) for
  audio; ``baseline="min"`` takes each sample's own minimum.
- ``guided_gradcam``: Grad-CAM of the last convolutional block, upsampled and multiplied by guided
  backpropagation (Selvaraju et al., 2017), Captum's ``GuidedGradCam``; the layer defaults to
  ``model.features[-1]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from captum.attr import GuidedGradCam, IntegratedGradients, Saliency
from torch import nn

from audioxai.errors import ConfigError

__all__ = ["saliency", "integrated_gradients", "ig_internal_batch_size", "guided_gradcam", "EXPLAINERS", "get_explainer", "resolve_baseline"]


def _prepare(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    inputs = inputs.detach().clone().requires_grad_(True)
    target = torch.as_tensor(target, device=inputs.device).long().expand(inputs.shape[0]).contiguous()
    return inputs, target


def resolve_baseline(inputs: torch.Tensor, baseline: float | str | torch.Tensor) -> torch.Tensor:
    """A baseline tensor of the inputs' shape from a number, a tensor, or ``"min"`` (each sample's minimum)."""
    if isinstance(baseline, str):
        if baseline != "min":
            raise ConfigError(f"baseline={baseline!r}: use a number, a tensor or 'min'")
        floor = inputs.flatten(1).amin(dim=1).view(-1, *([1] * (inputs.ndim - 1)))
        return floor.expand_as(inputs).contiguous()
    return torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device).expand_as(inputs).contiguous()


def saliency(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor | int, **_: object) -> torch.Tensor:
    """Absolute input gradient of the target logit."""
    inputs, target = _prepare(model, inputs, target)
    return Saliency(model).attribute(inputs, target=target, abs=True).detach()


IG_CHUNK_ELEMENTS = 2 ** 23  # input elements per IG forward pass (32 MB of float32 inputs)


def ig_internal_batch_size(inputs: torch.Tensor, n_steps: int, max_elements: int = IG_CHUNK_ELEMENTS) -> int:
    """Rows of the interpolation path Integrated Gradients sends through the model at once.

    All ``B * n_steps`` rows when they hold at most ``max_elements`` input values, otherwise as many as
    fit (at least ``n_steps``): 256 spectrograms of 128x128 with 50 steps are 12,800 rows whose first
    conv activations alone take 13 GB, which kills a 24 GB machine.
    """
    per_row = max(1, inputs[0].numel())
    return int(min(inputs.shape[0] * n_steps, max(n_steps, max_elements // per_row)))


def integrated_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor | int,
                         baseline: float | str | torch.Tensor = 0.0, n_steps: int = 50,
                         internal_batch_size: int | None = None, **_: object) -> torch.Tensor:
    """Integrated Gradients from ``baseline`` with ``n_steps`` steps (Captum's Gauss-Legendre rule).

    ``internal_batch_size``: path rows per forward pass; default ``ig_internal_batch_size`` (memory-bounded).
    The result does not depend on it beyond float rounding.
    """
    inputs, target = _prepare(model, inputs, target)
    ig = IntegratedGradients(model)
    attr = ig.attribute(inputs, baselines=resolve_baseline(inputs, baseline), target=target, n_steps=n_steps,
                        internal_batch_size=internal_batch_size or ig_internal_batch_size(inputs, n_steps))
    return attr.detach()


def guided_gradcam(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor | int,
                   layer: nn.Module | None = None, **_: object) -> torch.Tensor:
    """Guided Grad-CAM at ``layer`` (default ``model.features[-1]``, the last convolutional block)."""
    inputs, target = _prepare(model, inputs, target)
    if layer is None:
        if not hasattr(model, "features"):
            raise ConfigError("guided_gradcam needs layer=... or a model whose last conv block is model.features[-1]")
        layer = model.features[-1]
    with warnings.catch_warnings():  # Captum announces its (temporary) ReLU hooks on every call
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        return GuidedGradCam(model, layer).attribute(inputs, target=target, interpolate_mode="bilinear").detach()


EXPLAINERS: dict[str, Callable[..., torch.Tensor]] = {
    "saliency": saliency,
    "integrated_gradients": integrated_gradients,
    "guided_gradcam": guided_gradcam,
}


def get_explainer(name: str, **defaults: object) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The explainer ``name`` with keyword defaults bound, as ``explain(model, inputs, targets)``."""
    if name not in EXPLAINERS:
        raise ConfigError(f"unknown explainer {name!r}: choose one of {sorted(EXPLAINERS)}")
    fn = EXPLAINERS[name]

    def explain(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return fn(model, inputs, targets, **defaults)

    explain.__name__ = name
    return explain
