"""pocketsphinx's pretrained US-English recogniser, as a real model nobody here trained, explained as a black box.

The pocketsphinx wheel ships a phonetically-tied-mixture (PTM) HMM acoustic model, CMUdict and a
general English trigram LM; nothing is downloaded. ``PocketSphinxRecognizer`` decodes with that LM
(``grammar=None``) or, by default, with a JSGF grammar of the sentence corpus
(``audioxai.data.sentences``: GRID-style commands and 3-6 digit strings, built from ``GRAMMAR`` and
``DIGIT_WORDS``). The grammar keeps the pretrained acoustic model and only constrains the search,
which is how one deploys pocketsphinx on a closed-vocabulary task.

Word error rates on ``sentence_corpus(num_sentences=40, num_speakers=20, seed=0)`` (accented eSpeak
NG voices at 140-220 words per minute), clean and mixed with white noise at 10 dB SNR; the first 30
utterances (146 words) chose ``GRAMMAR_OPTIONS``, the last 10 (50 words) did not; one CPU thread:

==============  ==========  ===========  ==========  ===========  ===================
search          clean 1-30  clean 31-40  10 dB 1-30  10 dB 31-40  seconds / utterance
==============  ==========  ===========  ==========  ===========  ===================
default LM      0.97        1.00         0.99        0.98         0.43 clean, 0.8 noisy
corpus grammar  0.19        0.38         0.51        0.44         0.03 clean, 0.04 noisy
==============  ==========  ===========  ==========  ===========  ===================

The LM turns these synthetic voices into unrelated English ("set blue in eight soon" -> "sadly are
still"). pocketsphinx's grammar defaults gave 0.47 and 0.62 clean (0.59, 0.46 at 10 dB): they
insert silence/noise fillers between grammar words, and the lattice ``bestpath`` pass may end in a
non-final grammar state, returning partial sentences such as "set blue in"; ``GRAMMAR_OPTIONS``
turns both off and widens the beams. Most remaining errors are digit confusions ("eight" -> "six")
and command sentences read as digit strings, mostly by fast (185+ words per minute) or whispered voices.

Input: float waveforms in [-1, 1] become 16-bit PCM (clipped, rounded) plus a fixed +-1 LSB dither
(seeded, identical on every call): digital silence otherwise makes the batch cepstral mean NaN and
every search fails. The front-end is reset before each utterance (``decode_utterance``), so a
result never depends on what was decoded before. Feature settings (``cmn``, ``remove_noise`` ...)
come from the model's ``feat.params``, which overrides ``decoder_options``; search settings do not.
"""

from __future__ import annotations

import logging
import math
import re
import time

import numpy as np
import pocketsphinx
import torch

from audioxai.data.audio import check_waveform, resample_to
from audioxai.data.sentences import GRAMMAR, SentenceCorpusConfig
from audioxai.data.synthdigits import DIGIT_WORDS
from audioxai.errors import AudioInputError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["MODEL_SAMPLE_RATE", "GRAMMAR_OPTIONS", "ALIGNER_OPTIONS", "corpus_vocabulary", "corpus_jsgf",
           "to_pcm16", "PocketSphinxRecognizer", "PocketSphinxValueFunction", "pocketsphinx_value_fn"]

MODEL_SAMPLE_RATE = 16000
# The grammar search: no filler words, no lattice bestpath pass, beams widened from 1e-48 (see above).
GRAMMAR_OPTIONS: dict[str, object] = {
    "fsgusefiller": False, "bestpath": False,
    "beam": 1e-60, "pbeam": 1e-60, "wbeam": 1e-40, "lpbeam": 1e-52, "lponlybeam": 1e-40,
}
# Forced alignment: no pruning at all (beam 0), no automatic fillers (optional silences are explicit in
# the alignment graph), and every senone scored in every frame (see PocketSphinxValueFunction).
ALIGNER_OPTIONS: dict[str, object] = {
    "fsgusefiller": False, "bestpath": False, "compallsen": True,
    "beam": 0.0, "pbeam": 0.0, "wbeam": 0.0, "lpbeam": 0.0, "lponlybeam": 0.0,
}
_SCORE_SHIFT = 10  # pocketsphinx keeps search scores in its log base right-shifted by 10 bits (SENSCR_SHIFT)
_SILENCE = "<sil>"
_ALT_PRONUNCIATION = re.compile(r"\(\d+\)$")


