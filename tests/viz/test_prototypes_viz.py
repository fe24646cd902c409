import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from audioxai.models.detector import DetectorConfig, SpoofDetector  # noqa: E402
from audioxai.viz.prototypes import frame_gate, importance_explorer, plot_importance_over_spectrogram  # noqa: E402


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


def test_the_gate_gives_each_sample_its_nearest_frame_and_plots_follow_the_detectors_frames():
    keep = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    label_centres = (torch.arange(5, dtype=torch.float64) + 0.5) * 320  # label frame k = [320k, 320k + 320)
    assert torch.equal(frame_gate(keep, 1600, label_centres), keep.repeat_interleave(320))
    late = frame_gate(keep, 1600, label_centres + 352)  # wav2vec2 framing of a 64 ms field: 352 samples later
    assert late[:672].eq(1).all() and late[672:992].eq(0).all() and late[992:1600].eq(1).all()
    tiny = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_channels=16, conformer_dim=32,
                num_head_tokens=2, conformer_layers=1, conformer_heads=2, conformer_ffn_dim=64, depthwise_kernel_size=7)
    detector = SpoofDetector(DetectorConfig(**tiny, first_conv_kernel=634))
    times = detector.frame_centres(8000) / 16000
    w = torch.rand(len(times))
    fig = plot_importance_over_spectrogram(0.1 * torch.randn(8000), 16000, {"prototype_ema": w},
                                           torch.zeros(25), frame_times=times)
    x, y = fig.axes[1].lines[0].get_data()
    assert len(x) == 22 and abs(x[0] - 511.5 / 16000) < 1e-9 and abs(y.max() - 1.0) < 1e-9
    plain = plot_importance_over_spectrogram(0.1 * torch.randn(8000), 16000, {"w": torch.rand(25)}, torch.zeros(25))
    assert abs(plain.axes[1].lines[0].get_data()[0][0] - 0.01) < 1e-9
