"""The expert bank and routing budget of the mixture of experts, derived from a dataset profile (``policy.json``).

``make_policy(profile, spectro)`` starts from the eight :data:`EXPERT_FAMILIES`, one expert each, and applies
the rules (thresholds are module constants):

* ``min(fmax_eff, spectro.fmax)`` < :data:`HIGH_BAND_HZ` disables the high-band experts
  (``NoiseRobust_HighFreq``, ``HighbandGeneral``): there is no high band to cover;
* ``quality_score`` < :data:`LOW_QUALITY_Q` disables the fine-resolution expert (``FineFreqExpert``);
* ``transient_rate`` >= :data:`TRANSIENT_RATE` multiplies ``TransientExpert``'s prior by :data:`TRANSIENT_BOOST`;
  ``snr_db_proxy`` < ``NOISY_SNR_DB`` multiplies the ``NoiseRobust_*`` priors by :data:`SECONDARY_BOOST`;
  ``spectral_flatness`` < ``TONAL_FLATNESS`` (tonal) does the same for ``HarmonicExpert`` and ``FineFreqExpert``.
  Priors are then normalised to sum to 1.

Bands split ``[fmin, fmax]`` of the front-end in thirds (Hz): low, middle, upper; broadband, transient and
harmonic experts see all of it. Kernels are ``(freq rows, time frames)``. ``k_max`` is ``min(3, N)`` for the
accuracy budget and one less (at least 1) for latency; ``k_min`` is 1. Patches are a quarter of the rows by
about :data:`PATCH_SECONDS` of frames, tiled without overlap.
"""

from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from audioxai.config import load_config_json, save_config_json
from audioxai.errors import ConfigError
from audioxai.moe.frontend import NOISY_SNR_DB, TONAL_FLATNESS, SpectroConfig, frontend_shape

if TYPE_CHECKING:
    from audioxai.moe.profiling import DatasetProfile

logger = logging.getLogger(__name__)

__all__ = ["EXPERT_FAMILIES", "ExpertSpec", "Policy", "make_policy", "save_policy", "load_policy", "policy_summary",
           "POLICY_NAME"]

EXPERT_FAMILIES = ("NoiseRobust_Broadband", "NoiseRobust_LowFreq", "NoiseRobust_HighFreq", "TransientExpert",
                   "HarmonicExpert", "FineFreqExpert", "MidbandGeneral", "HighbandGeneral")
POLICY_NAME = "policy.json"
BUDGETS = ("accuracy", "latency")
HIGH_BAND_HZ = 2000.0     # top of the analysed band below this: no high-band experts
LOW_QUALITY_Q = 0.4       # quality score below this: no fine-resolution expert
TRANSIENT_RATE = 0.3      # transient rate at or above this: transients dominate
TRANSIENT_BOOST = 3.0
SECONDARY_BOOST = 1.5
ACCURACY_K_MAX = 3
PATCH_SECONDS = 0.25
EXPERT_CHANNELS = 32
HIGH_BAND_FAMILIES = ("NoiseRobust_HighFreq", "HighbandGeneral")
FINE_FAMILIES = ("FineFreqExpert",)

# (freq rows, time frames): noise-robust experts average wide neighbourhoods; the transient expert sees one
# frame across many rows; the harmonic expert a tall stack of rows; the fine-frequency expert one row over time.
KERNELS: dict[str, tuple[int, int]] = {
    "NoiseRobust_Broadband": (5, 5), "NoiseRobust_LowFreq": (5, 5), "NoiseRobust_HighFreq": (5, 5),
    "TransientExpert": (7, 1), "HarmonicExpert": (11, 3), "FineFreqExpert": (1, 9),
    "MidbandGeneral": (3, 3), "HighbandGeneral": (3, 3),
}


@dataclass
class ExpertSpec:
    """One expert: its family, the band (Hz) it looks at, its conv kernel (rows, frames), width and routing prior."""

    name: str
    family: str
    band_hz: tuple[float, float]
    kernel: tuple[int, int]
    channels: int
    prior: float


