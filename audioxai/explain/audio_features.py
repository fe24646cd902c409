"""Audio as a coalition game: features over the STFT grid, the masker that hides them, the game, its explanations.

- ``AudioFeatures``: M regions of the STFT grid (``n_fft // 2 + 1`` bins x ``num_samples // hop + 1``
  centred frames, periodic Hann window) that partition it: every bin of every frame belongs to exactly
  one feature. ``time_segments`` cuts time only (fixed windows, or a word/phoneme alignment with the
  gaps between aligned items as their own ``"gap"`` features); ``time_frequency_patches`` cuts
  mel-spaced frequency bands x equal time windows. A frame belongs to the segment holding its centre.
- ``AudioMasker``: a coalition ``z`` (B, M) in [0, 1] to waveforms (B, N). With X the STFT of the
  waveform and R a replacement, ``mask = z @ regions`` and ``X' = mask * X + (1 - mask) * R``,
  resynthesised by the inverse STFT. Replacements: ``silence`` (R = 0), ``noise`` (the STFT of seeded
  white noise whose RMS is ``noise_db`` dB relative to the utterance's RMS, -20 dB by default) and
  ``mean`` (the utterance's mean magnitude per frequency bin, with the utterance's own phase).

Because the inverse STFT is linear, ``iSTFT(X') = iSTFT(R) + sum_m z_m iSTFT(region_m * (X - R))``:
the masker computes the M basis waveforms once and a batch of coalitions is one matrix product,
exactly linear and differentiable in ``z``, with no STFT per coalition (``masked_spectrogram`` gives X'
itself, for figures and checks). The bases take M x N floats of memory.

- ``AudioGame``: ``v(z) = value_fn(masker(z))``, (B, M) -> (B, K), evaluated in chunks of ``batch_size``
  under ``no_grad`` and counting the masked waveforms the model saw (``num_evaluations``);
  ``forward_with_grad`` is the differentiable path for gradient methods.
- ``ShapleyExplanation``: what every estimator returns, with the additivity error
  ``|sum_m phi_m + v(0) - v(1)|`` per output, computed from the values as they are (never renormalised).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from audioxai.data.audio import check_waveform
from audioxai.data.noise import white_noise
from audioxai.errors import AudioInputError, ConfigError
from audioxai.runtime import resolve_device

__all__ = ["AudioFeatures", "AudioMasker", "AudioGame", "ShapleyExplanation", "additivity_error", "REPLACEMENTS",
           "mel_band_edges"]

REPLACEMENTS = ("silence", "noise", "mean")
Bound = tuple[float, float, float, float]


def _frames(num_samples: int, hop_length: int) -> int:
    return num_samples // hop_length + 1


def mel_band_edges(num_bands: int, fmin: float, fmax: float) -> list[float]:
    """``num_bands + 1`` edges in Hz equally spaced on the HTK mel scale, ``2595 log10(1 + f / 700)``."""
    lo, hi = (2595.0 * math.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    return [700.0 * (10.0 ** ((lo + (hi - lo) * i / num_bands) / 2595.0) - 1.0) for i in range(num_bands + 1)]


def _check_grid(num_samples: int, sample_rate: int, n_fft: int, hop_length: int) -> None:
    if num_samples < 1:
        raise AudioInputError(f"num_samples={num_samples}: the audio is empty; pass at least one sample")
    if sample_rate < 1 or n_fft < 2 or not 0 < hop_length <= n_fft // 2:
        raise ConfigError(f"sample_rate={sample_rate}, n_fft={n_fft}, hop_length={hop_length}: use positive "
                          "values with hop_length <= n_fft // 2 (the inverse STFT needs the overlap)")


def _frame_segments(num_samples: int, sample_rate: int, hop_length: int, edges: list[float]) -> torch.Tensor:
    """Index of the segment [edges[i], edges[i + 1]) holding each frame's centre (the last one closed)."""
    centres = torch.arange(_frames(num_samples, hop_length), dtype=torch.float64) * hop_length / sample_rate
    inner = torch.tensor(edges[1:-1], dtype=torch.float64)
    return torch.bucketize(centres, inner, right=True)


