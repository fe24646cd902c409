"""A partial-spoof corpus with known spoofed frames, in the manner of PartialSpoof (Zhang et al., 2021).

Every utterance is a sentence (``audioxai.data.sentences.draw_sentence``) said by one speaker of the
SynthDigits roster (a distinct eSpeak NG accent voice and variant, with its own pitch and rate). It is
one of three kinds:

- ``bonafide``: the eSpeak NG synthesis, unchanged (it plays the genuine speech);
- ``full``: the whole utterance replaced by a spoof of it;
- ``partial``: a contiguous run of 1 or 2 words (never all of them) replaced by the same words of the
  spoof, with raised-cosine crossfades of ``crossfade_ms`` centred on each splice point.

The spoof types (``SPOOF_TYPES``):

- ``griffin_lim``: the bona fide waveform's 80-band mel power spectrogram (no log; n_fft 1024, hop
  256, Hann window), mapped back to a linear power spectrogram with torchaudio's ``InverseMelScale``
  (least squares), then 32 iterations of Griffin-Lim phase reconstruction (momentum 0.99) from a
  random phase drawn under a fixed seed. Time-aligned with the bona fide waveform.
- ``mel_vocoder``: the STFT magnitude replaced by its 80-band mel envelope mapped back to linear
  frequency by the filterbank's pseudo-inverse (harmonics smeared within each band, negative values
  set to zero), recombined with the original phase and inverted (iSTFT). Time-aligned.
- ``klatt``: the same text re-synthesised by another synthesiser, eSpeak NG's Klatt formant
  synthesiser (a variant drawn from ``klatt``, ``klatt2``...``klatt6``), with the same accent voice,
  pitch and rate, scaled to the bona fide RMS. Not time-aligned: its words have their own timing.

``klatt`` is the type held out for generalisation: splits are speaker-disjoint (``speaker_splits``),
``train``, ``val`` and ``test`` hold bona fide, partial and full spoofs of the seen types, and
``test_unseen`` holds other utterances of the test voices, spoofed with the unseen types only.

Each clip is exactly ``clip_seconds`` long: the speech starts after a random 0 to 0.15 s, the rest is
silence, and a fixed-seed white-noise floor at ``noise_floor_db`` (dB full scale RMS) is added
everywhere. Ground truth is given at 20 ms frames (frame k covers [0.02 k, 0.02 (k + 1)) s):
``frame_labels`` (1 where more than half the frame's samples come from the spoof; all 1 for full
spoofs, all 0 for bona fide), ``speech_frames`` (the frame overlaps a word of the clip) and
``transition_frames`` (the frame lies within 20 ms of a splice point). ``metadata.json`` stores each
frame array as a string of ``0``/``1`` characters, one per frame.
"""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchaudio
import torchaudio.functional as AF
from tqdm.auto import tqdm

from audioxai.atomic import atomic_write_text
from audioxai.config import load_config
from audioxai.data.audio import load_audio, save_audio
from audioxai.data.audiomnist import speaker_splits
from audioxai.data.cache import cached_corpus
from audioxai.data.sentences import draw_sentence
from audioxai.data.speech import list_variants, synthesize
from audioxai.data.synthdigits import SpeakerVoice, speaker_roster
from audioxai.errors import ConfigError, DatasetError

__all__ = ["SPOOF_TYPES", "FRAME_SECONDS", "SPLITS", "SpoofCorpusConfig", "SpoofSet", "resynthesize",
           "spoof_corpus", "load_spoof_corpus"]

SPOOF_TYPES: tuple[str, ...] = ("griffin_lim", "mel_vocoder", "klatt")
FRAME_SECONDS = 0.02
SPLITS: tuple[str, ...] = ("train", "val", "test", "test_unseen")
_N_FFT, _HOP, _N_MELS, _GL_ITERS = 1024, 256, 80, 32
_MAX_OFFSET, _MARGIN, _LEAD, _TAIL = 0.15, 0.1, 0.02, 0.05  # seconds


