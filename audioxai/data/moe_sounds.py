"""Sound classes of known spectral and temporal make-up, for the MoE corpus (``audioxai.data.moe_corpus``).

Each class is a synthetic process with the call shape ``(rng, seconds, sample_rate, edge_hz)`` that
draws everything from ``rng`` (a ``numpy.random.Generator``) and returns float64 samples:

- ``sonar_ping`` (band-limited): active-sonar returns, 1-3 linear FM chirps of 40-250 ms (Tukey
  window, 20 % taper) sweeping between a random 200 Hz..edge/2 start and the band edge, up or down,
  each followed by 1-3 echoes delayed 20-300 ms and attenuated 6-20 dB.
- ``sonar_hum`` (band-limited): passive-sonar tonal lines, the harmonics ``k f0`` (f0 30-100 Hz,
  drifting +-0.5 %) up to the band edge with random amplitudes 0.3-1 and phases, over a white flow
  noise 15 dB below the lines, faded in and out (Tukey window, 10 % taper).
- ``clicks`` (transient-heavy, broadband): Poisson clicks at 5-30 per second, each white noise under
  an exponential decay of 0.1-0.5 ms, amplitudes spread over 12 dB.
- ``engine`` (harmonic, broadband): a periodic stack of all harmonics of f0 25-80 Hz below the band
  edge (flat +-3 dB, random phases) under a slow 0.5-2 Hz swell, plus white combustion noise 10 dB below.
- ``rain`` (noise-like, broadband): white hiss plus dense droplets (200-800 per second, 0.2 ms
  exponential decays, amplitudes over 20 dB) 6 dB below the hiss.
- ``digit_<word>`` (speech): a spoken digit, eSpeak NG (``audioxai.data.speech.synthesize``) with a
  random English accent voice, variant m1-m4/f1-f4, pitch 35-65 and rate 140-200 words per minute,
  trimmed to the word.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal.windows import tukey

from audioxai.data.speech import ENGLISH_VOICES, synthesize
from audioxai.data.synthdigits import DIGIT_WORDS
from audioxai.errors import ConfigError

__all__ = ["SOUND_CLASSES", "BAND_LIMITED_CLASSES", "synthesize_event", "brickwall", "rms"]

Synth = Callable[[np.random.Generator, float, int, float], np.ndarray]
_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")


def _add(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """``out[start:start + len(x)] += x``, truncated at the end of ``out``."""
    stop = min(out.size, start + x.size)
    if start < stop:
        out[start:stop] += x[: stop - start]


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (1.0 for a silent ``x``, so dividing by it is safe)."""
    return float(np.sqrt(np.mean(np.square(x)))) or 1.0