def _tiled_segments(boundaries: list[tuple[str, float, float]], duration: float) -> list[tuple[str, float, float]]:
    """The aligned items sorted in time, with ``gap`` segments filling what they leave of [0, duration]."""
    items = sorted(((str(label), max(0.0, float(t0)), min(duration, float(t1))) for label, t0, t1 in boundaries),
                   key=lambda item: (item[1], item[2]))
    out, cursor = [], 0.0
    for label, t0, t1 in items:
        if t0 >= t1:
            raise ConfigError(f"boundary {label!r} ({t0:.3f}-{t1:.3f} s) is empty or past the audio's "
                              f"{duration:.3f} s: drop it or fix the alignment")
        if t0 < cursor - 1e-9:
            raise ConfigError(f"boundary {label!r} starts at {t0:.3f} s, before the previous item ends at "
                              f"{cursor:.3f} s: the alignment items must not overlap")
        if t0 > cursor:
            out.append(("gap", cursor, t0))
        out.append((label, t0, t1))
        cursor = t1
    if cursor < duration:
        out.append(("gap", cursor, duration))
    return out


@dataclass
class AudioFeatures:
    """M regions of the STFT grid that partition it, with a label and a (t0_s, t1_s, f0_hz, f1_hz) box each.

    ``regions`` is (M, n_fft // 2 + 1, num_samples // hop_length + 1), float 0/1; ``kind`` is
    ``"time"`` or ``"time_frequency"``. Construct with ``time_segments`` or ``time_frequency_patches``.
    """

    regions: torch.Tensor
    labels: list[str]
    kind: str
    bounds: list[Bound]
    num_samples: int
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 128

    def __post_init__(self) -> None:
        grid = (self.n_fft // 2 + 1, _frames(self.num_samples, self.hop_length))
        if self.regions.ndim != 3 or tuple(self.regions.shape[1:]) != grid:
            raise ConfigError(f"regions have shape {tuple(self.regions.shape)}: expected (M, {grid[0]}, {grid[1]}) "
                              f"for {self.num_samples} samples with n_fft={self.n_fft}, hop_length={self.hop_length}")
        if not len(self.labels) == len(self.bounds) == self.regions.shape[0]:
            raise ConfigError(f"{self.regions.shape[0]} regions but {len(self.labels)} labels and "
                              f"{len(self.bounds)} bounds: give one label and one bound per region")
        if not torch.equal(self.regions.sum(0), torch.ones(grid, dtype=self.regions.dtype)):
            raise ConfigError("the regions do not partition the STFT grid (some bin is in no feature or in "
                              "several): build them with time_segments or time_frequency_patches")

    @property
    def num_features(self) -> int:
        """M, the number of features (players)."""
        return int(self.regions.shape[0])

    @classmethod
    def time_segments(cls, num_samples: int, sample_rate: int = 16000, num_segments: int | None = None,
                      window_seconds: float | None = None, boundaries: list[tuple[str, float, float]] | None = None,
                      n_fft: int = 512, hop_length: int = 128) -> AudioFeatures:
        """Time segments over all frequencies: ``num_segments`` equal ones, windows of ``window_seconds``
        (the last one shorter), or ``boundaries`` = [(label, start_s, end_s)] such as a word alignment.

        Gaps between (and around) the aligned items become ``"gap"`` features, so the features tile the
        clip; a gap holding no frame centre is dropped, an aligned item holding none is an error.
        """
        _check_grid(num_samples, sample_rate, n_fft, hop_length)
        if sum(arg is not None for arg in (num_segments, window_seconds, boundaries)) != 1:
            raise ConfigError("time_segments: pass exactly one of num_segments, window_seconds or boundaries")
        duration = num_samples / sample_rate
        if num_segments is not None:
            if num_segments < 1:
                raise ConfigError(f"num_segments={num_segments}: use at least 1")
            edges = [duration * i / num_segments for i in range(num_segments + 1)]
            segments = [(f"{a:.3f}-{b:.3f}s", a, b) for a, b in zip(edges[:-1], edges[1:])]
        elif window_seconds is not None:
            if window_seconds <= 0:
                raise ConfigError(f"window_seconds={window_seconds}: use a positive length")
            count = max(1, math.ceil(duration / window_seconds - 1e-9))
            edges = [min(duration, window_seconds * i) for i in range(count + 1)]
            if count > 1 and duration - edges[-2] < hop_length / sample_rate:  # a sliver: join the last window
                edges.pop(-2)
            segments = [(f"{a:.3f}-{b:.3f}s", a, b) for a, b in zip(edges[:-1], edges[1:])]
        else:
            segments = _tiled_segments(list(boundaries), duration)
        index = _frame_segments(num_samples, sample_rate, hop_length, [s[1] for s in segments] + [duration])
        counts = torch.bincount(index, minlength=len(segments))
        keep = []
        for m, (label, t0, t1) in enumerate(segments):
            if counts[m] > 0:
                keep.append(m)
            elif boundaries is None or label != "gap":
                raise ConfigError(f"segment {label!r} ({t0:.4f}-{t1:.4f} s) holds no STFT frame centre (hop "
                                  f"{hop_length / sample_rate * 1000:.1f} ms): use fewer or longer segments or a "
                                  "smaller hop_length")
        time_masks = (index[None, :] == torch.tensor(keep)[:, None]).float()
        regions = time_masks[:, None, :].expand(-1, n_fft // 2 + 1, -1).contiguous()
        nyquist = sample_rate / 2
        chosen = [segments[m] for m in keep]
        return cls(regions, [s[0] for s in chosen], "time", [(a, b, 0.0, nyquist) for _, a, b in chosen],
                   num_samples, sample_rate, n_fft, hop_length)

    @classmethod
    def time_frequency_patches(cls, num_samples: int, sample_rate: int = 16000, num_bands: int = 8,
                               num_windows: int = 8, fmin: float = 0.0, fmax: float | None = None,
                               n_fft: int = 512, hop_length: int = 128) -> AudioFeatures:
        """``num_bands`` mel-spaced frequency bands x ``num_windows`` equal time windows, time-major:
        feature ``w * num_bands + b`` is band ``b`` (lowest first) of window ``w``.

        Band edges are equally spaced on the mel scale between ``fmin`` and ``fmax`` (default sr / 2);
        STFT bins below ``fmin`` join the first band and bins above ``fmax`` the last, so the patches
        still tile the grid (the first band's box then starts at 0 Hz, the last one ends at sr / 2).
        """
        _check_grid(num_samples, sample_rate, n_fft, hop_length)
        fmax = sample_rate / 2 if fmax is None else float(fmax)
        if num_bands < 1 or not 0.0 <= fmin < fmax <= sample_rate / 2:
            raise ConfigError(f"num_bands={num_bands}, fmin={fmin}, fmax={fmax}: use num_bands >= 1 and "
                              f"0 <= fmin < fmax <= {sample_rate / 2} (the Nyquist frequency)")
        edges = mel_band_edges(num_bands, fmin, fmax)
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
        band = torch.bucketize(bins, torch.tensor(edges[1:-1], dtype=torch.float64), right=True)
        empty = [b for b in range(num_bands) if not (band == b).any()]
        if empty:
            raise ConfigError(f"mel band(s) {empty} of {num_bands} hold no STFT bin (bins are "
                              f"{sample_rate / n_fft:.1f} Hz apart): use fewer bands, a larger fmin or a larger n_fft")
        windows = cls.time_segments(num_samples, sample_rate, num_segments=num_windows, n_fft=n_fft,
                                    hop_length=hop_length)
        band_masks = (band[None, :] == torch.arange(num_bands)[:, None]).float()  # (bands, F)
        time_masks = windows.regions[:, 0, :]  # (windows, T)
        regions = (time_masks[:, None, None, :] * band_masks[None, :, :, None]).flatten(0, 1)
        edges[0], edges[-1] = 0.0, sample_rate / 2
        labels, bounds = [], []
        for t0, t1, _, _ in windows.bounds:
            for b in range(num_bands):
                labels.append(f"{t0:.3f}-{t1:.3f}s {edges[b]:.0f}-{edges[b + 1]:.0f}Hz")
                bounds.append((t0, t1, edges[b], edges[b + 1]))
        return cls(regions, labels, "time_frequency", bounds, num_samples, sample_rate, n_fft, hop_length)


class AudioMasker:
    """Coalitions z (B, M) in [0, 1] -> waveforms (B, N): keep the features where z = 1, replace the rest.

    ``X' = mask * X + (1 - mask) * R`` with ``mask = z @ regions``, resynthesised to N samples; exactly
    linear in ``z`` and differentiable (see the module docstring for how it is computed).
    """

    def __init__(self, waveform: torch.Tensor, features: AudioFeatures, replacement: str = "silence",
                 seed: int = 0, noise_db: float = -20.0, device: str | torch.device | None = None) -> None:
        """Args: waveform (N,) or (1, N) at ``features.sample_rate`` with N = ``features.num_samples``;
        replacement ``silence`` | ``noise`` | ``mean``; seed and noise_db (level relative to the
        waveform's RMS) for ``noise``; device (default: the waveform's)."""
        if replacement not in REPLACEMENTS:
            raise ConfigError(f"replacement={replacement!r}: choose one of {', '.join(REPLACEMENTS)}")
        x = check_waveform(waveform, features.sample_rate)
        if x.numel() != features.num_samples:
            raise AudioInputError(f"waveform has {x.numel()} samples but the features were built for "
                                  f"{features.num_samples}: build the features from this waveform's length")
        self.device = torch.device(device) if device is not None else x.device
        self.features, self.replacement = features, replacement
        self.window = torch.hann_window(features.n_fft, device=self.device)
        x = x.to(self.device, torch.float32)
        spec = self._stft(x)
        if replacement == "silence":
            fill = torch.zeros_like(spec)
        elif replacement == "noise":
            rms = x.pow(2).mean().sqrt()
            noise = white_noise(x.numel(), features.sample_rate, seed).to(self.device) * rms * 10 ** (noise_db / 20)
            fill = self._stft(noise)
        else:
            fill = spec.abs().mean(dim=1, keepdim=True) * torch.polar(torch.ones_like(spec.abs()), spec.angle())
        self.spectrogram, self.fill = spec, fill
        self.fill_waveform = self._istft(fill[None])[0]
        self.bases = torch.cat([self._istft(features.regions[i:i + 32].to(self.device) * (spec - fill))
                                for i in range(0, features.num_features, 32)])  # (M, N)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features
        return torch.stft(x, f.n_fft, f.hop_length, window=self.window, center=True, return_complex=True)

    def _istft(self, spec: torch.Tensor) -> torch.Tensor:
        f = self.features
        return torch.istft(spec, f.n_fft, f.hop_length, window=self.window, center=True, length=f.num_samples)

    def check_coalitions(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` as float32 (B, M) on the masker's device; ConfigError for any other shape."""
        z = torch.as_tensor(z, device=self.device)
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.features.num_features:
            raise ConfigError(f"coalitions of shape {tuple(z.shape)}: expected (B, {self.features.num_features}), "
                              "one column per feature")
        return z.to(torch.float32)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Masked waveforms (B, N) for coalitions z (B, M); differentiable in z."""
        return self.check_coalitions(z) @ self.bases + self.fill_waveform

    def masked_spectrogram(self, z: torch.Tensor) -> torch.Tensor:
        """X' = mask * X + (1 - mask) * R, complex (B, F, frames), for figures and checks."""
        mask = torch.einsum("bm,mft->bft", self.check_coalitions(z), self.features.regions.to(self.device))
        return mask * self.spectrogram + (1 - mask) * self.fill


ValueFunction = Callable[[torch.Tensor], torch.Tensor]


class AudioGame:
    """The coalition game ``v(z) = value_fn(masker(z))``: (B, M) in [0, 1] -> (B, K).

    ``value_fn`` maps waveforms (B, N) on ``device`` to (B, K) (or (B,), read as K = 1). Every masked
    waveform handed to it adds one to ``num_evaluations``.
    """

    def __init__(self, waveform: torch.Tensor, features: AudioFeatures, value_fn: ValueFunction,
                 replacement: str = "silence", batch_size: int = 64, device: str | torch.device | None = None,
                 seed: int = 0, noise_db: float = -20.0) -> None:
        """Args: see ``AudioMasker`` for waveform, features, replacement, seed and noise_db; batch_size:
        waveforms per ``value_fn`` call; device: where masking runs (default the waveform's)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: use at least 1")
        self.device = resolve_device(device) if device is not None else torch.as_tensor(waveform).device
        self.masker = AudioMasker(waveform, features, replacement, seed, noise_db, self.device)
        self.features, self.value_fn, self.batch_size = features, value_fn, int(batch_size)
        self.num_evaluations = 0

    @property
    def num_features(self) -> int:
        """M, the number of players."""
        return self.features.num_features

    def _evaluate(self, z: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in self.masker.check_coalitions(z).split(self.batch_size):
            out = self.value_fn(self.masker(chunk))
            out = out[:, None] if out.ndim == 1 else out
            if out.ndim != 2 or out.shape[0] != chunk.shape[0]:
                raise ConfigError(f"value_fn returned shape {tuple(out.shape)} for {chunk.shape[0]} waveforms: "
                                  "return (B, K), one row per waveform")
            outputs.append(out)
            self.num_evaluations += chunk.shape[0]
        return torch.cat(outputs)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """v(z) for coalitions (B, M), without gradients; (B, K) on the value function's device."""
        with torch.no_grad():
            return self._evaluate(z)

    def forward_with_grad(self, z: torch.Tensor) -> torch.Tensor:
        """v(z) with the autograd graph from ``z`` through masking and the value function."""
        with torch.enable_grad():
            return self._evaluate(z)

    def endpoints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(v(0), v(1)) as float64 CPU vectors (K,), off the books: not added to ``num_evaluations``."""
        before = self.num_evaluations
        ends = self(torch.stack([torch.zeros(self.num_features), torch.ones(self.num_features)])).double().cpu()
        self.num_evaluations = before
        return ends[0], ends[1]


def additivity_error(values: torch.Tensor, base_value: torch.Tensor, full_value: torch.Tensor) -> torch.Tensor:
    """``|sum_m values[m] + base_value - full_value|`` per output (K,), in float64."""
    return (values.double().sum(0) + base_value.double() - full_value.double()).abs()


@dataclass
class ShapleyExplanation:
    """Attributions of K outputs to M features, with v(0), v(1), the additivity error and the cost.

    ``values`` (M, K), ``base_value`` = v(0) and ``full_value`` = v(1) (K,), float64 on the CPU;
    ``num_evaluations``: masked waveforms the model saw; ``error``: why a method failed (its values
    are then NaN); ``details``: method-specific records (e.g. the coalitions and weights used).
    """

    values: torch.Tensor
    base_value: torch.Tensor
    full_value: torch.Tensor
    additivity_error: torch.Tensor
    num_evaluations: int
    seconds: float
    method: str
    error: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(cls, values: torch.Tensor, base_value: torch.Tensor, full_value: torch.Tensor, num_evaluations: int,
              seconds: float, method: str, error: str | None = None, **details: object) -> ShapleyExplanation:
        """The record with everything as float64 CPU tensors and the additivity error computed."""
        values, base, full = (torch.as_tensor(t).detach().double().cpu() for t in (values, base_value, full_value))
        return cls(values, base, full, additivity_error(values, base, full), int(num_evaluations), float(seconds),
                   method, error, dict(details))

    @property
    def max_additivity_error(self) -> float:
        """The largest additivity error over the K outputs."""
        return float(self.additivity_error.max())
