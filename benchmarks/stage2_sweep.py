"""Chapter 3's stage 2 over learning rates, prototype modes and seeds, on one frozen detector: frame AUCs.

Loads a detector checkpoint (``avg_5_best.pth``, weights only), computes its frozen embeddings of the
spoof corpus once, then trains stage 2 (``train_explainers``: configs/xai_stage2.yaml, early stopping on
the validation loss, as the notebook does) for every ``--lrs`` x ``--modes`` x ``--seeds`` and scores the
test maps against the 20 ms truth: pooled frame AUC (PartialSpoof's protocol), AUC inside partially
spoofed utterances, frame EER, the share of frames with 0.05 < w < 0.95, and the kept epoch. Prints one
line per run as it finishes, a table of means per rate and mode, and, as the last line, one JSON object.

Run: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/stage2_sweep.py
--checkpoint checkpoints/full/03_prototype_xai/avg_5_best.pth [--lrs 1e-3 5e-5] [--modes ema fixed learnable]
[--seeds 0 1 2] [--voices 99] [--utterances 40] [--epochs 30] [--ema-init batch] [--ema-target importance]
[--device auto]`` (the corpus must be the one
the detector was trained on: the same voices, utterances and seed; about 2 minutes per run on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from audioxai.errors import ConfigError
from audioxai.explain.prototypes import EMA_INITS, EMA_TARGETS, PROTOTYPE_MODES, nondegenerate_share
from audioxai.metrics.detection import frame_auc, frame_eer
from audioxai.models.detector import load_detector
from audioxai.runtime import resolve_device
from audioxai.studies import prototype_xai as study


def _rounded(row: dict) -> dict:
    """Scores to 4 decimals for printing; the learning rate as given."""
    return {k: round(v, 4) if isinstance(v, float) and k != "lr" else v for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 5e-5])
    parser.add_argument("--modes", nargs="+", default=list(PROTOTYPE_MODES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--voices", type=int, default=99)  # the full profile's corpus
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ema-init", choices=EMA_INITS, default=None,
                        help="where the ema prototypes start (model.ema_init; default: configs/xai_stage2.yaml's)")
    parser.add_argument("--ema-target", choices=EMA_TARGETS, default=None,
                        help="what the ema prototypes move towards (model.ema_target; default: configs/xai_stage2.yaml's)")
    args = parser.parse_args()
    if unknown := set(args.modes) - set(PROTOTYPE_MODES):
        raise ConfigError(f"--modes {sorted(unknown)}: choose from {', '.join(PROTOTYPE_MODES)}")
    if not args.checkpoint.is_file():
        raise ConfigError(f"--checkpoint {args.checkpoint} not found: run chapter 3 (it writes "
                          f"checkpoints/<profile>/03_prototype_xai/avg_5_best.pth) or pass another file")
    device = resolve_device(args.device)
    detector = load_detector(args.checkpoint).to(device).eval().requires_grad_(False)
    base = study.make_config(num_voices=args.voices, utterances_per_voice=args.utterances, seed=args.corpus_seed,
                             device=str(device), seeds=args.seeds, stage2_epochs=args.epochs)
    data = study.load_study_data(base)
    embeddings = study.frozen_embeddings(detector, data, base)
    dims = study.stage2_layer_dims(detector)
    truth = study.frame_truth(detector, data["test"])["labels"]
    partial = truth.any(dim=1) & ~truth.all(dim=1)
    overrides = {key: value for key, value in (("ema_init", args.ema_init), ("ema_target", args.ema_target)) if value}
    rows = []
    for lr in args.lrs:
        cfg = replace(base, stage2_lr=lr)
        for mode in args.modes:
            runs = study.train_explainers(embeddings, cfg, dims, modes=(mode,), model=overrides or None)
            for (_, seed), (explainer, history) in runs.items():
                w = study.prototype_maps(explainer, embeddings["test"][0])
                row = {"lr": lr, "mode": mode, "seed": seed, "best_epoch": history.best_epoch,
                       "frame_auc": frame_auc(w, truth), "frame_auc_partial": frame_auc(w[partial], truth[partial]),
                       "frame_eer": frame_eer(w, truth), "nondegenerate_share": nondegenerate_share(w)}
                print(json.dumps(_rounded(row)), flush=True)
                rows.append(row)
    table = pd.DataFrame(rows)
    summary = table.groupby(["lr", "mode"]).agg(frame_auc=("frame_auc", "mean"), auc_min=("frame_auc", "min"),
                                                auc_max=("frame_auc", "max"),
                                                frame_auc_partial=("frame_auc_partial", "mean"),
                                                nondegenerate_share=("nondegenerate_share", "mean"),
                                                best_epoch=("best_epoch", "mean"))
    print(summary.round(4).to_string())
    print(json.dumps({"checkpoint": str(args.checkpoint), "device": str(device), "seeds": args.seeds,
                      "ema_init": args.ema_init or study.load_stage2_config().model.ema_init,
                      "ema_target": args.ema_target or study.load_stage2_config().model.ema_target,
                      "runs": [_rounded(r) for r in rows]}))


if __name__ == "__main__":
    main()