def corpus_vocabulary() -> tuple[str, ...]:
    """The words of the sentence corpus: every grammar slot and the digit words, sorted."""
    return tuple(sorted({w for words in GRAMMAR.values() for w in words} | set(DIGIT_WORDS)))


def corpus_jsgf(min_digits: int = SentenceCorpusConfig.min_digits,
                max_digits: int = SentenceCorpusConfig.max_digits) -> str:
    """A JSGF grammar accepting exactly the corpus sentences: ``command colour preposition digit adverb``
    or ``min_digits`` to ``max_digits`` digit words."""
    if not 1 <= min_digits <= max_digits:
        raise ConfigError(f"digit-string lengths {min_digits}..{max_digits}: need 1 <= min_digits <= max_digits")
    lines = ["#JSGF V1.0;", "grammar corpus;"]
    lines += [f"<{slot}> = {' | '.join(words)};" for slot, words in GRAMMAR.items()]
    lines.append(f"<digit_word> = {' | '.join(DIGIT_WORDS)};")
    command = " ".join(f"<{slot}>" for slot in GRAMMAR)
    digits = " ".join(["<digit_word>"] * min_digits + ["[<digit_word>]"] * (max_digits - min_digits))
    lines.append(f"public <sentence> = {command} | {digits};")
    return "\n".join(lines) + "\n"


