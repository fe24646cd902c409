import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from audioxai.data.speech import Segment  # noqa: E402
from audioxai.viz.shap_asr import keep_segments, patch_grid, word_listener  # noqa: E402

BOUNDS = [(0.0, 0.25, 0.0, 8000.0), (0.25, 0.5, 0.0, 8000.0), (0.5, 0.75, 0.0, 8000.0), (0.75, 1.0, 0.0, 8000.0)]


def test_keep_segments_leaves_only_the_top_positive_segments_audible():
    x = torch.ones(16000)
    kept = keep_segments(x, 16000, torch.tensor([0.5, -2.0, 3.0, 0.1]), BOUNDS, top=3)
    # top 3 by value: segments 2, 0, 3 (all positive); segment 1 is negative and silent
    assert kept[:4000].eq(1).all() and kept[4000:8000].eq(0).all() and kept[8000:].eq(1).all()
    kept = keep_segments(x, 16000, torch.tensor([0.5, -2.0, 3.0, 0.1]), BOUNDS, top=1)
    assert kept.sum() == 4000 and kept[8000:12000].eq(1).all()
    # a negative value is never kept even when it ranks in the top
    assert keep_segments(x, 16000, torch.tensor([-1.0, -2.0, -3.0, -4.0]), BOUNDS, top=2).eq(0).all()


def test_patch_grid_places_time_major_patches_by_their_boxes():
    bounds = [(t0, t0 + 0.5, f0, f1) for t0 in (0.0, 0.5) for f0, f1 in ((0.0, 1000.0), (1000.0, 8000.0))]
    grid, t_edges, f_edges = patch_grid(torch.tensor([1.0, 2.0, 3.0, 4.0]), bounds)
    np.testing.assert_array_equal(grid, [[1.0, 3.0], [2.0, 4.0]])  # rows: bands (low first), columns: windows
    assert t_edges == [0.0, 0.5, 1.0] and f_edges == [0.0, 1000.0, 8000.0]


def test_the_word_listener_offers_each_utterances_words_and_redraws_on_every_control():
    torch.manual_seed(0)
    waves = [0.1 * torch.randn(16000), 0.1 * torch.randn(16000)]
    words = [[Segment("one", 0.1, 0.4), Segment("two", 0.5, 0.9)], [Segment("three", 0.2, 0.8)]]
    values = [torch.randn(4, 3), torch.randn(4, 2)]
    names = [["one", "two", "(transcript)"], ["three", "(transcript)"]]
    box = word_listener(waves, 16000, words, values, [BOUNDS, BOUNDS], names, ["one two", "three"])
    utterance, word, count = box.children[0].children
    assert [label for label, _ in word.options] == ["one", "two", "(transcript)"]
    word.value = 1
    count.value = 2
    utterance.value = 1
    assert [label for label, _ in word.options] == ["three", "(transcript)"]
    assert box.rendered == [(0, 0), (0, 1), (0, 1), (1, 0)]