@dataclass
class Policy:
    """The enabled experts (``N = len(experts)``), the masked families and why, K bounds and the patch tiling."""

    experts: list[ExpertSpec]
    disabled: dict[str, str]
    k_max: int
    k_min: int
    patch_size: tuple[int, int]
    patch_stride: tuple[int, int]
    budget: Literal["accuracy", "latency"]
    rules: list[str] = field(default_factory=list)  # the prior adjustments applied, human readable

    def __post_init__(self) -> None:
        _check_policy(self)

    @property
    def num_experts(self) -> int:
        """N, the number of enabled experts."""
        return len(self.experts)


def _check_policy(policy: Policy) -> None:
    """Raise ConfigError naming the first inconsistent field of ``policy``."""
    if not policy.experts:
        raise ConfigError("experts is empty: a policy needs at least one expert")
    names = [e.name for e in policy.experts]
    if len(set(names)) != len(names):
        raise ConfigError(f"experts has repeated names {names}: give each expert its own name")
    for expert in policy.experts:
        if expert.family not in EXPERT_FAMILIES:
            raise ConfigError(f"experts[{expert.name!r}].family={expert.family!r}: use one of {list(EXPERT_FAMILIES)}")
        if not 0 <= expert.band_hz[0] < expert.band_hz[1] or min(*expert.kernel, expert.channels) < 1 \
                or expert.prior < 0:
            raise ConfigError(f"experts[{expert.name!r}] has band {expert.band_hz}, kernel {expert.kernel}, channels "
                              f"{expert.channels}, prior {expert.prior}: need 0 <= low < high, positive sizes and "
                              f"prior >= 0")
    if policy.budget not in BUDGETS:
        raise ConfigError(f"budget={policy.budget!r}: use one of {list(BUDGETS)}")
    if not 1 <= policy.k_min <= policy.k_max <= len(policy.experts):
        raise ConfigError(f"k_min={policy.k_min}, k_max={policy.k_max} with N={len(policy.experts)} experts: "
                          f"need 1 <= k_min <= k_max <= N")
    for key in ("patch_size", "patch_stride"):
        _pair(getattr(policy, key), key)