def brickwall(x: np.ndarray, fs: int, edge: float) -> np.ndarray:
    """``x`` with every FFT bin above ``edge`` Hz (and DC) set to zero."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1.0 / fs) > edge] = 0.0
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=x.size)


def _sonar_ping(rng: np.random.Generator, seconds: float, fs: int, edge: float) -> np.ndarray:
    """1-3 FM chirps between 200 Hz..edge/2 and the edge, each with 1-3 attenuated echoes."""
    out = np.zeros(max(16, int(seconds * fs)))
    for _ in range(int(rng.integers(1, 4))):
        length = max(8, int(min(rng.uniform(0.04, 0.25), seconds / 2) * fs))
        t, dur = np.arange(length) / fs, length / fs
        f_low = rng.uniform(200.0, 0.5 * edge)
        f0, f1 = (f_low, edge) if rng.random() < 0.5 else (edge, f_low)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * dur)) + rng.uniform(0, 2 * np.pi)
        chirp = np.sin(phase) * tukey(length, 0.2)
        start = int(rng.integers(0, max(1, out.size - length)))
        _add(out, chirp, start)
        for _ in range(int(rng.integers(1, 4))):
            _add(out, chirp * 10 ** (-rng.uniform(6, 20) / 20), start + int(rng.uniform(0.02, 0.3) * fs))
    return out


def _sonar_hum(rng: np.random.Generator, seconds: float, fs: int, edge: float) -> np.ndarray:
    """Harmonic lines of a drifting 30-100 Hz fundamental up to the edge, over flow noise 15 dB below."""
    n = max(16, int(seconds * fs))
    t = np.arange(n) / fs
    f0 = rng.uniform(30.0, 100.0)
    drift = 1 + 0.005 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * drift) / fs
    lines = np.zeros(n)
    for k in range(1, int(edge / (1.005 * f0)) + 1):
        lines += rng.uniform(0.3, 1.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    flow = brickwall(rng.standard_normal(n), fs, edge)
    flow *= rms(lines) * 10 ** (-15 / 20) / rms(flow)
    return (lines + flow) * tukey(n, 0.1)


def _clicks(rng: np.random.Generator, seconds: float, fs: int, edge: float) -> np.ndarray:
    """Poisson clicks (5-30 per second), each white noise under a 0.1-0.5 ms exponential decay."""
    out = np.zeros(max(16, int(seconds * fs)))
    for _ in range(max(1, int(rng.poisson(rng.uniform(5.0, 30.0) * seconds)))):
        tau = rng.uniform(1e-4, 5e-4) * fs
        decay = np.exp(-np.arange(max(2, int(8 * tau))) / tau)
        _add(out, rng.standard_normal(decay.size) * decay * 10 ** (-rng.uniform(0, 12) / 20),
             int(rng.integers(0, out.size)))
    return out


def _engine(rng: np.random.Generator, seconds: float, fs: int, edge: float) -> np.ndarray:
    """A periodic harmonic stack of a 25-80 Hz fundamental up to the edge, swelling, plus combustion noise."""
    n = max(16, int(seconds * fs))
    period = int(round(fs / rng.uniform(25.0, 80.0)))
    harmonics = np.arange(1, period // 2 + 1)
    amps = 10 ** (rng.uniform(-3, 3, harmonics.size) / 20) * (harmonics * fs / period < edge)
    spectrum = np.concatenate([[0.0], amps * np.exp(2j * np.pi * rng.random(harmonics.size))])
    hum = np.tile(np.fft.irfft(spectrum, n=period), n // period + 1)[:n]
    t = np.arange(n) / fs
    hum *= 0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))
    return hum + rng.standard_normal(n) * rms(hum) * 10 ** (-10 / 20)


def _rain(rng: np.random.Generator, seconds: float, fs: int, edge: float) -> np.ndarray:
    """White hiss plus dense droplets (200-800 per second, 0.2 ms decays) 6 dB below it."""
    n = max(16, int(seconds * fs))
    hiss = rng.standard_normal(n)
    drops = np.zeros(n)
    count = int(rng.poisson(rng.uniform(200.0, 800.0) * seconds))
    amplitudes = rng.choice([-1.0, 1.0], count) * 10 ** (-rng.uniform(0, 20, count) / 20)
    np.add.at(drops, rng.integers(0, n, count), amplitudes)
    tau = 2e-4 * fs
    drops = np.convolve(drops, np.exp(-np.arange(max(2, int(6 * tau))) / tau))[:n]
    return hiss + drops * 10 ** (-6 / 20) / rms(drops)


def _digit(word: str) -> Synth:
    def synth(rng: np.random.Generator, seconds: float, fs: int, edge: float) -> np.ndarray:
        """The digit word said by a random eSpeak NG voice, trimmed to the word."""
        utt = synthesize(word, voice=ENGLISH_VOICES[int(rng.integers(len(ENGLISH_VOICES)))],
                         variant=_VARIANTS[int(rng.integers(len(_VARIANTS)))], rate=int(rng.integers(140, 201)),
                         pitch=int(rng.integers(35, 66)), sample_rate=fs)
        start, end = utt.speech_span()
        return utt.waveform.numpy().astype(np.float64)[int(start * fs): int(end * fs) + 1]
    return synth


_SYNTHS: dict[str, Synth] = {"sonar_ping": _sonar_ping, "sonar_hum": _sonar_hum, "clicks": _clicks,
                             "engine": _engine, "rain": _rain, **{f"digit_{w}": _digit(w) for w in DIGIT_WORDS}}
#: Every sound class; ``BAND_LIMITED_CLASSES`` keep under a given band edge, the others fill the band.
SOUND_CLASSES: tuple[str, ...] = tuple(_SYNTHS)
BAND_LIMITED_CLASSES: tuple[str, ...] = ("sonar_ping", "sonar_hum")


def synthesize_event(label: str, rng: np.random.Generator, seconds: float, sample_rate: int,
                     edge_hz: float) -> np.ndarray:
    """One event of class ``label``, about ``seconds`` long (a spoken digit: as long as the word), float64.

    Args:
        label: one of ``SOUND_CLASSES``.
        rng: the source of every random draw (same state, same samples).
        seconds: event length in seconds.
        sample_rate: in Hz.
        edge_hz: the band edge the process aims at (chirps end there, harmonics stop below it); the caller
            applies the brick wall.

    Raises:
        ConfigError: an unknown ``label``.
    """
    if label not in _SYNTHS:
        raise ConfigError(f"unknown sound class {label!r}: choose one of {list(SOUND_CLASSES)}")
    return _SYNTHS[label](rng, seconds, sample_rate, edge_hz)
