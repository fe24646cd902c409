"""Interactive widgets for exploring the corpora in JupyterLab (they need a live kernel)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from audioxai.data.mixing import mix_at_snr
from audioxai.data.noise import NOISE_TYPES, make_noise
from audioxai.data.speech import ENGLISH_VOICES, synthesize
from audioxai.data.synthdigits import SPEAKER_VARIANTS
from audioxai.viz.figures import audio_player, plot_alignment

__all__ = ["synthesis_explorer", "explanation_explorer", "threshold_explorer"]


def synthesis_explorer(text: str = "place blue at seven now", sample_rate: int = 16000) -> widgets.VBox:
    """Type a sentence, pick accent, variant, rate, pitch, noise and SNR; see the aligned spectrogram and listen."""
    controls = {
        "text": widgets.Text(value=text, description="text"),
        "voice": widgets.Dropdown(options=ENGLISH_VOICES, value="en-us", description="accent"),
        "variant": widgets.Dropdown(options=SPEAKER_VARIANTS, value="m3", description="variant"),
        "rate": widgets.IntSlider(value=175, min=80, max=400, step=5, description="rate (wpm)"),
        "pitch": widgets.IntSlider(value=50, min=0, max=100, description="pitch"),
        "noise": widgets.Dropdown(options=("none",) + tuple(NOISE_TYPES), value="none", description="noise"),
        "snr_db": widgets.FloatSlider(value=5.0, min=-10.0, max=30.0, step=1.0, description="SNR (dB)"),
    }
    output = widgets.Output()

    def render(_=None) -> None:
        with output:
            output.clear_output(wait=True)
            c = {k: w.value for k, w in controls.items()}
            if not any(ch.isalnum() for ch in c["text"]):
                print("Type at least one word.")
                return
            utt = synthesize(c["text"], voice=c["voice"], variant=c["variant"], rate=c["rate"], pitch=c["pitch"],
                             sample_rate=sample_rate)
            wave = utt.waveform
            if c["noise"] != "none":
                wave = mix_at_snr(wave, make_noise(c["noise"], wave.numel(), sample_rate, seed=0), c["snr_db"]).mixture
            fig = plot_alignment(wave, sample_rate, utt.words, utt.phonemes, title=f"{c['voice']}+{c['variant']}")
            plt.show(fig)
            display(audio_player(wave, sample_rate))

    button = widgets.Button(description="synthesise", button_style="primary")
    button.on_click(render)
    render()
    return widgets.VBox([widgets.HBox([controls["text"], button]),
                         widgets.HBox([controls["voice"], controls["variant"], controls["noise"]]),
                         widgets.HBox([controls["rate"], controls["pitch"], controls["snr_db"]]), output])


def explanation_explorer(explained: dict[tuple[str, int], tuple]) -> widgets.VBox:
    """Pick dataset, resolution, method and sample; see the input beside the method's attribution.

    ``explained[(dataset, resolution)] = (data, attributions_by_method)`` as the study returns them.
    """
    from audioxai.viz.explanations import plot_attribution, plot_input

    keys = sorted(explained)
    datasets = sorted({d for d, _ in keys})
    dataset = widgets.Dropdown(options=datasets, description="dataset")
    resolution = widgets.Dropdown(description="resolution")
    method = widgets.Dropdown(options=sorted(next(iter(explained.values()))[1]), description="method")
    sample = widgets.IntSlider(min=0, max=0, description="sample")
    output = widgets.Output()

    def sync(_=None) -> None:
        resolution.options = sorted(r for d, r in keys if d == dataset.value)
        sample.max = len(explained[(dataset.value, resolution.value)][0]) - 1

    def render(_=None) -> None:
        data, attributions = explained[(dataset.value, resolution.value)]
        with output:
            output.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
            plot_input(axes[0], data.inputs[sample.value], data.kind, data.duration, data.sample_rate,
                       f"digit {int(data.labels[sample.value])}")
            plot_attribution(axes[1], attributions[method.value][sample.value], data.kind, data.duration,
                             data.sample_rate, method.value.replace("_", " "))
            fig.tight_layout()
            plt.show(fig)

    dataset.observe(lambda change: (sync(), render()), names="value")
    for control in (resolution, method, sample):
        control.observe(render, names="value")
    sync()
    render()
    return widgets.VBox([widgets.HBox([dataset, resolution, method]), sample, output])


def threshold_explorer(methods: Sequence[str], count: int, draw: Callable[[str, int, float], tuple],
                       sample_label: str = "sample", threshold: float = 0.0) -> widgets.VBox:
    """Method and threshold controls over a sample slider and one output area (chapters 2 and 3).

    ``draw(method, index, threshold)`` returns ``(figure, audio widget)`` for that choice; both are shown
    (the figure then closed) on every change. The box's ``rendered`` lists each ``(method, sample,
    threshold)`` drawn, in order, for tests and for notebooks that log it.
    """
    method = widgets.Dropdown(options=list(methods), description="method")
    sample = widgets.IntSlider(min=0, max=count - 1, description=sample_label)
    level = widgets.FloatSlider(min=0.0, max=0.95, step=0.05, value=threshold, description="threshold")
    output = widgets.Output()
    rendered: list[tuple] = []

    def render(_=None) -> None:
        fig, audio = draw(method.value, sample.value, level.value)
        with output:
            output.clear_output(wait=True)
            display(fig)
            plt.close(fig)
            display(audio)
        rendered.append((method.value, sample.value, level.value))

    for control in (method, sample, level):
        control.observe(render, names="value")
    render()
    box = widgets.VBox([widgets.HBox([method, level]), sample, output])
    box.rendered = rendered
    return box
