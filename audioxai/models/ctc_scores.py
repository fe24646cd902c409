"""What SHAP explains of a CTC recogniser: forced alignment, per-word log-probabilities, confidence.

What is explained (``word_log_prob_fn``): the CTC forced alignment of a transcript (by default the
greedy hypothesis) is computed once on the unmasked utterance; for a (masked) waveform, output k is
``sum_{t in frames(word k)} log p_t(token_t)``, the log-probability of word k's characters along
that fixed path, and the last output is the log-likelihood of the whole transcript,
``log p(y | x) = -CTC(y, x)`` summed over every path (Graves et al., 2006).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from audioxai.errors import AudioInputError, ConfigError
from audioxai.models.asr import BLANK_ID, VOCAB, CTCRecognizer, _delimiter, decode_ids, encode_transcript

logger = logging.getLogger(__name__)

__all__ = ["WordAlignment", "forced_alignment", "word_column", "word_log_prob_fn", "confidence", "ValueFunction"]

ValueFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class WordAlignment:
    """One word of a CTC forced alignment: its frames ``[frame_start, frame_end)`` and per-frame tokens.

    ``frames`` are the frames aligned to the word's characters (blanks and repeats between them are
    not included in ``frames`` but are inside the span); ``tokens`` the character id at each.
    """

    word: str
    frame_start: int
    frame_end: int
    frames: torch.Tensor
    tokens: torch.Tensor

    def seconds(self, frame_seconds: float) -> tuple[float, float]:
        """The span ``(start, end)`` in seconds, for frames ``frame_seconds`` apart."""
        return self.frame_start * frame_seconds, self.frame_end * frame_seconds



def forced_alignment(log_probs: torch.Tensor, transcript: str, vocab: Sequence[str] = VOCAB,
                     blank_id: int = BLANK_ID) -> list[WordAlignment]:
    """CTC forced alignment (Viterbi, ``torchaudio.functional.forced_align``) of ``transcript``, per word.

    Args:
        log_probs: ``(T, V)`` (or ``(1, T, V)``) log-posteriors of one utterance.
        transcript: the words to align; empty gives ``[]``.

    Raises:
        AudioInputError: the utterance has fewer frames than the transcript needs.
    """
    lp = log_probs.detach().float().cpu()
    lp = lp[0] if lp.ndim == 3 and lp.shape[0] == 1 else lp
    targets = encode_transcript(transcript, vocab)
    if not targets:
        return []
    need = len(targets) + sum(a == b for a, b in zip(targets, targets[1:]))
    if lp.ndim != 2 or lp.shape[0] < need:
        raise AudioInputError(f"the transcript {transcript!r} needs at least {need} frames but the log-posteriors have "
                              f"shape {tuple(lp.shape)}: align it to a longer utterance")
    path, scores = AF.forced_align(lp[None], torch.tensor([targets], dtype=torch.int32), blank=blank_id)
    spans = AF.merge_tokens(path[0], scores[0].exp(), blank=blank_id)
    delimiter_id = vocab.index(_delimiter(vocab)) if _delimiter(vocab) else None
    words, current = [], []
    for token, span in zip(targets + [delimiter_id], spans + [None]):
        if span is not None and token != delimiter_id:
            current.append(span)
            continue
        if current:
            frames = torch.cat([torch.arange(s.start, s.end) for s in current])
            tokens = torch.cat([torch.full((s.end - s.start,), s.token) for s in current])
            words.append(WordAlignment(decode_ids([s.token for s in current], vocab, blank_id),
                                       current[0].start, current[-1].end, frames, tokens))
        current = []
    return words


def word_column(words: Sequence[WordAlignment], index: int) -> int:
    """``index`` if it names a word of the transcript (its value-function column), else a ConfigError."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(words):
        raise ConfigError(f"word index {index!r} is past the transcript: it has {len(words)} words (indices 0 to "
                          f"{len(words) - 1}); column {len(words)} is the whole-utterance log-likelihood")
    return index


def word_log_prob_fn(recognizer: CTCRecognizer, waveform: torch.Tensor,
                     transcript: str | None = None) -> tuple[ValueFunction, list[WordAlignment]]:
    """The value function of one utterance: per-word log-probabilities and the transcript's log-likelihood.

    The forced alignment of ``transcript`` (default: the greedy hypothesis) is computed once on
    ``waveform``; ``fn(waveforms (B, N)) -> (B, K + 1)`` then scores each row along that fixed path.
    ``fn`` is batched (one model call), differentiable when grad is enabled, and its output is on the
    model's device.

    Returns:
        ``(fn, words)``: column k < K is ``words[k]``; column K is ``log p(transcript | waveform)``.
    """
    x = recognizer._check_batch(waveform)
    if recognizer.training:
        logger.warning("the recogniser is in training mode: dropout and masking make the value function random; "
                       "call recognizer.eval() first")
    if x.shape[0] != 1:
        raise AudioInputError(f"word_log_prob_fn explains one utterance, got a batch of {x.shape[0]}")
    with torch.no_grad():
        lp = recognizer.log_probs(x)[0]
    if transcript is None:
        transcript = recognizer.greedy_decode(lp[None])[0]
    words = forced_alignment(lp, transcript, recognizer.vocab, recognizer.blank_id)
    device, num_samples, num_words = recognizer.device, x.shape[1], len(words)
    targets = torch.tensor(recognizer.encode(transcript), dtype=torch.long)
    empty = torch.zeros(0, dtype=torch.long)
    frames = torch.cat([w.frames for w in words] or [empty]).to(device)
    tokens = torch.cat([w.tokens for w in words] or [empty]).to(device)
    owner = torch.cat([torch.full((len(w.frames),), k) for k, w in enumerate(words)] or [empty]).to(device)

    def fn(waveforms: torch.Tensor) -> torch.Tensor:
        batch = recognizer._check_batch(waveforms)
        if batch.shape[1] != num_samples:
            raise AudioInputError(f"the value function was built for {num_samples}-sample waveforms, got "
                                  f"{batch.shape[1]}: mask the utterance without changing its length")
        logp = recognizer.log_probs(batch)
        size, length = logp.shape[:2]
        picked = logp[:, frames, tokens]
        per_word = torch.zeros(size, num_words, device=logp.device, dtype=logp.dtype).index_add(1, owner, picked)
        nll = F.ctc_loss(logp.transpose(0, 1), targets.repeat(size).to(logp.device),
                         torch.full((size,), length, dtype=torch.long), torch.full((size,), len(targets), dtype=torch.long),
                         blank=recognizer.blank_id, reduction="none", zero_infinity=False)
        return torch.cat([per_word, -nll[:, None]], dim=1)

    return fn, words


def confidence(log_probs: torch.Tensor) -> float:
    """Mean over frames of the largest posterior, ``mean_t max_v p_t(v)``, of one utterance ``(T, V)``."""
    lp = log_probs.detach()
    lp = lp[0] if lp.ndim == 3 and lp.shape[0] == 1 else lp
    if lp.ndim != 2 or lp.shape[0] == 0:
        raise ConfigError(f"confidence takes the (T, V) log-posteriors of one utterance, got shape {tuple(lp.shape)}")
    return float(lp.float().exp().amax(dim=-1).mean())
