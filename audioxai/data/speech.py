"""Speech synthesis with exact word and phoneme timings, through eSpeak NG.

The library and its voices come from the ``espeakng-loader`` wheel; we drive ``libespeak-ng`` with
ctypes in synchronous mode, collecting the audio and the engine's own word and phoneme events.
Phoneme events (with IPA names) are only emitted when the engine is initialised with
``espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA``, which we always do.

Timings are the engine's: a word starts at its WORD event and ends where its last phoneme ends;
a phoneme runs from its PHONEME event to the next event. They are exact for the synthesised
audio, which is what makes these corpora useful as ground truth for explanations.
"""

from __future__ import annotations

import _ctypes
import ctypes
import functools
import logging
import threading
from dataclasses import dataclass, field

import torch
import torchaudio

from audioxai.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["Segment", "Utterance", "synthesize", "list_variants", "ENGLISH_VOICES", "espeak_version"]

# eSpeak NG constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END, _EVENT_MSG_TERMINATED, _EVENT_PHONEME = 0, 1, 5, 6, 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_NOISE_SEED = 20240601

#: English voices shipped with eSpeak NG, usable as accents (language variants).
ENGLISH_VOICES: tuple[str, ...] = (
    "en-us",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
    "en",
)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Segment:
    """A labelled time interval in seconds."""

    label: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Utterance:
    """A synthesised utterance: waveform, its rate, and word and phoneme alignments in seconds."""

    text: str
    waveform: torch.Tensor
    sample_rate: int
    words: list[Segment]
    phonemes: list[Segment]
    voice: str = "en-us"
    variant: str | None = None
    rate: int = 175
    pitch: int = 50
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.waveform.numel() / self.sample_rate

    def speech_span(self) -> tuple[float, float]:
        """Start of the first word and end of the last, in seconds."""
        if not self.words:
            return (0.0, 0.0)
        return (self.words[0].start, self.words[-1].end)


class _Engine:
    """A freshly loaded eSpeak NG library, initialised for synchronous synthesis with phoneme events.

    libespeak-ng keeps synthesis state in globals (glottal phase, pitch flutter, random-noise state)
    that carry over from one utterance to the next and survive ``espeak_Terminate``, so the same text
    would come out slightly differently depending on what was said before. ``_synth_fresh`` therefore
    loads the library, says one utterance and unloads it again (about 3 ms), which makes every
    synthesis depend on its own inputs only.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, options)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise with data at {data_path.decode()}")
        self.sample_rate = int(rate)
        # Initialisation seeds the engine's noise generator (breathy and whispered voices) from the
        # clock; a fixed seed makes those voices as reproducible as the others.
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.lib.espeak_ng_SetRandSeed(_NOISE_SEED)
        self._chunks: list[bytes] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: ctypes must not collect it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, num_samples, events) -> int:  # noqa: ANN001 (ctypes types)
        if num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            name = ev.id.string.decode("utf-8", "replace") if ev.type == _EVENT_PHONEME else ""
            self._events.append((ev.type, ev.text_position, ev.length, ev.audio_position, name))
            i += 1
        return 0

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int):
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(
                f"eSpeak NG has no voice {voice!r}: use a language such as 'en-us' or "
                f"'en-gb-x-rp', optionally with a variant from list_variants() as 'en-us+f3'"
            )
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_VOLUME, 100)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"eSpeak NG failed to synthesise {text!r} (error {err})")
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks), list(self._events)


_LOCK = threading.Lock()
_LIBC = ctypes.CDLL(None)


def _synth_fresh(text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> tuple[bytes, list, int]:
    """Synthesise with a freshly loaded library (see ``_Engine``); returns PCM, events, native rate."""
    with _LOCK:
        _LIBC.srand(0)  # any libc rand() use inside the engine starts from the same state too
        engine = _Engine()
        try:
            pcm, events = engine.synth(text, voice, rate, pitch, pitch_range)
        finally:
            engine.close()
        return pcm, events, engine.sample_rate


def espeak_version() -> str:
    """The version string of the bundled libespeak-ng."""
    with _LOCK:
        engine = _Engine()
        try:
            engine.lib.espeak_Info.restype = ctypes.c_char_p
            engine.lib.espeak_Info.argtypes = [ctypes.c_void_p]
            return engine.lib.espeak_Info(None).decode()
        finally:
            engine.close()


@functools.lru_cache(maxsize=1)
def list_variants() -> tuple[str, ...]:
    """Names of the voice variants shipped with the bundled eSpeak NG data (e.g. 'm1', 'f3', 'klatt')."""
    import espeakng_loader
    from pathlib import Path

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


def _alignments(text: str, events, total_ms: float) -> tuple[list[Segment], list[Segment]]:
    """Turn the engine's word and phoneme events into word and phoneme segments (seconds)."""
    marks = [ev for ev in events if ev[0] in (_EVENT_WORD, _EVENT_PHONEME, _EVENT_END, _EVENT_MSG_TERMINATED)]
    phonemes: list[tuple[str, float, float]] = []
    for k, (kind, _, _, pos, name) in enumerate(marks):
        if kind != _EVENT_PHONEME:
            continue
        end = next((m[3] for m in marks[k + 1:] if m[3] > pos or m[0] != _EVENT_WORD), total_ms)
        phonemes.append((name, pos / 1000.0, max(end, pos) / 1000.0))
    words: list[Segment] = []
    word_events = [ev for ev in marks if ev[0] == _EVENT_WORD]
    for k, (_, text_pos, length, pos, _) in enumerate(word_events):
        label = text[max(text_pos - 1, 0): max(text_pos - 1, 0) + length]
        next_pos = word_events[k + 1][3] if k + 1 < len(word_events) else float("inf")
        inside = [p for p in phonemes if pos / 1000.0 <= p[1] < next_pos / 1000.0 and p[0].strip()]
        if inside:  # a word spans its first phoneme's start to its last phoneme's end
            words.append(Segment(label, inside[0][1], inside[-1][2]))
        else:
            words.append(Segment(label, pos / 1000.0, pos / 1000.0))
    return words, [Segment(n, s, e) for n, s, e in phonemes if n.strip()]


