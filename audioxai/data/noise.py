"""Synthetic background noises: coloured, babble, music, traffic and wind.

Every generator has the call shape ``kind_noise(num_samples, sample_rate=16000, seed=0)`` and returns a
1-D float32 tensor of ``num_samples`` samples normalised to unit RMS, ``sqrt(mean(x**2)) == 1``, so a
mixer sets the level (see ``audioxai.data.mixing.mix_at_snr``). ``seed`` is an int or a
``torch.Generator``; the same int always gives the same samples, and a generator is advanced. All the
randomness is drawn from that one generator, on the CPU, in float64 before the final cast.

Spectral shaping is done in the FFT domain: ``x = irfft(G(f) * rfft(w))`` with ``w`` white Gaussian
noise and ``G`` a real gain per frequency bin; the DC bin is always set to zero, so the noises have
zero mean.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from audioxai.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "NOISE_TYPES",
    "white_noise",
    "pink_noise",
    "brown_noise",
    "babble_noise",
    "music_noise",
    "traffic_noise",
    "wind_noise",
    "make_noise",
]

Seed = int | torch.Generator

#: The noise kinds ``make_noise`` knows, in the order chapters list them.
NOISE_TYPES: tuple[str, ...] = ("white", "pink", "brown", "babble", "music", "traffic", "wind")

_BABBLE_VOICES = ("en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
_BABBLE_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
_BABBLE_WORDS = (
    "the time people year way day man thing woman life child world school state family student group "
    "country problem hand part place case week company system program question work government number "
    "night point home water room mother area money story fact month lot right study book eye job word "
    "business issue side kind head house service friend father power hour game line end member law car "
    "city community name president team minute idea kid body information back parent face others level "
    "office door health person art war history party result change morning reason research girl guy "
    "moment air teacher force education is was have said make go know take see come think look want "
    "give use find tell ask seem feel try leave call good new first last long great little own other "
    "old big high different small large next early young important few public bad same able and but "
    "or because if when that with from about into over after before very really just also now then"
).split()


def _generator(seed: Seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(int(seed))


def _check_size(num_samples: int, sample_rate: int) -> None:
    if int(num_samples) != num_samples or num_samples < 2:
        raise ConfigError(f"num_samples={num_samples!r} is too small: noise needs an integer of at least 2 samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ConfigError(f"sample_rate={sample_rate!r} is not a positive integer: pass e.g. 16000")


def _uniform(g: torch.Generator, low: float, high: float, size: int | None = None) -> torch.Tensor | float:
    """Uniform draws in [low, high): a float when ``size`` is None, else a float64 tensor."""
    u = torch.rand(1 if size is None else size, generator=g, dtype=torch.float64) * (high - low) + low
    return float(u) if size is None else u


def _randint(g: torch.Generator, high: int) -> int:
    return int(torch.randint(high, (1,), generator=g))


def _unit_rms(x: torch.Tensor) -> torch.Tensor:
    """``x / sqrt(mean(x**2))`` computed in float64, cast to float32."""
    x = x.to(torch.float64)
    return (x / x.square().mean().sqrt()).to(torch.float32)


def _shaped_noise(
    num_samples: int, sample_rate: int, gain: Callable[[torch.Tensor], torch.Tensor], g: torch.Generator
) -> torch.Tensor:
    """White Gaussian noise shaped as ``irfft(G(f) rfft(w))``, DC removed; float64, not normalised."""
    white = torch.randn(num_samples, generator=g, dtype=torch.float64)
    freqs = torch.fft.rfftfreq(num_samples, d=1.0 / sample_rate, dtype=torch.float64)
    weights = torch.zeros_like(freqs)
    weights[1:] = gain(freqs[1:])
    return torch.fft.irfft(torch.fft.rfft(white) * weights, n=num_samples)


def _lowpass_gain(cutoff_hz: float, order: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Butterworth magnitude response ``|H(f)| = 1 / sqrt(1 + (f / f_c)^(2 order))``."""
    return lambda f: 1.0 / torch.sqrt(1.0 + (f / cutoff_hz) ** (2 * order))