@dataclass(frozen=True)
class SpoofCorpusConfig:
    """What the partial-spoof corpus holds; its hash keys the cache.

    Attributes:
        num_voices: speakers drawn from the SynthDigits roster, split 3:1:1 into train/val/test.
        utterances_per_voice: utterances per voice in each of its splits (test voices get as many
            again for ``test_unseen``).
        sample_rate: rate of the written files in Hz (a multiple of 50, so frames are whole samples).
        clip_seconds: length of every clip, a whole number of 20 ms frames (2.56 s = 128 frames).
        seen_spoof_types: spoof types of train, val and test.
        unseen_spoof_types: spoof types of test_unseen only.
        bonafide_fraction: share of bona fide utterances per voice.
        partial_fraction: share of partial spoofs per voice; the rest are fully spoofed.
        crossfade_ms: length of the raised-cosine crossfade at each splice point.
        noise_floor_db: RMS of the white-noise floor added to every clip, in dB full scale.
        seed: draws the roster, the splits, texts, kinds, spliced words, offsets and noise.
    """

    num_voices: int = 40
    utterances_per_voice: int = 30
    sample_rate: int = 16000
    clip_seconds: float = 2.56
    seen_spoof_types: tuple[str, ...] = ("griffin_lim", "mel_vocoder")
    unseen_spoof_types: tuple[str, ...] = ("klatt",)
    bonafide_fraction: float = 0.4
    partial_fraction: float = 0.4
    crossfade_ms: float = 5.0
    noise_floor_db: float = -60.0
    seed: int = 0


@dataclass
class SpoofSet:
    """One split of the corpus, row-aligned.

    Attributes:
        waveform: (N, T) float32 clips. labels: (N,) 0 bona fide, 1 spoof.
        frame_labels: (N, F) 0/1 spoofed frames; speech_frames, transition_frames: (N, F) bool.
        ids, kind (bonafide | partial | full), spoof_type (None for bona fide), voice, text: per row.
        splice_points: seconds of each row's splices; spoofed_intervals: [start, end] seconds;
        words: (word, start, end) seconds in the clip. sample_rate: of every clip.
    """

    waveform: torch.Tensor
    labels: torch.Tensor
    frame_labels: torch.Tensor
    speech_frames: torch.Tensor
    transition_frames: torch.Tensor
    ids: list[str]
    kind: list[str]
    spoof_type: list[str | None]
    voice: list[str]
    text: list[str]
    splice_points: list[list[float]]
    spoofed_intervals: list[list[list[float]]]
    words: list[list[tuple[str, float, float]]]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor | list[int]) -> SpoofSet:
        """The rows at ``indices``, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        pick = idx.tolist()
        rows = {name: [getattr(self, name)[i] for i in pick] for name in
                ("ids", "kind", "spoof_type", "voice", "text", "splice_points", "spoofed_intervals", "words")}
        return SpoofSet(self.waveform[idx], self.labels[idx], self.frame_labels[idx], self.speech_frames[idx],
                        self.transition_frames[idx], sample_rate=self.sample_rate, **rows)


@functools.lru_cache(maxsize=4)
def _mel_basis(sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """(freq, mel) filterbank, its (freq, mel) pseudo-inverse map, and the InverseMelScale transform."""
    fb = AF.melscale_fbanks(_N_FFT // 2 + 1, 0.0, sample_rate / 2, _N_MELS, sample_rate)
    inverse = torchaudio.transforms.InverseMelScale(_N_FFT // 2 + 1, _N_MELS, sample_rate)
    return fb, torch.linalg.pinv(fb.T), inverse


def resynthesize(waveform: torch.Tensor, spoof_type: str, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """The time-aligned spoof of a 1-D waveform: ``griffin_lim`` or ``mel_vocoder`` (see the module doc).

    Returns a waveform of the same length; the same inputs always give the same samples.
    """
    if spoof_type not in ("griffin_lim", "mel_vocoder"):
        raise ConfigError(f"resynthesize makes 'griffin_lim' or 'mel_vocoder', not {spoof_type!r} "
                          f"(klatt needs the text: synthesize it with a klatt variant)")
    x = waveform.reshape(-1).float()
    fb, pinv, inverse_mel = _mel_basis(int(sample_rate))
    window = torch.hann_window(_N_FFT)
    spec = torch.stft(x, _N_FFT, _HOP, window=window, return_complex=True)
    if spoof_type == "mel_vocoder":
        magnitude = (pinv @ (fb.T @ spec.abs())).clamp_min(0.0)
        phase = spec / spec.abs().clamp_min(1e-9)
        return torch.istft(magnitude * phase, _N_FFT, _HOP, window=window, length=x.numel())
    power = inverse_mel(fb.T @ spec.abs().pow(2))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return AF.griffinlim(power, window, _N_FFT, _HOP, _N_FFT, 2.0, _GL_ITERS, 0.99, x.numel(), True)


def _trimmed(utt, sample_rate: int) -> tuple[torch.Tensor, list[tuple[str, int, int]]]:
    """The utterance from ``_LEAD`` s before its first word to ``_TAIL`` s after its last; words in samples."""
    start = max(0, int((utt.words[0].start - _LEAD) * sample_rate))
    end = min(utt.waveform.numel(), int((utt.words[-1].end + _TAIL) * sample_rate))
    words = [(w.label, round(w.start * sample_rate) - start, round(w.end * sample_rate) - start) for w in utt.words]
    return utt.waveform[start:end], words


def _bonafide(spk: SpeakerVoice, rng: random.Random, cfg: SpoofCorpusConfig, min_words: int):
    """Draw a sentence whose synthesis fits the clip; later attempts drop words so short clips fill fast."""
    limit = (cfg.clip_seconds - _MAX_OFFSET - _MARGIN) * cfg.sample_rate
    for attempt in range(24):
        words = draw_sentence(rng, 0.3, 3, 5).split()
        text = " ".join(words[:max(min_words, len(words) - max(0, attempt - 2))])
        rate = min(450, max(80, round(spk.rate * rng.uniform(0.9, 1.1))))
        utt = synthesize(text, voice=spk.voice, variant=spk.variant, rate=rate, pitch=spk.pitch,
                         sample_rate=cfg.sample_rate)
        wave, aligned = _trimmed(utt, cfg.sample_rate)
        if len(aligned) >= min_words and wave.numel() <= limit:
            return text, rate, wave, aligned
    raise ConfigError(f"clip_seconds={cfg.clip_seconds} is too short for these sentences: use a longer clip")


def _boundary(words: list[tuple[str, int, int]], k: int, length: int) -> int:
    """Sample where word ``k`` begins: midway between it and the word before (0 for the first word)."""
    return 0 if k <= 0 else length if k >= len(words) else (words[k - 1][2] + words[k][1]) // 2


def _read(src: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``src[start:start + length]``, zero outside ``src``."""
    out = torch.zeros(length)
    lo, hi = max(0, start), min(src.numel(), start + length)
    if hi > lo:
        out[lo - start:hi - start] = src[lo:hi]
    return out


