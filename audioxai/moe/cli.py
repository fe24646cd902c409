"""``xaimoe-audio``: the mixture-of-experts classifier from the shell (train, eval, infer, explain).

    xaimoe-audio train --dataset D --metadata D/metadata.csv --epochs 20 --batch-size 16 --out runs/exp1
    xaimoe-audio eval --dataset D --metadata D/metadata.csv --split test --ckpt runs/exp1/best.pt
    xaimoe-audio infer --audio D/test/x.wav --ckpt runs/exp1/best.pt
    xaimoe-audio explain --audio D/test/x.wav --ckpt runs/exp1/best.pt --out runs/exp1/explain

Results are printed as JSON on stdout; a bad input exits with status 2 and a message naming the fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from audioxai.errors import AudioXAIError

__all__ = ["main", "build_parser"]


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=("single_label", "multi_label"), default="single_label")
    p.add_argument("--budget", choices=("accuracy", "latency"), default="accuracy")
    p.add_argument("--explainability", choices=("none", "gradcam"), default="gradcam")
    p.add_argument("--no-auto-config", action="store_true", help="log-mel over the whole band unless overridden")
    p.add_argument("--target-sample-rate", type=int)
    p.add_argument("--fmin", type=float)
    p.add_argument("--fmax", type=float)
    p.add_argument("--spectrogram-kind", choices=("stft", "logmel", "logmel_pcen"))
    p.add_argument("--duration", type=float, dest="duration_s")
    p.add_argument("--num-experts", type=int)
    p.add_argument("--k-max", type=int)
    p.add_argument("--patch-size", type=int, nargs=2, metavar=("ROWS", "FRAMES"))
    p.add_argument("--patch-stride", type=int, nargs=2, metavar=("ROWS", "FRAMES"))
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four subcommands."""
    parser = argparse.ArgumentParser(prog="xaimoe-audio", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="profile, configure and train; write the run folder")
    train.add_argument("--dataset", required=True)
    train.add_argument("--metadata", required=True)
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--out", required=True)
    train.add_argument("--overwrite", action="store_true")
    _add_overrides(train)
    ev = sub.add_parser("eval", help="scores of a checkpoint on one split")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--metadata", required=True)
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--ckpt", required=True)
    infer = sub.add_parser("infer", help="predict one file")
    infer.add_argument("--audio", required=True)
    infer.add_argument("--ckpt", required=True)
    explain = sub.add_parser("explain", help="Grad-CAM and router saliency of one file")
    explain.add_argument("--audio", required=True)
    explain.add_argument("--ckpt", required=True)
    explain.add_argument("--out", required=True)
    return parser


def _run(args: argparse.Namespace) -> dict:
    from audioxai.moe.classifier import MoEAudioClassifier

    if args.command == "train":
        keys = ("target_sample_rate", "fmin", "fmax", "spectrogram_kind", "duration_s", "num_experts", "k_max",
                "patch_size", "patch_stride")
        overrides = {k: (tuple(getattr(args, k)) if k.startswith("patch") else getattr(args, k))
                     for k in keys if getattr(args, k) is not None}
        clf = MoEAudioClassifier(task=args.task, budget=args.budget, auto_config=not args.no_auto_config,
                                 explainability=None if args.explainability == "none" else args.explainability,
                                 device=args.device, seed=args.seed, **overrides)
        clf.fit(args.dataset, args.metadata, epochs=args.epochs, batch_size=args.batch_size, out_dir=args.out,
                overwrite=args.overwrite)
        return {"out": args.out, "best_epoch": clf.history["val_score"].index(max(clf.history["val_score"])) + 1,
                "val_score": max(clf.history["val_score"]), "mean_k": clf.usage["mean_k"]}
    clf = MoEAudioClassifier.load(args.ckpt, device=args.device)
    if args.command == "eval":
        return clf.evaluate(args.dataset, args.metadata, split=args.split)
    if args.command == "infer":
        return clf.predict(args.audio)
    result = clf.explain(args.audio, method="gradcam", save_dir=args.out)
    return {"prediction": result["prediction"], "files": result["files"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xaimoe-audio`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = _run(args)
    except AudioXAIError as err:
        print(f"xaimoe-audio {args.command}: {err}", file=sys.stderr)  # noqa: T201
        return 2
    print(json.dumps(result, indent=2, default=float))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
