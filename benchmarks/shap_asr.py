"""Our batched KernelSHAP against shap.KernelExplainer: same model, features and number of coalitions, one run.

Model: a small seeded CNN on a log-mel spectrogram (untrained: speed does not depend on the weights),
K = 8 log-softmax outputs, of a 1.5 s synthetic waveform at 16 kHz; features: ``--segments`` equal
time segments (64), silence masking; ``--coalitions`` coalitions (2048) besides the empty and full ones.
Four timings, each the best of ``--repeats`` rounds (the cases interleaved) after one warm-up:

1. floor: the bare model over exactly the masked waveforms shap evaluated (built beforehand, not
   timed), in batches of ``--batch``;
2. shap: ``shap.KernelExplainer`` end to end (its sampling, its model calls through the same
   ``AudioGame`` with the same batch size, its solve), ``l1_reg=False``;
3. ours: ``kernel_shap`` with its own sampling, end to end;
4. ours on shap's coalitions and kernel weights: the values must equal shap's within 1e-5 of their
   largest magnitude (the maximum absolute difference is printed; exit status 1 if not).

Prints a table and, as the last line, one JSON object (seconds, ratios to the floor, the values' max abs
difference, additivity errors, device, M). Goal on a GPU: ours within 2x of the floor.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/shap_asr.py [--device auto|cpu|cuda] [--segments 64]
[--coalitions 2048] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

from audioxai.explain.shap_asr import AudioFeatures, AudioGame, kernel_shap, shap_kernel
from audioxai.features.spectrogram import log_mel_spectrogram
from audioxai.runtime import best_wall_times, resolve_device

SAMPLE_RATE, SECONDS, OUTPUTS = 16000, 1.5, 8


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallCNN(nn.Module):
    """Log-mel (64 bands, 10 ms hop) -> three conv blocks -> global average -> K log-probabilities."""

    def __init__(self, outputs: int = OUTPUTS) -> None:
        super().__init__()
        self.net = nn.Sequential(*_conv_block(1, 8), nn.MaxPool2d(2), *_conv_block(8, 16), nn.MaxPool2d(2),
                                 *_conv_block(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, outputs))

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        mel = log_mel_spectrogram(waveforms, SAMPLE_RATE, n_mels=64, hop_length=160)
        return self.net((mel[:, None] + 40.0) / 40.0).log_softmax(dim=1)


def synthetic_waveform(num_samples: int, seed: int = 0) -> torch.Tensor:
    """Three gliding harmonic 'syllables' over low noise, seeded."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / SAMPLE_RATE
    pitch = 120 + 40 * torch.sin(2 * torch.pi * 0.7 * t)
    phase = 2 * torch.pi * torch.cumsum(pitch, 0) / SAMPLE_RATE
    voice = sum(torch.sin(h * phase) / h for h in range(1, 8))
    envelope = torch.sin(torch.pi * t * 3 / SECONDS).clamp_min(0) ** 2
    return 0.2 * voice * envelope + 0.01 * torch.randn(num_samples, generator=g)


def report(args: argparse.Namespace, device: torch.device, batch: int, seconds: dict[str, float],
           results: dict[str, object], floor_evaluations: int) -> bool:
    """Print the table and the JSON line; True when ours on shap's coalitions equals shap within tolerance."""
    theirs, ours, fed = results["shap"], results["ours"], results["ours_shap_coalitions"]
    difference = float((fed.values - theirs.values).abs().max())
    tolerance = 1e-5 * float(theirs.values.abs().max())
    evaluations = {"floor": floor_evaluations, "shap": theirs.num_evaluations, "ours": ours.num_evaluations,
                   "ours_shap_coalitions": fed.num_evaluations}
    print(f"torch {torch.__version__}, device {device}, {args.threads} CPU thread(s), M={args.segments} time "
          f"segments of {SECONDS} s at {SAMPLE_RATE} Hz, K={OUTPUTS} outputs, {args.coalitions} coalitions, "
          f"batch {batch}")
    print(f"{'case':<24}{'seconds':>10}{'evaluations':>13}{'x floor':>9}{'max additivity error':>22}")
    additivity = {"shap": theirs.max_additivity_error, "ours": ours.max_additivity_error,
                  "ours_shap_coalitions": fed.max_additivity_error}
    for name, s in seconds.items():
        err = f"{additivity[name]:.2e}" if name in additivity else "-"
        print(f"{name:<24}{s:>10.3f}{evaluations[name]:>13}{s / seconds['floor']:>9.2f}{err:>22}")
    print(f"ours on shap's coalitions vs shap: max |difference| {difference:.3e} (tolerance {tolerance:.3e})")
    ratios = {f"{name}/floor": round(s / seconds["floor"], 3) for name, s in seconds.items() if name != "floor"}
    print(json.dumps({"device": str(device), "M": args.segments, "K": OUTPUTS, "coalitions": args.coalitions,
                      "batch": batch, "seconds": {k: round(v, 4) for k, v in seconds.items()}, "ratios": ratios,
                      "max_abs_difference": difference, "values_equal": difference <= tolerance,
                      "max_additivity_error": additivity, "evaluations": evaluations}))
    return difference <= tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--segments", type=int, default=64)
    parser.add_argument("--coalitions", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None,
                        help="waveforms per model call; default 2048 on CUDA, 256 on the CPU")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    batch = args.batch or (2048 if device.type == "cuda" else 256)
    torch.manual_seed(0)
    model = SmallCNN().to(device).eval()
    num_samples = int(SECONDS * SAMPLE_RATE)
    features = AudioFeatures.time_segments(num_samples, SAMPLE_RATE, num_segments=args.segments)
    game = AudioGame(synthetic_waveform(num_samples).to(device), features, model, batch_size=batch)

    shap_run = shap_kernel(game, nsamples=args.coalitions, seed=0)  # warm-up, and the coalitions shap evaluates
    seen = torch.cat([torch.zeros(1, args.segments), torch.ones(1, args.segments),
                      shap_run.details["coalitions"].float()]).to(device)
    with torch.no_grad():
        waveforms = torch.cat([game.masker(z) for z in seen.split(batch)])

    def floor() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(w) for w in waveforms.split(batch)])

    cases = {
        "floor": floor,
        "shap": lambda: shap_kernel(game, nsamples=args.coalitions, seed=0),
        "ours": lambda: kernel_shap(game, num_coalitions=args.coalitions, seed=0),
        "ours_shap_coalitions": lambda: kernel_shap(game, coalitions=shap_run.details["coalitions"],
                                                    weights=shap_run.details["weights"]),
    }
    for name, fn in cases.items():
        if name != "shap":
            fn()  # warm-up
    seconds, results = best_wall_times(cases, args.repeats, device)
    equal = report(args, device, batch, seconds, results, len(waveforms))
    if not equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
