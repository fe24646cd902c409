"""Word error rate against hand-worked alignments."""

import pytest

from audioxai.errors import ConfigError
from audioxai.metrics.wer import utterance_wer, word_edit_alignment, word_error_rate, word_errors


def test_identical_transcripts_align_word_for_word():
    assert word_edit_alignment("set blue at one", "set blue at one") == [
        ("ok", 0, 0), ("ok", 1, 1), ("ok", 2, 2), ("ok", 3, 3)]
    assert word_errors("set blue at one", "set blue at one") == (0, 4)


def test_deletion_and_insertion_are_found():
    # place=place, "red" deleted, at=at, two=two, now=now, "please" inserted: 2 errors (all-substitution paths cost 4)
    assert word_edit_alignment("place red at two now", "place at two now please") == [
        ("ok", 0, 0), ("del", 1, None), ("ok", 2, 1), ("ok", 3, 2), ("ok", 4, 3), ("ins", None, 4)]
    assert word_errors("place red at two now", "place at two now please") == (2, 5)


def test_equal_cost_alignments_resolve_to_substitutions():
    # "one soon" -> "soon now" costs 2 either as del one + ins now or as two substitutions; the traceback
    # prefers the diagonal, so the hand-worked answer is ok, sub, ok, sub, sub (3 errors).
    assert word_edit_alignment("bin blue at one soon", "bin green at soon now") == [
        ("ok", 0, 0), ("sub", 1, 1), ("ok", 2, 2), ("sub", 3, 3), ("sub", 4, 4)]
    assert word_errors("bin blue at one soon", "bin green at soon now") == (3, 5)


def test_substitution_is_preferred_to_a_deletion_plus_insertion():
    assert word_edit_alignment("bin red", "bin green") == [("ok", 0, 0), ("sub", 1, 1)]


def test_tie_breaking_is_deterministic():
    # "a b" vs "b a": cost 2 either as two substitutions or as one deletion and one insertion.
    first = word_edit_alignment(["a", "b"], ["b", "a"])
    assert first == word_edit_alignment(["a", "b"], ["b", "a"])
    assert first == [("sub", 0, 0), ("sub", 1, 1)]
    # the traceback prefers a deletion to an insertion at equal cost
    assert word_edit_alignment("a a", "a") == [("del", 0, None), ("ok", 1, 0)]


def test_empty_hypothesis_deletes_every_reference_word():
    assert word_edit_alignment("one two three", "") == [("del", 0, None), ("del", 1, None), ("del", 2, None)]
    assert utterance_wer("one two three", "") == 1.0
    assert word_edit_alignment("", "one") == [("ins", None, 0)]


def test_utterance_wer_can_exceed_one_with_insertions():
    assert utterance_wer("one", "one two three") == pytest.approx(2.0)


def test_corpus_wer_pools_errors_over_reference_words():
    refs = ["set blue at one", "two"]
    hyps = ["set blue one", "three"]
    # 1 deletion over 4 words + 1 substitution over 1 word = 2 / 5 (not the mean of 0.25 and 1.0)
    assert word_error_rate(refs, hyps) == pytest.approx(0.4)


def test_wer_errors_are_clear():
    with pytest.raises(ConfigError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="no words"):
        word_error_rate([""], ["a"])
    with pytest.raises(ConfigError, match="empty"):
        utterance_wer("", "a")
