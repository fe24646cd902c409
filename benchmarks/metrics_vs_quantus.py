"""Our metrics against Quantus 0.6.0 and against the floor, on the same work, in one run, printed as ratios.

For each metric: our batched torch implementation, Quantus on the same model, inputs, attributions
and explainer (``normalise=False`` with our per-sample pre-normalisation, ``batch_size`` = the whole
batch, so both do the same passes), and the floor: only the bare batched forward and backward
passes the metric cannot avoid, in the batch sizes it uses.

| metric                    | settings                           | floor                                   |
|---------------------------|------------------------------------|-----------------------------------------|
| faithfulness_correlation  | 100 runs, subsets of 224 of 4096   | forwards of B + 100 B rows, 256 a pass  |
| avg_sensitivity           | 20 noisy samples (amplitudes: each | Saliency of 20 B rows, 256 a call       |
|                           | one's default; the cost is alike)  |                                         |
| sparseness                | Gini of abs(attributions)          | one sort of the batch's attributions    |
| random_logit              | SSIM, 10 classes                   | 1 Saliency call on the batch            |
| model_parameter_rand.     | cascading, Spearman, all 9 layers  | 9 Saliency calls on the batch           |

Data: log-mel spectrograms (1 x 64 x 64, dB) of coloured noise, an untrained ``DigitCNN`` at 64 (the
chapter's architecture: 4 conv + 4 batch-norm + 1 linear layer), targets = its predictions,
Saliency attributions. Each timing is the best of ``--repeats`` (default 3) interleaved rounds after
one warm-up on 4 samples, with ``--threads`` CPU threads (default 1: on a shared machine more
threads make CPU timings swing several-fold).

Run: ``.venv/bin/python benchmarks/metrics_vs_quantus.py [--device auto|cpu|cuda] [--samples N]``.
``--samples`` defaults to 256 on CUDA and 32 on the CPU (Quantus's MPRT and sensitivity take
minutes for 256 spectrograms there). The last line printed is one JSON object of the ratios.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np
import quantus
import torch

from audioxai.explain.gradients import saliency
from audioxai.features.spectrogram import log_mel_spectrogram
from audioxai.metrics.base import normalise_per_sample
from audioxai.metrics.complexity import sparseness
from audioxai.metrics.faithfulness import faithfulness_correlation
from audioxai.metrics.randomisation import model_parameter_randomisation, random_logit, randomisable_layers
from audioxai.metrics.robustness import avg_sensitivity
from audioxai.models.cnn import DigitCNN, first_pool_for
from audioxai.runtime import best_wall_times

NUM_CLASSES, NUM_RUNS, SUBSET_SIZE, NUM_SAMPLES, RADIUS = 10, 100, 224, 20, 0.2
SIZE = 64  # spectrograms of SIZE mel bands x SIZE frames
FORWARD_BATCH = 256  # faithfulness_correlation's and avg_sensitivity's default batch_size


def spectrograms(n: int, device: str) -> torch.Tensor:
    """(n, 1, 64, 64) log-mel spectrograms in dB of noise with a random spectral tilt per sample."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 160 * 63, generator=gen)
    tilt = torch.rand(n, 1, generator=gen) * 0.95
    coloured = torch.cat([noise[:, :1], noise[:, 1:] + tilt * noise[:, :-1]], dim=1)
    return log_mel_spectrogram(coloured, 16000, n_mels=64, hop_length=160)[:, None, :, :64].to(device)


def quantus_explainer(device: str) -> Callable[..., np.ndarray]:
    """Quantus's ``explain_func``: the same Saliency on ``device``, normalised per sample, as numpy."""

    def explain(model, inputs, targets, **_) -> np.ndarray:
        x = torch.as_tensor(inputs, device=device)
        return normalise_per_sample(saliency(model, x, torch.as_tensor(targets, device=device))).cpu().numpy()

    return explain


