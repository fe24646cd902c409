"""Explanations per second: L-MAC (one classifier pass + the decoder) against Integrated Gradients and SmoothGrad.

Same classifier (the chapter's in-book HuBERT-architecture encoder, untrained: speed does not depend
on the weights), same batch of 1 s clips at 16 kHz, same mask domain (stft by default), one run:
each method's time is the best of ``--repeats`` rounds after one warm-up. IG uses 50 steps, SmoothGrad
8 noisy samples. Prints a table and, as the last line, one JSON object with the ratios
(IG time / L-MAC time and SmoothGrad time / L-MAC time). Goal on a GPU: L-MAC at least 20x faster than IG-50.

Run: ``.venv/bin/python benchmarks/lmac_latency.py [--device auto|cpu|cuda] [--batch N] [--domain stft|waveform]``.
"""

from __future__ import annotations

import argparse
import json

import torch

from audioxai.explain.lmac import LMAC, LMACConfig
from audioxai.explain.mask_baselines import attribution_masks
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig
from audioxai.runtime import best_wall_times, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="default 64 on CUDA, 8 on the CPU")
    parser.add_argument("--domain", default="stft", choices=["stft", "waveform"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    batch = args.batch or (64 if device.type == "cuda" else 8)
    torch.manual_seed(0)
    classifier = HubertClassifier(HubertClassifierConfig()).to(device).eval()
    lmac = LMAC(classifier, LMACConfig(mask_domain=args.domain, device=str(device))).to(device).eval()
    x = 0.1 * torch.randn(batch, 16000, device=device)
    cases = {
        "lmac": lambda: lmac.explain(x),
        "integrated_gradients_50": lambda: attribution_masks(classifier, x, "integrated_gradients", args.domain,
                                                             ig_steps=50),
        "smoothgrad_8": lambda: attribution_masks(classifier, x, "smoothgrad", args.domain, num_samples=8),
    }
    for fn in cases.values():  # warm-up
        fn()
    seconds, _ = best_wall_times(cases, args.repeats, device)
    print(f"torch {torch.__version__}, device {device}, {args.threads} CPU thread(s), batch {batch} x 1 s at 16 kHz, "
          f"{args.domain} masks")
    print(f"{'method':<26}{'seconds':>10}{'explanations/s':>16}{'x L-MAC time':>14}")
    for name, s in seconds.items():
        print(f"{name:<26}{s:>10.4f}{batch / s:>16.1f}{s / seconds['lmac']:>14.1f}")
    ratios = {f"{name}/lmac": round(s / seconds["lmac"], 2) for name, s in seconds.items() if name != "lmac"}
    print(json.dumps({"device": str(device), "batch": batch, "domain": args.domain, "ratios": ratios}))


if __name__ == "__main__":
    main()
