"""SynthDigits: a spoken-digit corpus synthesised with eSpeak NG, written in the AudioMNIST layout.

Each speaker is a distinct eSpeak NG voice (an English accent such as ``en-us`` or ``en-gb-scotland``)
combined with a distinct voice variant (``m3``, ``f2``, ``grandma``...), and given its own base pitch
and speaking rate. Each repetition of a digit perturbs rate, pitch, pitch range, gain and the
leading silence, so repetitions differ the way a speaker's takes do. The files follow AudioMNIST
exactly (``data/NN/{digit}_{NN}_{rep}.wav`` and ``data/audioMNIST_meta.txt``, a JSON object keyed by
speaker), so the same reader serves the real corpus. One extra file, ``data/synth_alignments.json``,
holds the exact word and phoneme timings of every recording: the ground truth the real corpus lacks.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from audioxai.data.audio import save_audio
from audioxai.config import load_config
from audioxai.data.cache import cached_corpus
from audioxai.data.speech import ENGLISH_VOICES, list_variants, synthesize
from audioxai.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["SynthDigitsConfig", "SpeakerVoice", "DIGIT_WORDS", "speaker_roster", "generate_synth_digits", "synth_digits"]

DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Voice variants with a natural-sounding, declared-gender voice (robotic and effect voices left out).
SPEAKER_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak", "whisper",
    "whisperf", "grandma", "Alicia", "Andrea", "Annie", "Denis", "Diogo", "Hugo", "Marco", "aunty",
    "belinda", "linda", "michel", "miguel", "steph", "steph2", "travis", "victor", "antonio", "sandro",
)

ACCENTS: dict[str, str] = {
    "en-us": "American English",
    "en-gb-x-rp": "British English (Received Pronunciation)",
    "en-gb-scotland": "Scottish English",
    "en-029": "Caribbean English",
    "en-gb-x-gbclan": "Lancastrian English",
    "en-gb-x-gbcwmd": "West Midlands English",
    "en-us-nyc": "New York English",
    "en": "British English",
}


@dataclass(frozen=True)
class SynthDigitsConfig:
    """What SynthDigits generates; its hash keys the cache.

    Attributes:
        num_speakers: number of speakers (at most ``len(ENGLISH_VOICES) * len(SPEAKER_VARIANTS)``).
        repetitions: takes of each digit per speaker (AudioMNIST has 50).
        sample_rate: rate of the written files in Hz.
        seed: draws the roster and every per-take perturbation.
        rate_jitter: relative change of the speaking rate per take, uniform in +-rate_jitter.
        pitch_jitter: change of the base pitch per take, uniform integer in +-pitch_jitter.
        max_leading_silence: seconds of silence before the word, uniform in [0.02, this].
        trailing_silence: seconds of silence after the word.
    """

    num_speakers: int = 60
    repetitions: int = 20
    sample_rate: int = 16000
    seed: int = 0
    rate_jitter: float = 0.1
    pitch_jitter: int = 6
    max_leading_silence: float = 0.15
    trailing_silence: float = 0.05


@dataclass(frozen=True)
class SpeakerVoice:
    """One synthetic speaker: an accent voice, a variant, a base pitch and rate, and the variant's traits."""

    speaker: str
    voice: str
    variant: str
    pitch: int
    rate: int
    gender: str
    age: int | None


def _variant_traits(variant: str) -> tuple[str, int | None]:
    """Gender and age declared in the eSpeak NG variant file (``gender male 70``)."""
    import espeakng_loader

    path = Path(espeakng_loader.get_data_path()) / "voices" / "!v" / variant
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if parts and parts[0] == "gender":
            age = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
            return parts[1].lower(), age
    return "unknown", None