def _splice(pieces: list[tuple[torch.Tensor, int, int, bool]], fade: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Concatenate ``(source, start, end, is_spoof)`` pieces with raised-cosine crossfades at each join.

    Returns the waveform, the per-sample source (1 = spoof; the crossfade weight passes 0.5 exactly at
    the join) and the joins in samples. Each fade reads ``fade // 2`` samples past its pieces' ends.
    """
    pieces = [p for p in pieces if p[2] > p[1]]
    wave = torch.cat([src[s:e] for src, s, e, _ in pieces])
    source = torch.cat([torch.full((e - s,), float(spoof)) for _, s, e, spoof in pieces])
    half, joins, pos = fade // 2, [], 0
    for (a, a_start, a_end, _), (b, b_start, _, _) in zip(pieces, pieces[1:]):
        pos += a_end - a_start
        joins.append(pos)
        if half:
            w = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(2 * half) + 0.5) / (2 * half))
            lo, hi = max(0, pos - half), min(wave.numel(), pos + half)
            w = w[lo - pos + half:hi - pos + half]
            wave[lo:hi] = (1 - w) * _read(a, a_end - (pos - lo), hi - lo) + w * _read(b, b_start - (pos - lo), hi - lo)
    return wave, source, joins


def _spoof_source(spoof_type: str, text: str, spk: SpeakerVoice, rate: int, wave: torch.Tensor, words,
                  rng: random.Random, cfg: SpoofCorpusConfig):
    """The spoof of the whole utterance: waveform, its words (samples) and the Klatt variant (or None)."""
    if spoof_type != "klatt":
        return resynthesize(wave, spoof_type, cfg.sample_rate, seed=rng.getrandbits(31)), words, None
    variant = rng.choice([v for v in list_variants() if v.startswith("klatt")])
    utt = synthesize(text, voice=spk.voice, variant=variant, rate=rate, pitch=spk.pitch, sample_rate=cfg.sample_rate)
    spoof, spoof_words = _trimmed(utt, cfg.sample_rate)
    level = wave.pow(2).mean().sqrt() / spoof.pow(2).mean().sqrt().clamp_min(1e-9)
    return spoof * level, spoof_words, variant


def _composite(kind: str, wave, words, spoof, spoof_words, rng: random.Random, fade: int):
    """The utterance of ``kind``: waveform, per-sample source (1 = spoof), joins and words, all in samples."""
    if kind == "bonafide":
        return wave, torch.zeros(wave.numel()), [], words
    if kind == "full":
        return spoof, torch.ones(spoof.numel()), [], spoof_words
    run = rng.randint(1, min(2, len(words) - 1))
    i = rng.randint(0, len(words) - run)
    j = i + run
    a, b = _boundary(words, i, wave.numel()), _boundary(words, j, wave.numel())
    sa, sb = _boundary(spoof_words, i, spoof.numel()), _boundary(spoof_words, j, spoof.numel())
    out, source, joins = _splice([(wave, 0, a, False), (spoof, sa, sb, True), (wave, b, wave.numel(), False)], fade)
    shifts = [0] * i + [a - sa] * run + [a + sb - sa - b] * (len(words) - j)
    merged = [(w, s + d, e + d) for (w, s, e), d in zip(words[:i] + spoof_words[i:j] + words[j:], shifts)]
    return out, source, joins, merged


def _frames(source: torch.Tensor, words: list, joins: list[float], num_frames: int) -> dict[str, str]:
    """Frame labels, speech and transition frames of a clip as ``0``/``1`` strings."""
    start = torch.arange(num_frames, dtype=torch.float64) * FRAME_SECONDS
    end = start + FRAME_SECONDS
    speech = torch.zeros(num_frames, dtype=torch.bool)
    for _, s, e in words:
        speech |= (start < e) & (end > s)
    transition = torch.zeros(num_frames, dtype=torch.bool)
    for p in joins:
        transition |= (start < p + FRAME_SECONDS) & (end > p - FRAME_SECONDS)
    labels = source.reshape(num_frames, -1).mean(dim=1) > 0.5
    masks = {"frame_labels": labels, "speech_frames": speech, "transition_frames": transition}
    return {key: "".join("1" if v else "0" for v in mask.tolist()) for key, mask in masks.items()}


def _place(out: torch.Tensor, source: torch.Tensor, joins: list[int], words: list, kind: str,
           rng: random.Random, cfg: SpoofCorpusConfig) -> tuple[torch.Tensor, dict]:
    """Put the speech at a random offset in a clip of noise floor; returns the clip and its ground truth."""
    sr, num_frames = cfg.sample_rate, round(cfg.clip_seconds / FRAME_SECONDS)
    length = round(cfg.clip_seconds * sr)
    offset = int(rng.uniform(0.0, _MAX_OFFSET) * sr)
    clip, clip_source = torch.zeros(length), torch.ones(length) if kind == "full" else torch.zeros(length)
    clip[offset:offset + out.numel()] = out
    if kind == "partial":
        clip_source[offset:offset + out.numel()] = source
    noise = torch.Generator().manual_seed(rng.getrandbits(63))
    clip += torch.randn(length, generator=noise) * 10 ** (cfg.noise_floor_db / 20)
    sec = lambda n: round((n + offset) / sr, 6)  # noqa: E731
    spoofed = [[0.0, round(cfg.clip_seconds, 6)]] if kind == "full" else []
    if kind == "partial":
        inside = torch.nonzero(source).flatten()
        spoofed = [[sec(int(inside[0])), sec(int(inside[-1]) + 1)]]
    timed = [(w, sec(s), sec(e)) for w, s, e in words]
    record = {"offset": sec(0), "splice_points": [sec(j) for j in joins], "spoofed_intervals": spoofed,
              "words": [list(w) for w in timed], **_frames(clip_source, timed, [sec(j) for j in joins], num_frames)}
    return clip, record


def _utterance(spk: SpeakerVoice, kind: str, spoof_type: str | None, rng: random.Random,
               cfg: SpoofCorpusConfig) -> tuple[torch.Tensor, dict]:
    """One clip of ``kind`` said by ``spk``, redrawn until it fits the clip; returns it and its record."""
    limit = (cfg.clip_seconds - _MAX_OFFSET - _MARGIN) * cfg.sample_rate
    fade = round(cfg.crossfade_ms * cfg.sample_rate / 1000)
    for _ in range(24):
        text, rate, wave, words = _bonafide(spk, rng, cfg, 2 if kind == "partial" else 1)
        spoof, spoof_words, variant = wave, words, None
        if kind != "bonafide":
            spoof, spoof_words, variant = _spoof_source(spoof_type, text, spk, rate, wave, words, rng, cfg)
        if len(spoof_words) != len(words):
            continue
        out, source, joins, merged = _composite(kind, wave, words, spoof, spoof_words, rng, fade)
        if out.numel() <= limit:
            break
    else:
        raise ConfigError(f"no {spoof_type} {kind} utterance fits clip_seconds={cfg.clip_seconds}: use a longer clip")
    # The bona fide peak is drawn in [0.5, 0.9]; spoofs share its gain, capped so no clip exceeds 0.95.
    gain = min(rng.uniform(0.5, 0.9) / float(wave.abs().max()), 0.95 / float(out.abs().max()))
    clip, record = _place(out * gain, source, joins, merged, kind, rng, cfg)
    return clip, {"text": text, "rate": rate, "kind": kind, "spoof_type": None if kind == "bonafide" else spoof_type,
                  "spoof_variant": variant, "utterance_label": int(kind != "bonafide"), **record}


def _check(cfg: SpoofCorpusConfig) -> None:
    """Refuse impossible configurations, naming the field and the fix."""
    for name in ("seen_spoof_types", "unseen_spoof_types"):
        types = getattr(cfg, name)
        if not types or set(types) - set(SPOOF_TYPES) or len(set(types)) != len(types):
            raise ConfigError(f"{name}={list(types)}: give distinct types from {list(SPOOF_TYPES)}")
    if set(cfg.seen_spoof_types) & set(cfg.unseen_spoof_types):
        raise ConfigError(f"seen_spoof_types and unseen_spoof_types share "
                          f"{sorted(set(cfg.seen_spoof_types) & set(cfg.unseen_spoof_types))}: keep them disjoint")
    fractions = (cfg.bonafide_fraction, cfg.partial_fraction)
    if min(fractions) < 0 or sum(fractions) > 1:
        raise ConfigError(f"bonafide_fraction={fractions[0]}, partial_fraction={fractions[1]}: each must be >= 0 "
                          f"and together at most 1 (the rest are fully spoofed)")
    frames = cfg.clip_seconds / FRAME_SECONDS
    if cfg.sample_rate % 50 or abs(frames - round(frames)) > 1e-6 or cfg.clip_seconds < 1.0:
        raise ConfigError(f"clip_seconds={cfg.clip_seconds} at sample_rate={cfg.sample_rate}: use at least 1 s, a "
                          f"whole number of {FRAME_SECONDS} s frames (e.g. 2.56), and a sample rate divisible by 50")
    if cfg.num_voices < 3 or cfg.utterances_per_voice < 1 or not 0 <= cfg.crossfade_ms <= 20:
        raise ConfigError(f"num_voices={cfg.num_voices}, utterances_per_voice={cfg.utterances_per_voice}, "
                          f"crossfade_ms={cfg.crossfade_ms}: use at least 3 voices (one per split), 1 utterance "
                          f"per voice and a crossfade of 0 to 20 ms")


def _plan(cfg: SpoofCorpusConfig) -> list[tuple[str, SpeakerVoice, int, str, str | None]]:
    """Every utterance to make: (split, speaker, index, kind, spoof type), kinds in exact shares per voice."""
    roster = {s.speaker: s for s in speaker_roster(cfg.num_voices, cfg.seed)}
    groups = speaker_splits(list(roster), seed=cfg.seed)
    n = cfg.utterances_per_voice
    n_bona = round(cfg.bonafide_fraction * n)
    n_partial = min(n - n_bona, round(cfg.partial_fraction * n))
    jobs = []
    for split in SPLITS:
        types = cfg.unseen_spoof_types if split == "test_unseen" else cfg.seen_spoof_types
        for speaker in groups["test" if split == "test_unseen" else split]:
            rng = random.Random(f"{cfg.seed}-{split}-{speaker}-plan")
            kinds = ["bonafide"] * n_bona + ["partial"] * n_partial + ["full"] * (n - n_bona - n_partial)
            rng.shuffle(kinds)
            turn = {"partial": rng.randrange(len(types)), "full": rng.randrange(len(types))}
            for index, kind in enumerate(kinds):
                spoof_type = None
                if kind != "bonafide":  # spoof types take turns within each kind
                    spoof_type, turn[kind] = types[turn[kind] % len(types)], turn[kind] + 1
                jobs.append((split, roster[speaker], index, kind, spoof_type))
    return jobs


def _build(root: Path, cfg: SpoofCorpusConfig, progress: bool) -> None:
    records, counts = [], dict.fromkeys(SPLITS, 0)
    for split, spk, index, kind, spoof_type in tqdm(_plan(cfg), desc="spoofs", disable=not progress, leave=False):
        rng = random.Random(f"{cfg.seed}-{split}-{spk.speaker}-{index}")
        clip, record = _utterance(spk, kind, spoof_type, rng, cfg)
        uid = f"{split}_{counts[split]:05d}"
        counts[split] += 1
        save_audio(root / split / f"{uid}.wav", clip, cfg.sample_rate)
        records.append({"id": uid, "filepath": f"{split}/{uid}.wav", "split": split, "voice": spk.speaker,
                        "accent": spk.voice, "variant": spk.variant, "pitch": spk.pitch, **record})
    meta = {"sample_rate": cfg.sample_rate, "clip_seconds": cfg.clip_seconds, "frame_seconds": FRAME_SECONDS,
            "num_frames": round(cfg.clip_seconds / FRAME_SECONDS), "utterances": records}
    atomic_write_text(root / "metadata.json", json.dumps(meta))


def spoof_corpus(config: SpoofCorpusConfig | None = None, progress: bool = True, **overrides) -> Path:
    """The cached partial-spoof corpus folder for ``config`` and ``overrides`` (built on first use).

    The folder holds ``{split}/{id}.wav`` (16-bit PCM, every clip ``clip_seconds`` long) and
    ``metadata.json``: ``sample_rate``, ``clip_seconds``, ``frame_seconds``, ``num_frames`` and
    ``utterances``, one record per clip with id, filepath, split, voice (speaker id), accent, variant,
    pitch, rate, text, kind, spoof_type, spoof_variant (the Klatt variant), utterance_label, offset,
    splice_points and spoofed_intervals (seconds), words ([word, start, end] seconds in the clip) and
    frame_labels, speech_frames, transition_frames as strings of ``0``/``1``, one per frame.
    """
    cfg = load_config(SpoofCorpusConfig, asdict(config or SpoofCorpusConfig()), **overrides)
    _check(cfg)
    return cached_corpus("spoofs", cfg, lambda root: _build(root, cfg, progress))


def _metadata(root: Path) -> dict:
    """The parsed ``metadata.json`` of a corpus folder, or a DatasetError naming the file and the fix."""
    path, keys = root / "metadata.json", {"sample_rate", "clip_seconds", "num_frames", "utterances"}
    if not path.is_file():
        raise DatasetError(f"{path} not found: {root} is not a spoof corpus folder (build one with spoof_corpus())")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON ({err}): delete {root} and build it again") from err
    if not isinstance(meta, dict) or keys - set(meta):
        raise DatasetError(f"{path} lacks {sorted(keys - set(meta) if isinstance(meta, dict) else keys)}: "
                           f"delete {root} and build it again with spoof_corpus()")
    return meta


def load_spoof_corpus(root: str | Path, split: str) -> SpoofSet:
    """Read one split (``train``, ``val``, ``test`` or ``test_unseen``) of a spoof corpus folder."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    root = Path(root)
    meta = _metadata(root)
    rows = [r for r in meta["utterances"] if r["split"] == split]
    sr, length = meta["sample_rate"], round(meta["clip_seconds"] * meta["sample_rate"])
    waves = []
    for r in rows:
        wave, _ = load_audio(root / r["filepath"], sample_rate=sr)
        if wave.numel() != length:
            raise DatasetError(f"{root / r['filepath']} has {wave.numel()} samples, not {length}: rebuild the corpus")
        waves.append(wave)
    frames = {key: torch.tensor([[c == "1" for c in r[key]] for r in rows], dtype=torch.bool).reshape(
        len(rows), meta["num_frames"]) for key in ("frame_labels", "speech_frames", "transition_frames")}
    return SpoofSet(
        waveform=torch.stack(waves) if waves else torch.zeros(0, length),
        labels=torch.tensor([r["utterance_label"] for r in rows], dtype=torch.long),
        frame_labels=frames["frame_labels"].long(), speech_frames=frames["speech_frames"],
        transition_frames=frames["transition_frames"], ids=[r["id"] for r in rows], kind=[r["kind"] for r in rows],
        spoof_type=[r["spoof_type"] for r in rows], voice=[r["voice"] for r in rows], text=[r["text"] for r in rows],
        splice_points=[r["splice_points"] for r in rows], spoofed_intervals=[r["spoofed_intervals"] for r in rows],
        words=[[tuple(w) for w in r["words"]] for r in rows], sample_rate=sr,
    )