def _pair(value: Any, key: str) -> tuple[int, int]:
    """``value`` as two positive ints ``(rows, frames)``, or ConfigError naming ``key``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value):
        raise ConfigError(f"{key}={value!r} should be two positive integers (freq rows, time frames)")
    return int(value[0]), int(value[1])


def make_policy(profile: DatasetProfile, spectro: SpectroConfig, budget: str = "accuracy",
                num_experts: int | None = None, k_max: int | None = None,
                patch_size: tuple[int, int] | None = None, patch_stride: tuple[int, int] | None = None) -> Policy:
    """The expert bank, K bounds and tiling for a profiled dataset and its front-end, by the module's rules.

    Args:
        profile: a ``DatasetProfile`` (``fmax_eff``, ``quality_score``, ``transient_rate``, ``snr_db_proxy``,
            ``spectral_flatness`` are read).
        spectro: the front-end config; its band and ``(F, T)`` shape set the experts' bands and the tiling.
        budget: ``"accuracy"`` or ``"latency"`` (a smaller ``k_max``).
        num_experts, k_max, patch_size, patch_stride: overrides; ``num_experts`` keeps the experts of highest
            prior and is capped at the number of enabled families.

    Raises:
        ConfigError: naming a bad override (``budget``, ``num_experts``, ``k_max``, ``patch_size``, ``patch_stride``).
    """
    if budget not in BUDGETS:
        raise ConfigError(f"budget={budget!r}: use one of {list(BUDGETS)}")
    size, stride = _tiling(spectro, patch_size, patch_stride)
    disabled, weights, rules = _apply_rules(profile, spectro)
    bands = _family_bands(spectro.fmin, spectro.fmax)
    experts = [ExpertSpec(name=family, family=family, band_hz=bands[family], kernel=_fit_kernel(KERNELS[family], size),
                          channels=EXPERT_CHANNELS, prior=weights[family])
               for family in EXPERT_FAMILIES if family not in disabled]
    experts = _limit_experts(experts, num_experts, disabled, rules)
    total = sum(e.prior for e in experts)
    for expert in experts:
        expert.prior = expert.prior / total
    return Policy(experts=experts, disabled=disabled, k_max=_k_max(budget, len(experts), k_max), k_min=1,
                  patch_size=size, patch_stride=stride, budget=budget, rules=rules)  # type: ignore[arg-type]


def _apply_rules(profile: DatasetProfile, spectro: SpectroConfig) -> tuple[dict[str, str], dict[str, float], list[str]]:
    """The masked families with reasons, the unnormalised priors, and the prior adjustments applied."""
    disabled: dict[str, str] = {}
    top = min(float(profile.fmax_eff), spectro.fmax)
    if top < HIGH_BAND_HZ:
        for family in HIGH_BAND_FAMILIES:
            disabled[family] = (f"no high band: min(fmax_eff {profile.fmax_eff:g} Hz, front-end fmax {spectro.fmax:g} "
                                f"Hz) < {HIGH_BAND_HZ:g} Hz")
    if profile.quality_score < LOW_QUALITY_Q:
        for family in FINE_FAMILIES:
            disabled[family] = (f"low quality: Q {profile.quality_score:.2f} < {LOW_QUALITY_Q:g}, fine frequency "
                                f"detail is unreliable")
    weights = {family: 1.0 for family in EXPERT_FAMILIES}
    rules: list[str] = []
    boosts = (
        (profile.transient_rate >= TRANSIENT_RATE, ("TransientExpert",), TRANSIENT_BOOST,
         f"transients dominate (transient_rate {profile.transient_rate:.2f} >= {TRANSIENT_RATE:g})"),
        (profile.snr_db_proxy < NOISY_SNR_DB, ("NoiseRobust_Broadband", "NoiseRobust_LowFreq", "NoiseRobust_HighFreq"),
         SECONDARY_BOOST, f"noisy data (SNR proxy {profile.snr_db_proxy:.1f} dB < {NOISY_SNR_DB:g} dB)"),
        (profile.spectral_flatness < TONAL_FLATNESS, ("HarmonicExpert", "FineFreqExpert"), SECONDARY_BOOST,
         f"tonal data (spectral flatness {profile.spectral_flatness:.3f} < {TONAL_FLATNESS:g})"),
    )
    for applies, families, factor, why in boosts:
        if applies:
            for family in families:
                weights[family] *= factor
            rules.append(f"{why}: prior x{factor:g} for {', '.join(families)}")
    return disabled, weights, rules


def _family_bands(fmin: float, fmax: float) -> dict[str, tuple[float, float]]:
    """Each family's band in Hz: all of ``[fmin, fmax]``, or its lower, middle or upper third."""
    third = (fmax - fmin) / 3
    low, mid, high = (fmin, fmin + third), (fmin + third, fmin + 2 * third), (fmin + 2 * third, fmax)
    full = (fmin, fmax)
    return {"NoiseRobust_Broadband": full, "NoiseRobust_LowFreq": low, "NoiseRobust_HighFreq": high,
            "TransientExpert": full, "HarmonicExpert": full, "FineFreqExpert": full,
            "MidbandGeneral": mid, "HighbandGeneral": high}


def _fit_kernel(kernel: tuple[int, int], patch: tuple[int, int]) -> tuple[int, int]:
    """``kernel`` shrunk to fit in ``patch``, kept odd so 'same' padding is symmetric."""
    return tuple(max(1, k if k <= p else p - (1 - p % 2)) for k, p in zip(kernel, patch))  # type: ignore[return-value]


def _limit_experts(experts: list[ExpertSpec], num_experts: int | None, disabled: dict[str, str],
                   rules: list[str]) -> list[ExpertSpec]:
    """At most ``num_experts`` experts, those of highest prior (ties in family order); the others disabled."""
    if num_experts is None:
        return experts
    if isinstance(num_experts, bool) or not isinstance(num_experts, numbers.Integral) or num_experts < 1:
        raise ConfigError(f"num_experts={num_experts!r} should be a positive integer")
    if num_experts >= len(experts):
        if num_experts > len(experts):
            logger.warning("num_experts=%d capped at the %d enabled expert families", num_experts, len(experts))
            rules.append(f"num_experts={num_experts} capped at the {len(experts)} enabled families")
        return experts
    kept = sorted(sorted(experts, key=lambda e: -e.prior)[:num_experts], key=lambda e: EXPERT_FAMILIES.index(e.family))
    for expert in experts:
        if expert not in kept:
            disabled[expert.family] = f"num_experts={num_experts} keeps the {num_experts} experts of highest prior"
    return kept


