"""The expert bank: one small CNN per expert, each over the spectrogram rows of its frequency band.

An expert reads the shared stem's feature map (B, C, F, T) but only the rows of its ``band_hz``
(mapped to rows through the front-end's ``band_edges_hz``), applies its family's input transform,
then ``max-pool -> conv(kernel from ExpertSpec.kernel, c = ExpertSpec.channels) -> GroupNorm -> ReLU ->
max-pool -> conv 3x3 (c) -> GroupNorm -> ReLU -> max-pool -> conv 3x3 (2c) -> GroupNorm -> ReLU -> global
mean and max -> linear`` to a common embedding of size D. Each pooling halves time and, except for the
fine-frequency family, frequency: the shared stem already works at full resolution, so the experts spend
their cost on channels at coarser grids, as a CNN does. (The first version, two convs at the stem's
resolution with 16 channels, lost to a three-block CNN of the same cost by 5-10 points in chapter 5.)

Family input transforms (what makes the families differ beyond band, kernel and width):

- ``NoiseRobust_*``: subtract each row's median over time (a per-sample noise-floor estimate), so a
  stationary background does not reach the convolutions.
- ``TransientExpert``: the features and their first difference over time (onset emphasis), stacked
  as channels.
- ``FineFreqExpert``: no pooling along frequency (keeps the fine frequency resolution).
- the others: the features as they are.

Normalisation is GroupNorm, never BatchNorm: an expert's output for a sample must not depend on the
other samples that were routed to it, so that grouped dispatch equals a per-sample loop and the
router's input gradients are per-sample gradients, in training as in evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audioxai.errors import ConfigError
from audioxai.moe.router import dispatch

__all__ = ["FAMILY_TRANSFORMS", "band_rows", "Expert", "ExpertBank"]

FAMILY_TRANSFORMS: dict[str, str] = {
    "NoiseRobust_Broadband": "noise_floor",
    "NoiseRobust_LowFreq": "noise_floor",
    "NoiseRobust_HighFreq": "noise_floor",
    "TransientExpert": "onset",
    "HarmonicExpert": "none",
    "FineFreqExpert": "none",
    "MidbandGeneral": "none",
    "HighbandGeneral": "none",
}
_NO_FREQ_POOL = frozenset({"FineFreqExpert"})


def band_rows(band_edges_hz: torch.Tensor, band_hz: tuple[float, float], name: str = "expert") -> tuple[int, int]:
    """Rows [lo, hi) of a spectrogram whose frequency span overlaps ``band_hz``.

    Row i spans ``[band_edges_hz[i], band_edges_hz[i + 1]]``; it belongs to the band when the two
    intervals overlap by more than a point.

    Args:
        band_edges_hz: (F + 1,) increasing row edges in Hz (``Frontend.band_edges_hz()``).
        band_hz: (low, high) in Hz.
        name: the expert's name, for the error message.

    Returns:
        (lo, hi) with ``0 <= lo < hi <= F``.

    Raises:
        ConfigError: when the band is empty or misses every row of the front-end.
    """
    low, high = float(band_hz[0]), float(band_hz[1])
    if not high > low:
        raise ConfigError(f"expert {name!r}: band_hz={band_hz} is empty; give (low, high) with high > low")
    edges = torch.as_tensor(band_edges_hz, dtype=torch.float64).flatten().cpu()
    inside = ((edges[1:] > low) & (edges[:-1] < high)).nonzero().flatten()
    if inside.numel() == 0:
        raise ConfigError(
            f"expert {name!r}: band_hz=({low:g}, {high:g}) Hz lies outside the front-end's range "
            f"[{float(edges[0]):g}, {float(edges[-1]):g}] Hz; drop the expert from the policy or widen the front-end's "
            f"(fmin, fmax)")
    return int(inside[0]), int(inside[-1]) + 1


def _onset(x: torch.Tensor) -> torch.Tensor:
    """The features and their first difference over time (zero at the first frame), as channels."""
    diff = torch.diff(x, dim=-1, prepend=x[..., :1])
    return torch.cat([x, diff], dim=1)


def _noise_floor(x: torch.Tensor) -> torch.Tensor:
    """Each row minus its median over time."""
    return x - x.median(dim=-1, keepdim=True).values


class Expert(nn.Module):
    """One expert: a three-conv CNN over the rows ``rows`` of a (B, C, F, T) feature map, to (B, D).

    Args:
        spec: an ``ExpertSpec`` (``name``, ``family``, ``kernel`` (freq, time), ``channels``).
        in_channels: channels of the feature map it reads.
        rows: [lo, hi) rows of its band (``band_rows``).
        embed_dim: D, the bank's common embedding size.
    """

    def __init__(self, spec: Any, in_channels: int, rows: tuple[int, int], embed_dim: int) -> None:
        super().__init__()
        family = str(spec.family)
        if family not in FAMILY_TRANSFORMS:
            raise ConfigError(f"expert {spec.name!r}: unknown family {family!r}; use one of {sorted(FAMILY_TRANSFORMS)}")
        kernel = tuple(int(k) for k in spec.kernel)
        channels = int(spec.channels)
        if len(kernel) != 2 or min(kernel) < 1 or channels < 1:
            raise ConfigError(f"expert {spec.name!r}: kernel={spec.kernel} and channels={spec.channels} must be a "
                              f"(freq, time) pair of positive ints and a positive int")
        self.name, self.family = str(spec.name), family
        self.transform = FAMILY_TRANSFORMS[family]
        self.rows = (int(rows[0]), int(rows[1]))
        self.freq_pool = 1 if family in _NO_FREQ_POOL else 2
        c_in = in_channels * (2 if self.transform == "onset" else 1)
        kh, kw = kernel  # 'same' padding, the odd pixel after for even kernels
        self.pad = nn.ZeroPad2d(((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
        self.conv1 = nn.Conv2d(c_in, channels, kernel)
        self.norm1 = nn.GroupNorm(1, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(1, channels)
        self.conv3 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.norm3 = nn.GroupNorm(1, 2 * channels)
        self.proj = nn.Linear(4 * channels, embed_dim)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """Max-pool by 2 in time and (unless fine-frequency) in frequency; an axis of length 1 is kept."""
        pool = (min(self.freq_pool, x.shape[-2]), min(2, x.shape[-1]))
        return x if pool == (1, 1) else F.max_pool2d(x, pool)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) shared features -> (B, D) embedding of this expert's band."""
        x = features[:, :, self.rows[0]:self.rows[1]]
        if self.transform == "onset":
            x = _onset(x)
        elif self.transform == "noise_floor":
            x = _noise_floor(x)
        x = F.relu(self.norm1(self.conv1(self.pad(self._pool(x)))))
        x = F.relu(self.norm2(self.conv2(self._pool(x))))
        x = F.relu(self.norm3(self.conv3(self._pool(x))))
        return self.proj(torch.cat([x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1))], dim=1))


