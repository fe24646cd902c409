import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from audioxai.explain.lmac import LMAC, LMACConfig, LMACHistory  # noqa: E402
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig  # noqa: E402
from audioxai.models.training import TrainHistory  # noqa: E402
from audioxai.viz.lmac import lmac_explorer, plot_lmac_curves, plot_mask_over_phonemes, threshold_mask  # noqa: E402


def test_mask_figure_has_one_panel_per_method_and_labels_each_phoneme():
    x = 0.1 * torch.randn(8000)
    masks = {"lmac": torch.rand(65, 126), "gradcam": torch.rand(8000)}
    phonemes = [("s", 0.05, 0.1), ("ˈɪ", 0.1, 0.2)]
    fig = plot_mask_over_phonemes(x, masks, 16000, phonemes, n_fft=128, hop_length=64)
    assert len(fig.axes) >= 3
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts == ["s", "ˈɪ"]


def test_curves_and_thresholds():
    fig = plot_lmac_curves(TrainHistory([1.0, 0.5], [1.1, 0.6], [0.3, 0.6]),
                           LMACHistory([2.0, 1.0], [1.0, 0.5], [2.0, 3.0], [0.5, 0.3], [1.0, 0.9], [0.5, 0.8]))
    assert len(fig.axes) == 3 and len(fig.axes[1].lines) == 3
    assert torch.equal(threshold_mask(torch.tensor([0.2, 0.6]), 0.5), torch.tensor([0.0, 0.6]))


def test_the_explorer_renders_and_reacts_to_the_threshold():
    torch.manual_seed(0)
    cfg = HubertClassifierConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_channels=16,
                                 num_classes=4, num_samples=8000)
    lmac = LMAC(HubertClassifier(cfg).eval(), LMACConfig(channels=6, n_fft=128, hop_length=64, device="cpu"))
    x = 0.1 * torch.randn(2, 8000)
    box = lmac_explorer(lmac, x, {"lmac": lmac(x).detach()}, [[("s", 0.1, 0.2)]] * 2, [3, 4])
    threshold = box.children[0].children[1]
    threshold.value = 0.5
    box.children[1].value = 1
    assert box.rendered == [("lmac", 0, 0.0), ("lmac", 0, 0.5), ("lmac", 1, 0.5)]