def _power_law_noise(num_samples: int, sample_rate: int, seed: Seed, exponent: float) -> torch.Tensor:
    _check_size(num_samples, sample_rate)
    x = _shaped_noise(num_samples, sample_rate, lambda f: f ** (-exponent / 2.0), _generator(seed))
    return _unit_rms(x)


def white_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """White Gaussian noise: i.i.d. N(0, 1) samples (flat power spectrum), scaled to unit RMS.

    ``sample_rate`` does not change the samples; it is accepted so every generator has one signature.
    """
    _check_size(num_samples, sample_rate)
    return _unit_rms(torch.randn(num_samples, generator=_generator(seed), dtype=torch.float64))


def pink_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """Pink noise, power spectral density ``P(f) ∝ 1/f``, scaled to unit RMS.

    Made by shaping white Gaussian noise in the FFT domain with amplitude gain ``f^(-1/2)`` for
    ``f > 0`` and 0 at DC, so the log-power slope against log-frequency is -1 (-3 dB per octave).
    """
    return _power_law_noise(num_samples, sample_rate, seed, exponent=1.0)


def brown_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """Brown (red, Brownian) noise, power spectral density ``P(f) ∝ 1/f^2``, scaled to unit RMS.

    Made by shaping white Gaussian noise in the FFT domain with amplitude gain ``f^(-1)`` for ``f > 0``
    and 0 at DC (log-power slope -2, -6 dB per octave). The result is periodic over the clip.
    """
    return _power_law_noise(num_samples, sample_rate, seed, exponent=2.0)


def _talker(num_samples: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """One synthetic talker: random sentences by one random voice, at least ``num_samples`` long."""
    from audioxai.data.speech import synthesize  # lazy: eSpeak NG is only needed for babble

    voice = _BABBLE_VOICES[_randint(g, len(_BABBLE_VOICES))]
    variant = _BABBLE_VARIANTS[_randint(g, len(_BABBLE_VARIANTS))]
    pitch = 25 + _randint(g, 51)
    rate = 140 + _randint(g, 81)
    logger.debug("babble talker %s+%s pitch=%d rate=%d", voice, variant, pitch, rate)
    pieces: list[torch.Tensor] = []
    total = 0
    while total < num_samples:
        words = [_BABBLE_WORDS[_randint(g, len(_BABBLE_WORDS))] for _ in range(5 + _randint(g, 8))]
        utt = synthesize(" ".join(words), voice=voice, variant=variant, rate=rate, pitch=pitch,
                         sample_rate=sample_rate)
        pieces.append(utt.waveform.to(torch.float64))
        total += utt.waveform.numel()
    speech = torch.cat(pieces)
    offset = _randint(g, speech.numel())
    return torch.roll(speech, -offset)[:num_samples]


def babble_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0, num_talkers: int = 6) -> torch.Tensor:
    """Babble: ``num_talkers`` synthetic talkers speaking at once, summed and scaled to unit RMS.

    Each talker gets, from the seed, an eSpeak NG voice (en-us, en-gb-x-rp, en-gb-scotland, en-029,
    en-us-nyc), a variant (m1-m4, f1-f4), a pitch in 25..75 and a rate in 140..220 words per minute.
    It says random sentences of 5 to 12 words drawn from a list of common English words
    (``audioxai.data.speech.synthesize``), concatenated until the clip is covered; the concatenation
    is circularly shifted by a random offset, cropped to ``num_samples``, scaled to unit RMS and given
    a random gain of -6 to 0 dB. Talkers are then summed.
    """
    _check_size(num_samples, sample_rate)
    if int(num_talkers) != num_talkers or num_talkers < 1:
        raise ConfigError(f"num_talkers={num_talkers!r} is not a positive integer: pass e.g. 6")
    g = _generator(seed)
    total = torch.zeros(num_samples, dtype=torch.float64)
    for _ in range(int(num_talkers)):
        speech = _talker(num_samples, sample_rate, g)
        gain = 10.0 ** (_uniform(g, -6.0, 0.0) / 20.0)
        total += gain * speech / speech.square().mean().sqrt().clamp_min(1e-12)
    return _unit_rms(total)


