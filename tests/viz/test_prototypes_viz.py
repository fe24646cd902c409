import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from audioxai.viz.prototypes import importance_explorer  # noqa: E402


def test_the_importance_explorer_offers_each_method_and_redraws_on_every_control():
    torch.manual_seed(0)
    x = 0.1 * torch.randn(3, 8000)  # 0.5 s at 16 kHz: 25 frames of 20 ms
    maps = {"prototype_ema": torch.rand(3, 25), "gradcam": torch.rand(3, 25)}
    labels = torch.zeros(3, 25, dtype=torch.long)
    labels[:, 10:15] = 1
    box = importance_explorer(x, 16000, maps, labels, captions=["a", "b", "c"])
    method, threshold = box.children[0].children
    assert list(method.options) == ["prototype_ema", "gradcam"]
    assert box.children[1].max == 2
    threshold.value = 0.8
    method.value = "gradcam"
    box.children[1].value = 2
    assert box.rendered == [("prototype_ema", 0, 0.5), ("prototype_ema", 0, 0.8), ("gradcam", 0, 0.8),
                            ("gradcam", 2, 0.8)]