def synthesize(
    text: str,
    voice: str = "en-us",
    variant: str | None = None,
    rate: int = 175,
    pitch: int = 50,
    sample_rate: int = 16000,
    pitch_range: int = 50,
) -> Utterance:
    """Synthesise ``text`` with eSpeak NG and return the waveform with word and phoneme alignments.

    Args:
        text: what to say (UTF-8). Must contain at least one letter or digit.
        voice: an eSpeak NG language voice, e.g. ``"en-us"``, ``"en-gb-x-rp"`` (see ``ENGLISH_VOICES``).
        variant: a voice variant from ``list_variants()`` (``"m3"``, ``"f2"``, ``"klatt"``...), or None.
        rate: speaking rate in words per minute (80 to 450; eSpeak's default 175).
        pitch: base pitch, 0 to 100 (default 50).
        sample_rate: output rate; the engine's native 22050 Hz audio is resampled to it.
        pitch_range: pitch range, 0 (monotone) to 100 (default 50).

    Returns:
        An ``Utterance`` whose waveform is 1-D float32 in [-1, 1]. The same inputs always give the
        same samples.
    """
    if not any(ch.isalnum() for ch in text):
        raise ConfigError(f"text {text!r} has nothing to say: give at least one word")
    if not 80 <= rate <= 450:
        raise ConfigError(f"rate={rate} words per minute is outside eSpeak NG's range: use 80 to 450")
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise ConfigError(f"{name}={value} is outside 0..100: use a value in that range")
    if variant is not None and variant not in list_variants():
        raise ConfigError(f"unknown voice variant {variant!r}: choose one of list_variants(), e.g. 'm3' or 'f2'")
    full_voice = voice if variant is None else f"{voice}+{variant}"
    pcm, events, native_rate = _synth_fresh(text, full_voice, rate, pitch, pitch_range)
    native = torch.frombuffer(bytearray(pcm), dtype=torch.int16).to(torch.float32) / 32768.0
    total_ms = 1000.0 * native.numel() / native_rate
    words, phonemes = _alignments(text, events, total_ms)
    waveform = native
    if sample_rate != native_rate:
        waveform = torchaudio.functional.resample(native, native_rate, sample_rate)
    return Utterance(
        text=text, waveform=waveform.contiguous(), sample_rate=sample_rate, words=words,
        phonemes=phonemes, voice=voice, variant=variant, rate=rate, pitch=pitch,
    )