def speaker_roster(num_speakers: int, seed: int = 0) -> list[SpeakerVoice]:
    """Draw ``num_speakers`` speakers, each a distinct (accent voice, variant) pair with its own pitch and rate."""
    rng = random.Random(seed)
    variants = [v for v in SPEAKER_VARIANTS if v in list_variants()]
    rng.shuffle(variants)
    accents = {v: rng.sample(ENGLISH_VOICES, len(ENGLISH_VOICES)) for v in variants}
    # Every variant once before any variant repeats with another accent.
    pairs = [(accents[v][k], v) for k in range(len(ENGLISH_VOICES)) for v in variants]
    if not 1 <= num_speakers <= min(len(pairs), 99):
        raise ConfigError(f"num_speakers={num_speakers}: choose 1 to {min(len(pairs), 99)}")
    roster = []
    for i, (voice, variant) in enumerate(pairs[:num_speakers]):
        gender, age = _variant_traits(variant)
        roster.append(SpeakerVoice(f"{i + 1:02d}", voice, variant, rng.randint(35, 65), rng.randint(140, 200), gender, age))
    return roster


def _take(spk: SpeakerVoice, digit: int, rep: int, cfg: SynthDigitsConfig):
    """Synthesise one take; returns waveform and the word and phoneme alignments shifted by the silence."""
    rng = random.Random(f"{cfg.seed}-{spk.speaker}-{digit}-{rep}")
    rate = int(round(spk.rate * (1 + rng.uniform(-cfg.rate_jitter, cfg.rate_jitter))))
    pitch = min(100, max(0, spk.pitch + rng.randint(-cfg.pitch_jitter, cfg.pitch_jitter)))
    utt = synthesize(DIGIT_WORDS[digit], voice=spk.voice, variant=spk.variant, rate=min(450, max(80, rate)),
                     pitch=pitch, pitch_range=rng.randint(30, 70), sample_rate=cfg.sample_rate)
    start, end = utt.speech_span()
    speech = utt.waveform[int(start * cfg.sample_rate): int(end * cfg.sample_rate) + 1]
    peak = float(speech.abs().max()) or 1.0
    speech = speech * (rng.uniform(0.3, 0.9) / peak)
    lead = rng.uniform(0.02, max(0.02, cfg.max_leading_silence))
    n_lead, n_trail = int(lead * cfg.sample_rate), int(cfg.trailing_silence * cfg.sample_rate)
    wave = torch.cat([torch.zeros(n_lead), speech, torch.zeros(n_trail)])
    shift = n_lead / cfg.sample_rate - start
    phonemes = [[p.label, round(p.start + shift, 4), round(p.end + shift, 4)] for p in utt.phonemes]
    word = [round(n_lead / cfg.sample_rate, 4), round(n_lead / cfg.sample_rate + speech.numel() / cfg.sample_rate, 4)]
    return wave, {"word": DIGIT_WORDS[digit], "span": word, "phonemes": phonemes, "rate": rate, "pitch": pitch}


def generate_synth_digits(root: Path, config: SynthDigitsConfig = SynthDigitsConfig(), progress: bool = True) -> Path:
    """Write SynthDigits under ``root`` (``root/data/...``) and return ``root``."""
    data = Path(root) / "data"
    roster = speaker_roster(config.num_speakers, config.seed)
    meta, alignments = {}, {}
    jobs = [(s, d, r) for s in roster for d in range(10) for r in range(config.repetitions)]
    for spk, digit, rep in tqdm(jobs, desc="SynthDigits", disable=not progress, leave=False):
        wave, align = _take(spk, digit, rep, config)
        rel = f"{spk.speaker}/{digit}_{spk.speaker}_{rep}.wav"
        save_audio(data / rel, wave, config.sample_rate)
        alignments[rel] = align
    for spk in roster:
        meta[spk.speaker] = {
            "accent": ACCENTS.get(spk.voice, spk.voice), "age": spk.age, "gender": spk.gender,
            "native speaker": "synthetic", "origin": f"eSpeak NG voice {spk.voice}+{spk.variant}",
            "recordingdate": None, "recordingroom": "synthetic", **asdict(spk),
        }
    (data / "audioMNIST_meta.txt").write_text(json.dumps(meta, indent=1, sort_keys=True))
    (data / "synth_alignments.json").write_text(json.dumps(alignments))
    return Path(root)


def synth_digits(config: SynthDigitsConfig | None = None, progress: bool = True, **overrides) -> Path:
    """The cached SynthDigits root for ``config`` (built on first use; see ``audioxai.data.cache``)."""
    cfg = load_config(SynthDigitsConfig, asdict(config or SynthDigitsConfig()), **overrides)
    return cached_corpus("synthdigits", cfg, lambda root: generate_synth_digits(root, cfg, progress))
