"""The mixture-of-experts network, its Grad-CAM, the monolithic baseline and a FLOPs counter.

``MoENetwork``: waveform -> front-end spectrogram (B, 1, F, T) -> per-sample standardisation -> shared
stem (two 3x3 convs at full frequency resolution, time halved) -> a light scout head whose top-logit
gradient x input gives the router's saliency (see ``audioxai.moe.router``) -> router (gates, adaptive K)
-> batched dispatch to the selected experts of the ``ExpertBank`` -> weighted embedding, plus an always-on
shared path (a linear map of the pooled stem features, the light form of DeepSeekMoE's shared expert: what
every sample needs is learnt once instead of by each routed expert) -> linear head.
Train it with ``moe_loss``: the task loss, the scout's own task loss (so its saliency means something)
and the load-balancing loss.

No BatchNorm anywhere: every sample is processed independently, so the saliency of the batch sum is
each sample's saliency and grouped dispatch equals the per-sample loop, in training as in evaluation.
Inference needs gradients for the saliency: ``torch.no_grad()`` and ``torch.inference_mode()`` both
work (the saliency is computed in a local grad-enabled block).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from audioxai.errors import AudioInputError, ConfigError
from audioxai.moe.experts import ExpertBank
from audioxai.moe.router import ROUTING_TAU, SaliencyRouter, gradient_x_input, patch_grid_shape

__all__ = ["MoENetworkConfig", "MoEOutput", "MoENetwork", "moe_loss", "gradcam", "MonolithicCNN",
           "matched_baseline", "flops_per_sample"]


@dataclass
class MoENetworkConfig:
    """Sizes of the parts the policy does not fix."""

    stem_channels: int = 8
    embed_dim: int = 32
    dropout: float = 0.1
    shared_path: bool = True         # add a linear map of the pooled stem features to the experts' mixture
    saliency_baseline: str = "min"   # "min" (silence) or a number, for gradient x (input - baseline)


@dataclass
class MoEOutput:
    """One forward pass of ``MoENetwork`` (B samples, C classes, N experts, P patches)."""

    logits: torch.Tensor              # (B, C)
    k: torch.Tensor                   # (B,) int64, experts run per sample
    gates: torch.Tensor               # (B, N) gate probabilities
    selected: torch.Tensor            # (B, N) bool
    weights: torch.Tensor             # (B, N) mixing weights of the selected experts
    load_balance_loss: torch.Tensor   # scalar, 1 when routing is uniform
    patch_importance: torch.Tensor    # (B, P), sums to 1 per sample
    saliency: torch.Tensor            # (B, 1, F, T) router saliency, detached, for figures
    scout_logits: torch.Tensor        # (B, C) the scout head's logits (trained by moe_loss)
    patch_grid: tuple[int, int]       # (Pf, Pt), P = Pf * Pt


def _as_frontend(frontend_or_spectro: Any) -> nn.Module:
    """A front-end module: the argument itself when it has ``band_edges_hz``, else ``Frontend(cfg)``."""
    if isinstance(frontend_or_spectro, nn.Module):
        if not callable(getattr(frontend_or_spectro, "band_edges_hz", None)):
            raise ConfigError(f"{type(frontend_or_spectro).__name__} has no band_edges_hz(): pass a SpectroConfig or "
                              f"a front-end module with band_edges_hz() -> (F + 1,) row edges in Hz")
        return frontend_or_spectro
    from audioxai.moe.frontend import Frontend  # the front-end module is only needed for configs

    return Frontend(frontend_or_spectro)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per sample over (F, T)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-5)
    return (x - mean) / std


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(1, c_out), nn.ReLU()]


def _mean_max(h: torch.Tensor) -> torch.Tensor:
    return torch.cat([h.mean(dim=(-2, -1)), h.amax(dim=(-2, -1))], dim=1)


def _check_waveform(waveform: torch.Tensor) -> None:
    if waveform.ndim != 2:
        raise AudioInputError(f"waveform of shape {tuple(waveform.shape)}: pass a (batch, samples) tensor; "
                              f"add a batch axis with waveform[None] for a single clip")


class MoENetwork(nn.Module):
    """Saliency-routed mixture of experts over a spectrogram front-end.

    Args:
        frontend_or_spectro: a ``SpectroConfig`` or any module mapping (B, N) waveforms to (B, 1, F, T)
            with a ``band_edges_hz()`` method returning (F + 1,) row edges in Hz.
        policy: a ``Policy`` (experts, k_min, k_max, patch_size, patch_stride, budget).
        num_classes: C.
        multi_label: sigmoid outputs (``moe_loss`` then uses binary cross-entropy).
        config: stem width, embedding size, dropout, saliency baseline.
    """

    def __init__(self, frontend_or_spectro: Any, policy: Any, num_classes: int, multi_label: bool = False,
                 config: MoENetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or MoENetworkConfig()
        if policy.budget not in ROUTING_TAU:
            raise ConfigError(f"policy budget {policy.budget!r}: use one of {sorted(ROUTING_TAU)}")
        if int(num_classes) < 2:
            raise ConfigError(f"num_classes={num_classes}: a classifier needs at least 2 classes")
        self.frontend = _as_frontend(frontend_or_spectro)
        self.num_classes, self.multi_label, self.budget = int(num_classes), bool(multi_label), str(policy.budget)
        edges = torch.as_tensor(self.frontend.band_edges_hz()).detach().float().cpu()
        self.num_rows = int(edges.numel()) - 1
        c = int(self.config.stem_channels)
        self.stem = nn.Sequential(*_conv_block(1, c), *_conv_block(c, c), nn.MaxPool2d((1, 2), ceil_mode=True))
        self.scout = nn.Linear(2 * c, self.num_classes)
        self.experts = ExpertBank(policy.experts, edges, c, int(self.config.embed_dim))
        self.router = SaliencyRouter(2 * c, self.experts.band_mask, [float(s.prior) for s in policy.experts],
                                     policy.k_min, policy.k_max, ROUTING_TAU[self.budget], policy.patch_size,
                                     policy.patch_stride)
        self.shared = nn.Linear(2 * c, int(self.config.embed_dim)) if self.config.shared_path else None
        self.head = nn.Sequential(nn.Dropout(float(self.config.dropout)),
                                  nn.Linear(int(self.config.embed_dim), self.num_classes))

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last shared conv block's activation (ReLU after the stem's second conv)."""
        return self.stem[5]

    def saliency_modules(self) -> list[nn.Module]:
        """Layers the saliency pass also runs backwards (counted twice by ``flops_per_sample``)."""
        return [m for m in self.stem if isinstance(m, nn.Conv2d)] + [self.scout]

    def spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """The front-end's (B, 1, F, T) spectrogram, checked against the front-end's row edges."""
        _check_waveform(waveform)
        spec = self.frontend(waveform)
        if spec.ndim != 4 or spec.shape[1] != 1 or spec.shape[2] != self.num_rows:
            raise ConfigError(f"front-end output of shape {tuple(spec.shape)}: expected (B, 1, {self.num_rows}, T) "
                              f"to match its band_edges_hz(); fix the front-end")
        return spec

    def _saliency(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stem features, pooled features, scout logits and gradient x input saliency of ``spec``."""
        keep_graph = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        with torch.inference_mode(False), torch.enable_grad():
            x = spec.clone() if spec.is_inference() else spec
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            h = self.stem(_standardise(x))
            pooled = _mean_max(h)
            scout_logits = self.scout(pooled)
            saliency = gradient_x_input(scout_logits, x, _baseline(self.config.saliency_baseline),
                                        retain_graph=keep_graph)
        if not keep_graph:
            h, pooled, scout_logits = h.detach(), pooled.detach(), scout_logits.detach()
        return h, pooled, scout_logits, saliency

    def forward(self, waveform: torch.Tensor) -> MoEOutput:
        """(B, N) waveforms -> ``MoEOutput``."""
        spec = self.spectrogram(waveform)
        h, pooled, scout_logits, saliency = self._saliency(spec)
        route = self.router(pooled, saliency)
        embedding = self.experts(h, route.selected, route.weights)
        if self.shared is not None:
            embedding = embedding + self.shared(pooled)
        logits = self.head(embedding)
        grid = patch_grid_shape(spec.shape[-2], spec.shape[-1], self.router.patch_size, self.router.patch_stride)
        return MoEOutput(logits, route.k, route.probs, route.selected, route.weights, route.load_balance_loss,
                         route.patch_importance, saliency, scout_logits, grid)


def _baseline(value: str | float) -> str | float:
    return value if value == "min" else float(value)


def moe_loss(output: MoEOutput, targets: torch.Tensor, multi_label: bool = False, balance_weight: float = 0.01,
             scout_weight: float = 0.5) -> torch.Tensor:
    """``task(logits) + scout_weight * task(scout_logits) + balance_weight * load_balance_loss``.

    Args:
        output: a forward pass.
        targets: (B,) class indices, or (B, C) multi-hot floats when ``multi_label``.
        multi_label: binary cross-entropy with logits instead of cross-entropy.
    """
    task = F.binary_cross_entropy_with_logits if multi_label else F.cross_entropy
    targets = targets.float() if multi_label else targets.long()
    return (task(output.logits, targets) + scout_weight * task(output.scout_logits, targets)
            + balance_weight * output.load_balance_loss)


def gradcam(network: MoENetwork, waveform: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) of ``target`` at the last shared conv block, on the spectrogram grid.

    Captum's ``LayerGradCam`` with ReLU on the map, upsampled bilinearly from the stem's (F, T/2) grid.

    Returns:
        (B, F, T) detached, non-negative.
    """
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            spec_shape = network.spectrogram(waveform).shape[-2:]
        targets = torch.as_tensor(target, device=waveform.device).long().expand(waveform.shape[0]).contiguous()
        cam = LayerGradCam(lambda w: network(w).logits, network.gradcam_layer)
        attr = cam.attribute(waveform, target=targets, relu_attributions=True)
        attr = LayerAttribution.interpolate(attr, tuple(spec_shape), interpolate_mode="bilinear")
    finally:
        network.train(was_training)
    return attr[:, 0].detach()


class MonolithicCNN(nn.Module):
    """Baseline: the same front-end and standardisation, three 3x3 conv blocks (widths w, 2w, 2w), pooled, linear.

    Args:
        frontend_or_spectro: as for ``MoENetwork``.
        num_classes: C.
        width: w; pick it with ``matched_baseline`` for an inference cost like the MoE network's.
        multi_label: recorded for the caller's loss choice.
        dropout: before the linear layer.
    """

    def __init__(self, frontend_or_spectro: Any, num_classes: int, width: int = 16, multi_label: bool = False,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.frontend = _as_frontend(frontend_or_spectro)
        self.num_classes, self.multi_label, self.width = int(num_classes), bool(multi_label), int(width)
        w = self.width
        self.features = nn.Sequential(
            nn.Sequential(*_conv_block(1, w), nn.MaxPool2d(2, ceil_mode=True)),
            nn.Sequential(*_conv_block(w, 2 * w), nn.MaxPool2d(2, ceil_mode=True)),
            nn.Sequential(*_conv_block(2 * w, 2 * w)))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, self.num_classes))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) waveforms -> (B, C) logits."""
        _check_waveform(waveform)
        return self.head(_mean_max(self.features(_standardise(self.frontend(waveform)))))


def matched_baseline(network: MoENetwork, num_samples: int, widths: Sequence[int] = tuple(range(2, 65)),
                     waveform: torch.Tensor | None = None) -> MonolithicCNN:
    """The ``MonolithicCNN`` on the network's front-end whose FLOPs per sample are closest to the network's.

    Costs are measured with ``flops_per_sample`` on the same (or the same seeded) waveforms.
    """
    target = flops_per_sample(network, num_samples, waveform=waveform)
    best: tuple[float, MonolithicCNN] | None = None
    for width in widths:
        candidate = MonolithicCNN(network.frontend, network.num_classes, width, network.multi_label)
        cost = flops_per_sample(candidate.to(_device_of(network)), num_samples, waveform=waveform)
        gap = abs(cost - target)
        if best is None or gap < best[0]:
            best = (gap, candidate)
        if cost > target:
            break
    if best is None:
        raise ConfigError("matched_baseline: widths is empty; give at least one width")
    return best[1]


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a conv or linear layer that produced ``output``."""
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = (module.in_channels // module.groups) * int(torch.tensor(module.kernel_size).prod())
        return output.numel() * per_output
    return output.numel() * module.in_features


def flops_per_sample(model: nn.Module, num_samples: int, batch_size: int = 8, waveform: torch.Tensor | None = None,
                     seed: int = 0) -> float:
    """Mean multiply-accumulates per sample of the conv and linear layers in one forward pass, in eval mode.

    Counted with forward hooks, so layers that do not run (experts nobody selected) cost nothing and
    each expert costs only the samples routed to it. Layers listed by ``model.saliency_modules()`` are
    counted twice (their forward pass plus the input-gradient pass of the saliency). The front-end
    (STFT, mel filterbank) and element-wise operations are not counted.

    Args:
        model: maps (B, num_samples) waveforms to outputs.
        num_samples: waveform length.
        batch_size: samples in the measured batch (ignored when ``waveform`` is given).
        waveform: (B, num_samples) inputs to measure on; default seeded Gaussian noise (std 0.1).
        seed: for the default inputs.
    """
    device = _device_of(model)
    if waveform is None:
        gen = torch.Generator().manual_seed(int(seed))
        waveform = 0.1 * torch.randn(int(batch_size), int(num_samples), generator=gen)
    waveform = waveform.to(device)
    counts: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        counts[module] = counts.get(module, 0) + _macs(module, output)

    layers = [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(waveform)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    twice = set(model.saliency_modules()) if callable(getattr(model, "saliency_modules", None)) else set()
    total = sum(count * (2 if module in twice else 1) for module, count in counts.items())
    return float(total) / waveform.shape[0]
