"""Batched top-k dispatch against the per-sample loop: same MoE network, same inputs, one run.

Network: ``MoENetwork`` (untrained, seeded: speed does not depend on the weights) on the log-mel front-end
(16 kHz, 64 mels, 10 ms hop, 1 s clips) with the eight expert families ``make_policy`` gives a clean
wide-band profile. The front-end, stem, scout saliency and router run once, untimed; then the experts'
part is timed both ways on the same features, selection and weights:

1. batched: ``dispatch``, each expert run once on the group of samples that chose it;
2. loop: ``dispatch_loop``, one sample and one expert at a time (the shape the roadmap left undone).

Also timed: the whole forward pass at the accuracy and latency budgets (same weights), with their mean K.
Each time is the best of ``--repeats`` rounds after one warm-up, under ``torch.no_grad``. The two dispatch
outputs must agree within 1e-5 (max abs difference printed; exit status 1 if not). Prints a table and, as
the last line, one JSON object (seconds, ratios loop/batched and latency/accuracy, mean K, max difference).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/moe_dispatch.py [--device auto|cpu|cuda] [--batch N]
[--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace

import torch

from audioxai.moe.frontend import SpectroConfig
from audioxai.moe.network import MoENetwork
from audioxai.moe.policy import make_policy
from audioxai.moe.router import dispatch, dispatch_loop
from audioxai.runtime import best_wall_times, resolve_device

SAMPLE_RATE = 16000
CLEAN_PROFILE = SimpleNamespace(fmax_eff=7000.0, quality_score=0.8, transient_rate=0.1, snr_db_proxy=25.0,
                                spectral_flatness=0.3)


def build(budget: str, device: torch.device) -> MoENetwork:
    spectro = SpectroConfig(kind="logmel", sample_rate=SAMPLE_RATE, n_fft=512, hop_length=160, n_mels=64, fmin=0.0,
                            fmax=8000.0, num_samples=SAMPLE_RATE, reason="benchmark")
    torch.manual_seed(0)
    return MoENetwork(spectro, make_policy(CLEAN_PROFILE, spectro, budget=budget), num_classes=10).to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="default 128 on CUDA, 32 on the CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    batch = args.batch or (128 if device.type == "cuda" else 32)
    accuracy, latency = build("accuracy", device), build("latency", device)
    x = 0.1 * torch.randn(batch, SAMPLE_RATE, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        spec = accuracy.spectrogram(x)
        h, pooled, _, saliency = accuracy._saliency(spec)
        route = accuracy.router(pooled, saliency)
        experts, dim = accuracy.experts.experts, accuracy.experts.embed_dim
        cases = {
            "dispatch_batched": lambda: dispatch(experts, h, route.selected, route.weights, dim),
            "dispatch_loop": lambda: dispatch_loop(experts, h, route.selected, route.weights, dim),
            "forward_accuracy": lambda: accuracy(x),
            "forward_latency": lambda: latency(x),
        }
        for fn in cases.values():  # warm-up
            fn()
        diff = float((cases["dispatch_batched"]() - cases["dispatch_loop"]()).abs().max())
        seconds, _ = best_wall_times(cases, args.repeats, device)
        mean_k = {"accuracy": float(accuracy(x).k.float().mean()), "latency": float(latency(x).k.float().mean())}
    print(f"torch {torch.__version__}, device {device}, {args.threads} CPU thread(s), batch {batch} x 1 s at 16 kHz, "
          f"{len(experts)} experts, mean K accuracy {mean_k['accuracy']:.2f} / latency {mean_k['latency']:.2f}")
    print(f"{'case':<20}{'seconds':>10}{'samples/s':>12}")
    for name, s in seconds.items():
        print(f"{name:<20}{s:>10.4f}{batch / s:>12.1f}")
    print(f"max |batched - loop| = {diff:.2e}")
    ratios = {"loop/batched": round(seconds["dispatch_loop"] / seconds["dispatch_batched"], 2),
              "latency/accuracy_forward": round(seconds["forward_latency"] / seconds["forward_accuracy"], 3)}
    print(json.dumps({"device": str(device), "batch": batch, "num_experts": len(experts), "mean_k": mean_k,
                      "max_abs_diff": diff, "seconds": {k: round(v, 5) for k, v in seconds.items()},
                      "ratios": ratios}))
    if not diff <= 1e-5:
        sys.exit(1)


if __name__ == "__main__":
    main()