def _midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _note(freq: float, length: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """A harmonic tone with an ADSR envelope: ``env(t) sum_k 0.6^(k-1) sin(2 pi k f t + phi_k)``."""
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    tone = torch.zeros(length, dtype=torch.float64)
    for k in range(1, 9):
        if k * freq >= 0.45 * sample_rate:
            break
        tone += 0.6 ** (k - 1) * torch.sin(2 * math.pi * k * freq * t + _uniform(g, 0.0, 2 * math.pi))
    # ADSR: 10 ms attack to 1, 100 ms decay to 0.6, sustain, 80 ms release to 0 (shortened to fit).
    attack, decay, release = (min(int(s * sample_rate), length // 3) for s in (0.01, 0.1, 0.08))
    env = torch.full((length,), 0.6, dtype=torch.float64)
    env[:attack] = torch.linspace(0.0, 1.0, attack, dtype=torch.float64)
    env[attack:attack + decay] = torch.linspace(1.0, 0.6, decay, dtype=torch.float64)
    if release:
        env[length - release:] = torch.linspace(0.6, 0.0, release, dtype=torch.float64)
    return tone * env


def music_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """Synthetic music: a melody over a chord accompaniment, scaled to unit RMS.

    A root note (MIDI 45-56) and a major or minor scale are drawn from the seed, and a beat of
    0.3-0.6 s. The melody plays one or two beats per note, on scale degrees over two octaves above the
    root; the accompaniment plays a triad (degrees d, d+2, d+4) on a random degree every four beats,
    at half the melody's amplitude. Every note is a harmonic tone ``sum_k 0.6^(k-1) sin(2 pi k f t +
    phi_k)`` (up to 8 harmonics below 0.45 fs, random phases) with an ADSR envelope (10 ms attack,
    100 ms decay to 0.6, sustain, 80 ms release).
    """
    _check_size(num_samples, sample_rate)
    g = _generator(seed)
    scale = (0, 2, 4, 5, 7, 9, 11) if _randint(g, 2) else (0, 2, 3, 5, 7, 8, 10)
    root = 45 + _randint(g, 12)
    beat = int(_uniform(g, 0.3, 0.6) * sample_rate)

    def pitch(degree: int) -> float:
        return _midi_to_hz(root + 12 * (degree // 7) + scale[degree % 7])

    out = torch.zeros(num_samples, dtype=torch.float64)

    def add(freq: float, start: int, length: int, amp: float) -> None:
        stop = min(start + length, num_samples)
        out[start:stop] += amp * _note(freq, length, sample_rate, g)[: stop - start]

    start = 0
    while start < num_samples:  # melody
        length = beat * (1 + _randint(g, 2))
        add(pitch(7 + _randint(g, 14)), start, length, 1.0)
        start += length
    for start in range(0, num_samples, 4 * beat):  # chords
        degree = _randint(g, 7)
        for step in (0, 2, 4):
            add(pitch(degree + step), start, 4 * beat, 0.5)
    return _unit_rms(out)


def traffic_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """Road traffic: low-pass rumble plus engine hum, swelling as vehicles pass; unit RMS.

    Rumble: white noise shaped by a 2nd-order Butterworth magnitude ``1/sqrt(1 + (f/f_c)^4)`` with
    ``f_c`` drawn in 120-250 Hz. Hum: ``sum_{k=1..6} (1/k) sin(k phi(t) + theta_k)`` with a fundamental
    of 25-50 Hz that drifts by ±3 % (``phi`` integrates ``f0 (1 + 0.03 sin(2 pi f_m t))``), at half the
    rumble's RMS. Both are multiplied by the passing-vehicle envelope ``0.15 + sum_i a_i exp(-(t -
    c_i)^2 / (2 s_i^2))`` with ``1 + Poisson(0.4 / s * duration)`` vehicles, centres uniform over the
    clip ±1 s, widths ``s_i`` in 0.4-1.5 s and peaks ``a_i`` in 0.5-1. More than 90 % of the energy
    lies below 500 Hz.
    """
    _check_size(num_samples, sample_rate)
    g = _generator(seed)
    duration = num_samples / sample_rate
    t = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    rumble = _shaped_noise(num_samples, sample_rate, _lowpass_gain(_uniform(g, 120.0, 250.0), 2), g)
    rumble = rumble / rumble.square().mean().sqrt()

    f0, f_mod = _uniform(g, 25.0, 50.0), _uniform(g, 0.05, 0.2)
    inst_freq = f0 * (1.0 + 0.03 * torch.sin(2 * math.pi * f_mod * t + _uniform(g, 0.0, 2 * math.pi)))
    phase = 2 * math.pi * torch.cumsum(inst_freq, 0) / sample_rate
    hum = sum(torch.sin(k * phase + _uniform(g, 0.0, 2 * math.pi)) / k
              for k in range(1, 7) if 1.03 * k * f0 < 0.45 * sample_rate)
    hum = 0.5 * hum / hum.square().mean().sqrt()

    num_vehicles = 1 + int(torch.poisson(torch.tensor([0.4 * duration], dtype=torch.float64), generator=g))
    centres = _uniform(g, -1.0, duration + 1.0, num_vehicles)
    widths = _uniform(g, 0.4, 1.5, num_vehicles)
    peaks = _uniform(g, 0.5, 1.0, num_vehicles)
    swells = peaks[:, None] * torch.exp(-((t[None, :] - centres[:, None]) ** 2) / (2 * widths[:, None] ** 2))
    envelope = 0.15 + swells.sum(0)
    return _unit_rms(envelope * (rumble + hum))


def wind_noise(num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """Wind on a microphone: low-frequency noise with slow random gusts; unit RMS.

    Noise: white noise shaped by a 2nd-order Butterworth magnitude ``1/sqrt(1 + (f/f_c)^4)`` with
    ``f_c`` drawn in 200-500 Hz. Gusts: the noise is multiplied by ``exp(0.8 z(t))`` where ``z`` is
    i.i.d. N(0, 1) at control points every 0.5 s, linearly interpolated between them. More than 90 %
    of the energy lies below 1 kHz.
    """
    _check_size(num_samples, sample_rate)
    g = _generator(seed)
    noise = _shaped_noise(num_samples, sample_rate, _lowpass_gain(_uniform(g, 200.0, 500.0), 2), g)
    num_points = max(2, math.ceil(num_samples / sample_rate / 0.5) + 1)
    z = torch.randn(num_points, generator=g, dtype=torch.float64)
    z = torch.nn.functional.interpolate(z[None, None], size=num_samples, mode="linear", align_corners=True)[0, 0]
    return _unit_rms(torch.exp(0.8 * z) * noise)


_GENERATORS: dict[str, Callable[..., torch.Tensor]] = {
    "white": white_noise,
    "pink": pink_noise,
    "brown": brown_noise,
    "babble": babble_noise,
    "music": music_noise,
    "traffic": traffic_noise,
    "wind": wind_noise,
}


def make_noise(kind: str, num_samples: int, sample_rate: int = 16000, seed: Seed = 0) -> torch.Tensor:
    """Noise of the named ``kind`` (one of ``NOISE_TYPES``): 1-D float32, unit RMS, deterministic in ``seed``.

    Raises:
        ConfigError: ``kind`` is not one of ``NOISE_TYPES``.
    """
    if kind not in _GENERATORS:
        raise ConfigError(f"unknown noise kind {kind!r}: choose one of {', '.join(NOISE_TYPES)}")
    return _GENERATORS[kind](num_samples, sample_rate=sample_rate, seed=seed)
