"""Word error rate: the Levenshtein alignment of a hypothesis to a reference, word by word.

``WER = (S + D + I) / N`` with S substitutions, D deletions and I insertions of the minimum-cost
alignment (each costs 1) and N reference words. The corpus WER sums errors and reference words over
all utterances before dividing (so long utterances weigh more), as NIST's sclite does. Lower is better.
Words are compared exactly after splitting on whitespace; normalise case and punctuation first.
"""

from __future__ import annotations

from collections.abc import Sequence

from audioxai.errors import ConfigError

__all__ = ["word_edit_alignment", "word_errors", "word_error_rate", "utterance_wer", "HIGHER_IS_BETTER"]

HIGHER_IS_BETTER = False

Words = str | Sequence[str]


def _words(text: Words) -> list[str]:
    return text.split() if isinstance(text, str) else [str(w) for w in text]


def word_edit_alignment(ref_words: Words, hyp_words: Words) -> list[tuple[str, int | None, int | None]]:
    """A minimum-cost alignment as ``(op, ref_index, hyp_index)`` steps, op in ``ok``, ``sub``, ``del``, ``ins``.

    ``del`` has no hypothesis index, ``ins`` no reference index. Ties between alignments of equal
    cost are broken the same way every time: tracing back from the end, a match or substitution is
    preferred, then a deletion, then an insertion.
    """
    ref, hyp = _words(ref_words), _words(hyp_words)
    rows, cols = len(ref) + 1, len(hyp) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            diagonal = cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    steps: list[tuple[str, int | None, int | None]] = []
    i, j = len(ref), len(hyp)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            steps.append(("ok" if ref[i - 1] == hyp[j - 1] else "sub", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            steps.append(("del", i - 1, None))
            i -= 1
        else:
            steps.append(("ins", None, j - 1))
            j -= 1
    return steps[::-1]


def word_errors(ref: Words, hyp: Words) -> tuple[int, int]:
    """``(S + D + I, N)``: the edit distance in words and the number of reference words."""
    steps = word_edit_alignment(ref, hyp)
    return sum(op != "ok" for op, _, _ in steps), len(_words(ref))


def utterance_wer(ref: Words, hyp: Words) -> float:
    """WER of one utterance, ``(S + D + I) / N``; a ConfigError for an empty reference (undefined)."""
    errors, count = word_errors(ref, hyp)
    if count == 0:
        raise ConfigError("the reference transcript is empty, so its WER is undefined: drop the utterance or "
                          "score it within a corpus with word_error_rate")
    return errors / count


def word_error_rate(refs: Sequence[Words], hyps: Sequence[Words]) -> float:
    """Corpus WER: total word errors over total reference words.

    Raises:
        ConfigError: the lists differ in length, or the references hold no words at all.
    """
    if isinstance(refs, str) or isinstance(hyps, str):
        raise ConfigError("word_error_rate takes lists of transcripts; use utterance_wer for one pair")
    if len(refs) != len(hyps):
        raise ConfigError(f"{len(refs)} references but {len(hyps)} hypotheses: pass one hypothesis per reference")
    errors = total = 0
    for ref, hyp in zip(refs, hyps):
        e, n = word_errors(ref, hyp)
        errors, total = errors + e, total + n
    if total == 0:
        raise ConfigError("the references hold no words, so the WER is undefined: pass non-empty references")
    return errors / total