def to_pcm16(waveform: torch.Tensor) -> bytes:
    """Float samples in [-1, 1] as 16-bit PCM bytes: clipped, rounded, plus a fixed +-1 LSB dither (seed 0)."""
    x = waveform.detach().to("cpu", torch.float64).clamp(-1.0, 1.0)
    dither = torch.randint(-1, 2, x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    pcm = (torch.round(x * 32767).to(torch.int32) + dither).clamp(-32768, 32767)
    return pcm.to(torch.int16).numpy().tobytes()


class PocketSphinxRecognizer:
    """pocketsphinx's pretrained en-us acoustic model with the corpus grammar or the default LM.

    Args:
        grammar: ``"corpus"`` (the JSGF of ``corpus_jsgf()``), a JSGF grammar string, or None for the
            wheel's default trigram LM.
        sample_rate: rate of the waveforms passed in; other rates than the model's 16 kHz are resampled
            (logged at INFO).
        decoder_options: overrides of the recognition search's pocketsphinx settings (e.g.
            ``{"pip": 2.0}``), applied last; the value function's aligner ignores them.
    """

    def __init__(self, grammar: str | None = "corpus", sample_rate: int = MODEL_SAMPLE_RATE,
                 decoder_options: dict[str, object] | None = None) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ConfigError(f"sample_rate={sample_rate!r}: pass a positive integer number of samples per second")
        if grammar is not None and not isinstance(grammar, str):
            raise ConfigError(f"grammar={grammar!r}: pass 'corpus', a JSGF string, or None for the default LM")
        self.grammar = grammar
        self.jsgf = corpus_jsgf() if grammar == "corpus" else grammar
        self.sample_rate = sample_rate
        self.decoder_options = dict(decoder_options or {})
        self.decoder = self._grammar_decoder() if self.jsgf is not None else self.new_decoder(**self.decoder_options)
        self.num_utterances = 0
        self.total_seconds = 0.0

    def new_decoder(self, **options: object) -> pocketsphinx.Decoder:
        """A fresh decoder on the wheel's en-us acoustic model and dictionary, logging silenced.

        With no options it searches with the default LM; options (``lm=None`` ...) are passed on.
        """
        config = {"hmm": pocketsphinx.get_model_path("en-us/en-us"),
                  "dict": pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"), "loglevel": "FATAL", **options}
        try:
            return pocketsphinx.Decoder(**config)
        except (RuntimeError, ValueError, KeyError) as err:
            raise ConfigError(f"pocketsphinx rejected the settings {options}: {err}; check decoder_options "
                              f"against [a.name for a in pocketsphinx.Config().describe()]") from err

    def _grammar_decoder(self) -> pocketsphinx.Decoder:
        decoder = self.new_decoder(**{"lm": None, **GRAMMAR_OPTIONS, **self.decoder_options})
        try:
            decoder.add_jsgf_string("grammar", self.jsgf)
        except ValueError as err:
            raise ConfigError(f"the JSGF grammar does not parse ({err}): start it with '#JSGF V1.0;' and "
                              f"a 'grammar' line, and make one rule public; see corpus_jsgf()") from err
        decoder.activate_search("grammar")
        return decoder

    @property
    def seconds_per_utterance(self) -> float:
        """Mean wall-clock seconds of ``transcribe`` so far (NaN before the first call)."""
        return self.total_seconds / self.num_utterances if self.num_utterances else math.nan

    @property
    def min_samples(self) -> int:
        """Shortest input at the model rate: one analysis window (25.6 ms, 410 samples)."""
        return math.ceil(float(self.decoder.config["wlen"]) * MODEL_SAMPLE_RATE)

    def prepare(self, waveform: torch.Tensor | np.ndarray, sample_rate: int | None = None,
                name: str = "waveform") -> torch.Tensor:
        """Check a mono waveform and return it as ``(N,)`` float at the model's 16 kHz.

        Raises:
            AudioInputError: not a float tensor/array, more than one channel, empty, NaN/inf, or
                shorter than ``min_samples`` at 16 kHz.
        """
        rate = self.sample_rate if sample_rate is None else sample_rate
        x = check_waveform(waveform, rate, name=name)
        if rate != MODEL_SAMPLE_RATE:
            logger.info("%s is sampled at %d Hz: resampling to %d Hz for pocketsphinx", name, rate, MODEL_SAMPLE_RATE)
            x = resample_to(x, rate, MODEL_SAMPLE_RATE)
        if x.numel() < self.min_samples:
            window_ms = 1000 * self.min_samples / MODEL_SAMPLE_RATE
            raise AudioInputError(f"{name} has {x.numel()} samples at {MODEL_SAMPLE_RATE} Hz, shorter than "
                                  f"pocketsphinx's {window_ms:.1f} ms analysis window: pass at least that much audio")
        return x

    def decode_pcm(self, pcm: bytes) -> str:
        """Decode 16-bit PCM at 16 kHz as one utterance and return the hypothesis ("" when none)."""
        hyp = self.decoder.hyp() if decode_utterance(self.decoder, pcm) else None
        words = [] if hyp is None else [w for w in hyp.hypstr.split() if not _is_filler(w)]
        return " ".join(words)

    def transcribe(self, waveform: torch.Tensor | np.ndarray, sample_rate: int | None = None) -> str:
        """Recognise one utterance.

        Args:
            waveform: ``(N,)`` (or ``(1, N)``) float samples in [-1, 1], torch or NumPy; louder samples are clipped.
            sample_rate: its rate; None means the recogniser's ``sample_rate``.

        Returns:
            Lower-case words separated by spaces, filler words removed; "" when nothing was recognised.
        """
        x = self.prepare(waveform, sample_rate)
        start = time.perf_counter()
        text = self.decode_pcm(to_pcm16(x))
        self.total_seconds += time.perf_counter() - start
        self.num_utterances += 1
        return text

    def check_words(self, words: list[str]) -> None:
        """Raise ConfigError naming every word the pronunciation dictionary lacks."""
        missing = [w for w in words if self.decoder.lookup_word(w) is None]
        if missing:
            raise ConfigError(f"words {missing} are not in pocketsphinx's dictionary (CMUdict): write numbers and "
                              f"symbols as lower-case words, or add pronunciations with decoder.add_word")


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "+"))


def decode_utterance(decoder: pocketsphinx.Decoder, pcm: bytes) -> bool:
    """Run ``decoder`` on 16-bit PCM as one whole utterance; False when the search cannot finish.

    The feature front-end is reset first: its spectral noise-removal estimate otherwise carries over
    from the previous utterance, and the same input would score differently after a silent one.
    """
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    try:
        decoder.end_utt()
    except RuntimeError:
        return False
    return True


