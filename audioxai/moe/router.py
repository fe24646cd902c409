"""The saliency router: always-on gradient x input, patch importance, adaptive K, load balancing, dispatch.

Per sample, in order:

1. Fast saliency: ``s = dy/dx * (x - x0)`` of the scout head's top logit y with respect to the
   spectrogram x (gradient x input; x0 is the baseline, by default each sample's minimum, i.e.
   silence, as in ``audioxai.explain.gradients.resolve_baseline``), one ``torch.autograd.grad`` call
   inside the forward pass, detached: routing never back-propagates through the saliency.
2. Patch importance: ``|s|`` average-pooled over ``patch_size`` / ``patch_stride`` (freq rows, time
   frames), flattened to P patches and normalised to sum to 1; its normalised entropy
   ``H = -sum p log p / log P`` (1 = diffuse, 0 = one patch) and its concentration (share of the top
   10% of patches) summarise how complex the evidence is.
3. Gate scores: ``z_i = g_i(pooled stem features, H, concentration) + a_i * log(m_i / c_i) + log(prior_i)``
   with ``g`` a learned linear gate, ``m_i`` the share of ``|s|`` inside expert i's band, ``c_i`` the
   share of rows the band covers (so ``m_i / c_i`` is the saliency density of the band relative to
   uniform), ``a_i`` learned (init 1) and ``prior_i`` the policy's prior (normalised, floored at 1e-6).
   Probabilities ``p = softmax(z / T)`` with a per-sample temperature ``T = exp(t0 + t1 * (H - 0.5))`` (t1 init 1):
   diffuse saliency flattens the gates, so more experts are needed to cover the same mass.
4. Adaptive K: the smallest K whose largest K probabilities sum to at least ``tau``, clamped to
   ``[k_min, k_max]``; ``tau`` is 0.9 for ``budget="accuracy"`` and 0.6 for ``budget="latency"``
   (``ROUTING_TAU``), and the latency policy's ``k_max`` is lower too. The selected experts' weights
   are their probabilities renormalised to sum to 1 (gradients reach the gate through them).
5. Load balancing (Shazeer et al., 2017; Fedus et al., 2021, eq. 4): ``L = N * sum_i f_i * P_i`` with
   ``f_i`` the fraction of the batch's expert assignments that went to expert i (a count, no
   gradient) and ``P_i`` the batch mean of ``p_i``. Both are distributions over experts; L = 1 under
   perfectly uniform routing and N when every sample goes to one expert with probability 1.
6. Batched dispatch (``dispatch``): for each expert, ``index_select`` the samples that chose it, run it
   once on that group, ``index_add`` the weighted outputs back. A loop over the N experts, none over
   samples; ``dispatch_loop`` is the per-sample reference used by tests and the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audioxai.errors import ConfigError
from audioxai.explain.gradients import resolve_baseline

__all__ = ["ROUTING_TAU", "RouterOutput", "SaliencyRouter", "gradient_x_input", "patch_grid_shape",
           "patch_importance", "importance_statistics", "band_saliency", "adaptive_k", "load_balance_loss",
           "dispatch", "dispatch_loop"]

ROUTING_TAU: dict[str, float] = {"accuracy": 0.9, "latency": 0.6}


def gradient_x_input(logits: torch.Tensor, inputs: torch.Tensor, baseline: float | str | torch.Tensor = 0.0,
                     target: torch.Tensor | None = None, retain_graph: bool = False) -> torch.Tensor:
    """Gradient x (input - baseline) of each sample's target logit, detached.

    The gradient of the batch sum of target logits is each sample's own gradient as long as samples
    do not interact (no BatchNorm in training mode between ``inputs`` and ``logits``).

    Args:
        logits: (B, C) computed from ``inputs`` with grad enabled.
        inputs: (B, ...) tensor requiring grad (a leaf or not).
        baseline: a number, a tensor or ``"min"`` (each sample's minimum), see ``resolve_baseline``.
        target: (B,) class per sample; default each sample's top logit.
        retain_graph: keep the graph for a later backward through ``logits``.

    Returns:
        (B, ...) saliency of the inputs' shape.
    """
    if target is None:
        target = logits.detach().argmax(dim=1)
    score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
    (grad,) = torch.autograd.grad(score, inputs, retain_graph=retain_graph)
    return (grad * (inputs - resolve_baseline(inputs.detach(), baseline))).detach()


def patch_grid_shape(num_rows: int, num_frames: int, patch_size: Sequence[int],
                     patch_stride: Sequence[int]) -> tuple[int, int]:
    """(rows, columns) of the patch grid over an F x T map; patches larger than the map are clipped to it."""
    kf, kt = min(int(patch_size[0]), num_rows), min(int(patch_size[1]), num_frames)
    sf, st = int(patch_stride[0]), int(patch_stride[1])
    return (num_rows - kf) // sf + 1, (num_frames - kt) // st + 1


def patch_importance(saliency: torch.Tensor, patch_size: Sequence[int], patch_stride: Sequence[int]) -> torch.Tensor:
    """Mean ``|saliency|`` per patch, normalised per sample to sum to 1.

    Args:
        saliency: (B, 1, F, T).
        patch_size, patch_stride: (freq rows, time frames); a patch larger than the map is clipped to it.

    Returns:
        (B, P) with P = Pf * Pt in row-major order of ``patch_grid_shape``.
    """
    kernel = (min(int(patch_size[0]), saliency.shape[-2]), min(int(patch_size[1]), saliency.shape[-1]))
    pooled = F.avg_pool2d(saliency.abs(), kernel, stride=tuple(int(s) for s in patch_stride)).flatten(1)
    total = pooled.sum(dim=1, keepdim=True)
    uniform = torch.full_like(pooled, 1.0 / pooled.shape[1])
    return torch.where(total > 0, pooled / total.clamp_min(1e-30), uniform)


def importance_statistics(importance: torch.Tensor) -> torch.Tensor:
    """(B, 2): normalised entropy in [0, 1] and share of the top 10% of patches (at least one) per sample."""
    num = importance.shape[1]
    if num == 1:
        return importance.new_tensor([0.0, 1.0]).expand(importance.shape[0], 2)
    p = importance.clamp_min(1e-12)
    entropy = -(importance * p.log()).sum(dim=1) / math.log(num)
    top = importance.topk(max(1, math.ceil(0.1 * num)), dim=1).values.sum(dim=1)
    return torch.stack([entropy, top], dim=1)


def band_saliency(saliency: torch.Tensor, band_mask: torch.Tensor) -> torch.Tensor:
    """(B, N) share of ``|saliency|`` (B, 1, F, T) inside each expert's rows (``band_mask`` (N, F))."""
    rows = saliency.abs().sum(dim=(1, 3))
    rows = rows / rows.sum(dim=1, keepdim=True).clamp_min(1e-30)
    return rows @ band_mask.to(rows.dtype).t()


def adaptive_k(probs: torch.Tensor, tau: float, k_min: int, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest K whose top-K probabilities sum to at least ``tau``, clamped to [k_min, k_max].

    Args:
        probs: (B, N) gate probabilities (rows sum to 1).

    Returns:
        k (B,) int64 and selected (B, N) bool marking each sample's top-k experts.
    """
    sorted_probs, order = probs.detach().sort(dim=1, descending=True, stable=True)
    below = (sorted_probs.cumsum(dim=1) < tau).sum(dim=1)
    k = (below + 1).clamp(min=k_min, max=k_max)
    ranks = torch.arange(probs.shape[1], device=probs.device).expand_as(order)
    selected = torch.zeros_like(probs, dtype=torch.bool).scatter(1, order, ranks < k[:, None])
    return k, selected


def load_balance_loss(probs: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """``N * sum_i f_i * P_i`` (Switch Transformer auxiliary loss), 1 for uniform routing.

    Args:
        probs: (B, N) gate probabilities; P_i is their batch mean (carries the gradient).
        selected: (B, N) bool; f_i is expert i's share of all assignments in the batch.
    """
    counts = selected.to(probs.dtype).sum(dim=0)
    fraction = counts / counts.sum().clamp_min(1.0)
    return probs.shape[1] * (fraction.detach() * probs.mean(dim=0)).sum()


def dispatch(experts: Sequence[nn.Module], inputs: torch.Tensor, selected: torch.Tensor, weights: torch.Tensor,
             out_features: int) -> torch.Tensor:
    """Batched top-k dispatch: each expert runs once on the samples that selected it.

    Args:
        experts: N modules mapping (b, ...) -> (b, out_features).
        inputs: (B, ...) shared by all experts.
        selected: (B, N) bool.
        weights: (B, N) mixing weights (zero where not selected).
        out_features: D.

    Returns:
        (B, D) ``sum_i weights[:, i] * expert_i(inputs)`` over the selected experts.
    """
    out = inputs.new_zeros(inputs.shape[0], out_features)
    for i, expert in enumerate(experts):
        index = selected[:, i].nonzero().flatten()
        if index.numel() == 0:
            continue
        y = expert(inputs.index_select(0, index))
        out = out.index_add(0, index, y.to(out.dtype) * weights.index_select(0, index)[:, i:i + 1])
    return out


def dispatch_loop(experts: Sequence[nn.Module], inputs: torch.Tensor, selected: torch.Tensor, weights: torch.Tensor,
                  out_features: int) -> torch.Tensor:
    """Reference for ``dispatch``: one sample and one expert at a time (tests and benchmarks only)."""
    rows = []
    for b in range(inputs.shape[0]):
        acc = inputs.new_zeros(out_features)
        for i, expert in enumerate(experts):
            if bool(selected[b, i]):
                acc = acc + weights[b, i] * expert(inputs[b:b + 1])[0]
        rows.append(acc)
    return torch.stack(rows)


@dataclass
class RouterOutput:
    """What the router decided for a batch (B samples, N experts, P patches)."""

    probs: torch.Tensor               # (B, N) gate probabilities
    selected: torch.Tensor            # (B, N) bool
    weights: torch.Tensor             # (B, N) renormalised over the selected experts, 0 elsewhere
    k: torch.Tensor                   # (B,) int64
    patch_importance: torch.Tensor    # (B, P), sums to 1 per sample
    load_balance_loss: torch.Tensor   # scalar


class SaliencyRouter(nn.Module):
    """Gate scores from saliency, patch statistics, learned gates and priors; adaptive K per sample.

    Args:
        feature_dim: channels of the pooled stem features fed to the learned gate.
        band_mask: (N, F) 1 on each expert's rows (``ExpertBank.band_mask``).
        priors: N non-negative priors, not all zero (the policy's ``ExpertSpec.prior``).
        k_min, k_max: bounds on K, ``1 <= k_min <= k_max <= N``.
        tau: cumulative probability mass K must cover (``ROUTING_TAU[budget]``).
        patch_size, patch_stride: (freq rows, time frames) of the patch grid.
    """

    def __init__(self, feature_dim: int, band_mask: torch.Tensor, priors: Sequence[float], k_min: int, k_max: int,
                 tau: float, patch_size: Sequence[int], patch_stride: Sequence[int]) -> None:
        super().__init__()
        num = int(band_mask.shape[0])
        if not 1 <= int(k_min) <= int(k_max) <= num:
            raise ConfigError(f"k_min={k_min}, k_max={k_max} with {num} experts: need 1 <= k_min <= k_max <= {num}")
        if len(priors) != num or min(float(p) for p in priors) < 0 or sum(float(p) for p in priors) <= 0:
            raise ConfigError(f"priors={list(priors)}: give one non-negative prior per expert ({num}), not all zero")
        if not 0.0 < float(tau) <= 1.0:
            raise ConfigError(f"tau={tau}: the routing mass threshold must lie in (0, 1]")
        if min(int(s) for s in (*patch_size, *patch_stride)) < 1:
            raise ConfigError(f"patch_size={patch_size}, patch_stride={patch_stride}: use positive (freq, time) pairs")
        self.k_min, self.k_max, self.tau = int(k_min), int(k_max), float(tau)
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.patch_stride = (int(patch_stride[0]), int(patch_stride[1]))
        self.register_buffer("band_mask", band_mask.float(), persistent=False)
        coverage = band_mask.float().sum(dim=1) / band_mask.shape[1]
        self.register_buffer("log_coverage", coverage.log(), persistent=False)
        prior = torch.tensor([float(p) for p in priors])
        self.register_buffer("log_prior", (prior / prior.sum()).clamp_min(1e-6).log(), persistent=False)
        self.gate = nn.Linear(feature_dim + 2, num)
        self.saliency_weight = nn.Parameter(torch.ones(num))
        self.temperature = nn.Parameter(torch.tensor([0.0, 1.0]))  # t0, t1 of T = exp(t0 + t1 (H - 0.5))

    def forward(self, features: torch.Tensor, saliency: torch.Tensor) -> RouterOutput:
        """Route a batch: pooled stem features (B, C) and saliency (B, 1, F, T) -> ``RouterOutput``."""
        importance = patch_importance(saliency, self.patch_size, self.patch_stride)
        stats = importance_statistics(importance)
        lift = band_saliency(saliency, self.band_mask).clamp_min(1e-6).log() - self.log_coverage
        logits = self.gate(torch.cat([features, stats], dim=1)) + self.saliency_weight * lift + self.log_prior
        t0, t1 = self.temperature
        temperature = (t0 + t1 * (stats[:, :1] - 0.5)).exp().clamp(0.05, 20.0)
        probs = (logits / temperature).softmax(dim=1)
        k, selected = adaptive_k(probs, self.tau, self.k_min, self.k_max)
        kept = probs * selected
        weights = kept / kept.sum(dim=1, keepdim=True)
        return RouterOutput(probs, selected, weights, k, importance, load_balance_loss(probs, selected))