def _k_max(budget: str, num_experts: int, k_max: int | None) -> int:
    """``k_max``: the override (checked), else ``min(3, N)`` for accuracy and one less (>= 1) for latency."""
    if k_max is None:
        accuracy = min(ACCURACY_K_MAX, num_experts)
        return accuracy if budget == "accuracy" else max(1, accuracy - 1)
    if isinstance(k_max, bool) or not isinstance(k_max, numbers.Integral) or not 1 <= k_max <= num_experts:
        raise ConfigError(f"k_max={k_max!r} should be an integer from 1 to the number of experts ({num_experts}): "
                          f"lower it or enable more experts")
    return int(k_max)


def _tiling(spectro: SpectroConfig, patch_size: tuple[int, int] | None,
            patch_stride: tuple[int, int] | None) -> tuple[tuple[int, int], tuple[int, int]]:
    """Patch size and stride (rows, frames): overrides checked against the ``(F, T)`` grid, else F/4 x 0.25 s."""
    rows, frames = frontend_shape(spectro)
    if patch_size is None:
        seconds_frames = round(PATCH_SECONDS * spectro.sample_rate / spectro.hop_length)
        size = (max(1, rows // 4), max(1, min(frames, seconds_frames)))
    else:
        size = _pair(patch_size, "patch_size")
        if size[0] > rows or size[1] > frames:
            raise ConfigError(f"patch_size={size} is larger than the front-end's {rows} rows x {frames} frames: "
                              f"use at most ({rows}, {frames})")
    stride = size if patch_stride is None else _pair(patch_stride, "patch_stride")
    if stride[0] > size[0] or stride[1] > size[1]:
        raise ConfigError(f"patch_stride={stride} exceeds patch_size={size}, leaving rows or frames no patch covers: "
                          f"use a stride at most the patch size")
    return size, stride


def save_policy(policy: Policy, path: str | os.PathLike[str]) -> Path:
    """Write ``policy`` as JSON, atomically; a folder gets ``policy.json`` inside it. Returns the file."""
    return save_config_json(policy, path, POLICY_NAME)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read a ``policy.json`` (or the one inside a folder), checking keys, types and consistency.

    Raises:
        ConfigError: naming the file and the unknown key, wrong type or inconsistent value.
    """
    return load_config_json(Policy, path, POLICY_NAME)


def policy_summary(policy: Policy) -> str:
    """A plain-text table of the policy: experts with bands, kernels, widths and priors, then masks and rules."""
    lines = [f"Policy (budget={policy.budget}): N={policy.num_experts} experts, K in [{policy.k_min}, {policy.k_max}], "
             f"patches {policy.patch_size[0]}x{policy.patch_size[1]} (rows x frames), stride "
             f"{policy.patch_stride[0]}x{policy.patch_stride[1]}",
             f"{'#':>2}  {'expert':<22} {'band (Hz)':>15}  {'kernel':>6}  {'channels':>8}  {'prior':>6}"]
    for i, e in enumerate(policy.experts):
        band = f"{e.band_hz[0]:.0f}-{e.band_hz[1]:.0f}"
        lines.append(f"{i:>2}  {e.name:<22} {band:>15}  {e.kernel[0]:>2}x{e.kernel[1]:<3}  {e.channels:>8}  "
                     f"{e.prior:>6.3f}")
    if policy.disabled:
        lines.append("disabled:")
        lines += [f"  {family}: {why}" for family, why in policy.disabled.items()]
    if policy.rules:
        lines.append("rules:")
        lines += [f"  {rule}" for rule in policy.rules]
    return "\n".join(lines)