def _alignment_graph(decoder: pocketsphinx.Decoder, words: list[str]) -> pocketsphinx.FsgModel:
    """A left-to-right graph of ``words`` with an optional silence before each word and after the last.

    No null (epsilon) transitions: state 2i is "before word i", 2i+1 "after the silence before word i",
    F the final state, G "after the last word, before a final silence".
    """
    n = len(words)
    final, tail = 2 * n, 2 * n + 1
    transitions = []
    for i, word in enumerate(words):
        transitions.append((2 * i, 2 * i + 1, 0.5, _SILENCE))
        targets = [2 * i + 2] if i < n - 1 else [final, tail]
        transitions += [(src, dst, 0.5, word) for src in (2 * i, 2 * i + 1) for dst in targets]
    transitions.append((tail, final, 1.0, _SILENCE))
    return decoder.create_fsg("transcript", 0, final, transitions)


class PocketSphinxValueFunction:
    """Goodness of pronunciation of each transcript word: ``f(waveforms (B, N)) -> (B, K + 1)``.

    For each waveform pocketsphinx force-aligns the transcript, with an optional silence before each
    word and after the last, by an exact Viterbi search (no pruning: ``ALIGNER_OPTIONS``), then
    re-aligns its HMM states inside those word boundaries (``set_alignment`` / ``get_alignment``).
    Column k < K is word k's GOP (Witt & Young, 2000, with senones in place of phones), column K
    the same over all K words' frames (silences excluded), in nats per 10 ms frame:

        GOP(w) = 1/|T_w| sum_{t in T_w} [log p(x_t | s_t) - max_s log p(x_t | s)]  <= 0

    where T_w are the frames aligned to w, s_t the aligned senone and the max runs over every senone
    of the model (``compallsen``; pocketsphinx normalises senone scores per frame by the best one it
    computed). Integer scores are turned into nats by ``logmath.log_to_ln`` times 2**10 (scores are
    kept right-shifted by ``SENSCR_SHIFT`` = 10 bits).

    Why this score (12 corpus utterances, each word masked in turn by zeros or by white noise):
    per-frame means, not sums. A masked word is squeezed by the aligner to its minimum length (3
    frames per phone) and silence takes the rest, so its summed score often *rose*: the clean
    utterance outscored the all-silent one for 0 of 12 transcripts with sums, 12 of 12 with means;
    masking word k lowered column k more than any other word column for 13 vs 43 of 55 words. The
    whole-model normaliser makes the score independent of which states the search activated;
    normalising by the best *active* senone instead (``compallsen`` off) was about as informative
    (43 of 55) and 2.7x faster, but measures fit relative to the word's own states only.

    The transcript is lower-cased (the dictionary is). Defined for any input at least as long as the
    transcript's minimum duration (``min_seconds()``): with no pruning the alignment cannot fail, and
    it did not in 297 calls on all-zero, zero-, noise- and mean-masked inputs. Should it fail anyway,
    the row gets the scores of a silent input of the same length (``num_fallbacks`` counts these,
    with a logged warning) so an explainer never stops; inputs too short even for that raise
    AudioInputError. Deterministic: identical inputs give identical rows, whatever came before.

    A black box: float32 rows without gradient (``.requires_grad`` is False, gradient explainers do
    not apply), one utterance at a time on the CPU; ``num_calls`` counts scored waveforms.
    """

    def __init__(self, recognizer: PocketSphinxRecognizer, transcript: str) -> None:
        self.words = transcript.lower().split() if isinstance(transcript, str) else []
        if not self.words:
            raise ConfigError(f"transcript {transcript!r} has no words: pass the text to explain, e.g. "
                              f"recognizer.transcribe(waveform)")
        recognizer.check_words(self.words)
        self.recognizer = recognizer
        self.decoder = recognizer.new_decoder(lm=None, **ALIGNER_OPTIONS)
        self.decoder.add_fsg("transcript", _alignment_graph(self.decoder, self.words))
        self.num_calls = 0
        self.num_fallbacks = 0
        self.seconds = 0.0
        self._silence_rows: dict[int, torch.Tensor] = {}

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Score every row of ``waveforms`` ``(B, N)`` (or one ``(N,)``) at the recogniser's rate."""
        if not isinstance(waveforms, torch.Tensor) or waveforms.dim() not in (1, 2):
            shape = tuple(waveforms.shape) if hasattr(waveforms, "shape") else type(waveforms).__name__
            raise AudioInputError(f"waveforms has shape {shape}: pass a float tensor (B, N) or (N,)")
        start = time.perf_counter()
        batch = waveforms.detach().reshape(-1, waveforms.shape[-1])
        if self.recognizer.sample_rate != MODEL_SAMPLE_RATE and batch.is_floating_point():
            logger.debug("resampling %d waveforms from %d Hz", len(batch), self.recognizer.sample_rate)
            batch = resample_to(batch, self.recognizer.sample_rate, MODEL_SAMPLE_RATE)
        rows = [self._row(self.recognizer.prepare(w, MODEL_SAMPLE_RATE, name=f"waveforms[{b}]"))
                for b, w in enumerate(batch)]
        self.seconds += time.perf_counter() - start
        return torch.stack(rows)

    @property
    def seconds_per_call(self) -> float:
        """Mean seconds per scored waveform so far (NaN before the first)."""
        return self.seconds / self.num_calls if self.num_calls else math.nan

    def _row(self, x: torch.Tensor) -> torch.Tensor:
        self.num_calls += 1
        scores = self._align(to_pcm16(x))
        if scores is not None:
            return scores
        self.num_fallbacks += 1
        logger.warning("forced alignment of %r failed on a %d-sample input: using the scores of silence",
                       " ".join(self.words), x.numel())
        return self._silence_row(x.numel())

    def _silence_row(self, num_samples: int) -> torch.Tensor:
        if num_samples not in self._silence_rows:
            scores = self._align(to_pcm16(torch.zeros(num_samples)))
            if scores is None:
                raise AudioInputError(
                    f"cannot force-align {len(self.words)} words to a {num_samples / MODEL_SAMPLE_RATE:.3f} s input, "
                    f"not even to silence of that length: it is too short, pass at least {self.min_seconds():.2f} s "
                    f"(3 frames of 10 ms per phone)")
            self._silence_rows[num_samples] = scores
        return self._silence_rows[num_samples]

    def min_seconds(self) -> float:
        """Shortest input the transcript fits in: three frames per phone (10 ms hop, 25.6 ms window)."""
        phones = sum(len(self.decoder.lookup_word(w).split()) for w in self.words)
        return (3 * phones - 1) / float(self.decoder.config["frate"]) + float(self.decoder.config["wlen"])

    def _align(self, pcm: bytes) -> torch.Tensor | None:
        """GOP of each word and of all words (nats per frame), or None when an alignment pass fails."""
        self.decoder.activate_search("transcript")
        if not decode_utterance(self.decoder, pcm):
            return None
        hyp = self.decoder.hyp()
        if hyp is None or [w for w in hyp.hypstr.split() if not _is_filler(w)] != self.words:
            return None
        try:
            self.decoder.set_alignment()
        except RuntimeError:
            return None
        if not decode_utterance(self.decoder, pcm):
            return None
        entries = [(_ALT_PRONUNCIATION.sub("", e.name), e.score, e.duration)
                   for e in self.decoder.get_alignment().words() if not _is_filler(e.name)]
        if [name for name, _, _ in entries] != self.words or min(frames for _, _, frames in entries) < 1:
            return None
        to_nats = self.decoder.logmath.log_to_ln(1) * 2 ** _SCORE_SHIFT
        scores = [score * to_nats for _, score, _ in entries]
        frames = [frames for _, _, frames in entries]
        values = [s / n for s, n in zip(scores, frames)] + [sum(scores) / sum(frames)]
        return torch.tensor(values, dtype=torch.float64).to(torch.float32)


def pocketsphinx_value_fn(recognizer: PocketSphinxRecognizer,
                          transcript: str) -> tuple[PocketSphinxValueFunction, list[str]]:
    """The black-box value function of ``transcript`` under ``recognizer``'s acoustic model, and its K words.

    See ``PocketSphinxValueFunction`` for the score. Columns: one per word, then the whole transcript.
    """
    fn = PocketSphinxValueFunction(recognizer, transcript)
    if recognizer.sample_rate != MODEL_SAMPLE_RATE:
        logger.info("the value function resamples its %d Hz inputs to %d Hz", recognizer.sample_rate,
                    MODEL_SAMPLE_RATE)
    return fn, list(fn.words)