class ExpertBank(nn.Module):
    """N experts, one per ``ExpertSpec``, all returning (B, D).

    Args:
        specs: the policy's enabled experts, in routing order.
        band_edges_hz: (F + 1,) row edges of the front-end, in Hz.
        in_channels: channels of the shared feature map.
        embed_dim: D.
    """

    def __init__(self, specs: Sequence[Any], band_edges_hz: torch.Tensor, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        if len(specs) == 0:
            raise ConfigError("the policy enables no expert: enable at least one expert family")
        names = [str(s.name) for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"expert names {names} repeat: give each ExpertSpec a unique name")
        edges = torch.as_tensor(band_edges_hz, dtype=torch.float32).flatten()
        self.num_rows = int(edges.numel()) - 1
        self.embed_dim = int(embed_dim)
        self.experts = nn.ModuleList(
            Expert(s, in_channels, band_rows(edges, s.band_hz, str(s.name)), embed_dim) for s in specs)
        self.register_buffer("band_mask", self._band_mask(), persistent=False)

    def _band_mask(self) -> torch.Tensor:
        mask = torch.zeros(len(self.experts), self.num_rows)
        for i, expert in enumerate(self.experts):
            mask[i, expert.rows[0]:expert.rows[1]] = 1.0
        return mask

    def forward(self, features: torch.Tensor, selected: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Batched top-k dispatch of ``features`` (B, C, F, T) to the selected experts -> (B, D) weighted sum."""
        return dispatch(self.experts, features, selected, weights, self.embed_dim)

    @property
    def names(self) -> list[str]:
        """The experts' names, in routing order."""
        return [e.name for e in self.experts]

    def __len__(self) -> int:
        return len(self.experts)

    def describe(self) -> list[dict[str, Any]]:
        """One plain dict per expert (name, family, rows, transform, parameters), for architecture reports."""
        return [{"name": e.name, "family": e.family, "rows": list(e.rows), "transform": e.transform,
                 "kernel": list(e.conv1.kernel_size), "channels": e.conv1.out_channels,
                 "parameters": sum(p.numel() for p in e.parameters())} for e in self.experts]