def cases(model, x, y, a, device: str) -> dict[str, dict[str, Callable[[], object]]]:
    """Per metric: ``ours``, ``quantus`` and ``floor`` as zero-argument callables on this batch."""
    n, features = len(x), x[0].numel()
    xq, yq, aq = x.cpu().numpy(), y.cpu().numpy(), normalise_per_sample(a).cpu().numpy()
    common = dict(model=model, x_batch=xq, y_batch=yq, a_batch=aq, explain_func=quantus_explainer(device),
                  device=device, batch_size=n)
    off = dict(normalise=False, disable_warnings=True, display_progressbar=False)
    layers = len(randomisable_layers(model))

    def forwards(rows: int, batch_size: int = FORWARD_BATCH) -> Callable[[], None]:
        chunk = x[torch.arange(batch_size, device=x.device) % n]

        def run() -> None:
            with torch.no_grad():
                model(x)
                for start in range(0, rows, batch_size):
                    model(chunk[: min(batch_size, rows - start)])
        return run

    def explains(k: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(k):
                saliency(model, x, y)
        return run

    def explains_rows(rows: int, batch_size: int = FORWARD_BATCH) -> Callable[[], None]:
        index = torch.arange(batch_size, device=x.device) % n
        chunk, targets = x[index], y[index]

        def run() -> None:
            for start in range(0, rows, batch_size):
                stop = min(batch_size, rows - start)
                saliency(model, chunk[:stop], targets[:stop])
        return run

    return {
        "faithfulness_correlation": dict(
            ours=lambda: faithfulness_correlation(model, x, y, a, subset_fraction=SUBSET_SIZE / features,
                                                  num_runs=NUM_RUNS),
            quantus=lambda: quantus.FaithfulnessCorrelation(nr_runs=NUM_RUNS, subset_size=SUBSET_SIZE,
                                                            return_aggregate=False, **off)(**common),
            floor=forwards(NUM_RUNS * n)),
        "avg_sensitivity": dict(
            ours=lambda: avg_sensitivity(model, x, y, saliency, num_samples=NUM_SAMPLES, attributions=a),
            quantus=lambda: quantus.AvgSensitivity(nr_samples=NUM_SAMPLES, lower_bound=RADIUS, **off)(**common),
            floor=explains_rows(NUM_SAMPLES * n)),
        "sparseness": dict(
            ours=lambda: sparseness(a),
            quantus=lambda: quantus.Sparseness(abs=True, **off)(**common),
            floor=lambda: a.flatten(1).abs().sort(dim=1)),
        "random_logit": dict(
            ours=lambda: random_logit(model, x, y, saliency, num_classes=NUM_CLASSES, attributions=a),
            quantus=lambda: quantus.RandomLogit(num_classes=NUM_CLASSES, abs=False, **off)(**common),
            floor=explains(1)),
        "model_parameter_randomisation": dict(
            ours=lambda: model_parameter_randomisation(model, x, y, saliency, attributions=a),
            quantus=lambda: quantus.MPRT(abs=True, **off)(**common),
            floor=explains(layers)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--samples", type=int, default=None, help="default 256 on CUDA, 32 on the CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: stable on a shared machine)")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    n = args.samples or (256 if device == "cuda" else 32)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DigitCNN(num_classes=NUM_CLASSES, input_mean=-40.0, input_std=20.0,
                     first_pool=first_pool_for(SIZE)).to(device).eval()
    x = spectrograms(n, device)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    a = saliency(model, x, y)
    print(f"torch {torch.__version__}, quantus {quantus.__version__}, device {device}, {args.threads} CPU thread(s), "
          f"{n} spectrograms 1x64x64"
          + ("" if args.samples or device == "cuda" else " (CPU default; --samples 256 for the full run)"))
    warm = cases(model, x[:4], y[:4], a[:4], device)
    for case in warm.values():
        for fn in case.values():
            fn()
    header = (f"{'metric':<30}{'ours s':>9}{'quantus s':>11}{'floor s':>9}{'ours/floor':>12}{'quantus/floor':>15}"
              f"{'quantus/ours':>14}")
    print(header + "\n" + "-" * len(header))
    ratios = {}
    for name, case in cases(model, x, y, a, device).items():
        t, _ = best_wall_times(case, args.repeats, device)
        ratios[name] = {"ours/floor": round(t["ours"] / t["floor"], 2),
                        "quantus/floor": round(t["quantus"] / t["floor"], 2),
                        "quantus/ours": round(t["quantus"] / t["ours"], 2)}
        r = ratios[name]
        print(f"{name:<30}{t['ours']:>9.3f}{t['quantus']:>11.3f}{t['floor']:>9.3f}{r['ours/floor']:>12.2f}"
              f"{r['quantus/floor']:>15.2f}{r['quantus/ours']:>14.2f}")
    print(json.dumps({"device": device, "samples": n, "ratios": ratios}))


if __name__ == "__main__":
    main()
