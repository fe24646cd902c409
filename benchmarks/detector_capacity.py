"""Chapter 3's detector at several sizes on the full corpus: EER per spoof type, seconds per epoch, one run.

The full profile's detector (hidden 128, conv 64, 2 Conformer blocks, 40 epochs) reaches an utterance
EER of 11.5 % on held-out voices (H200), but 7.6 % on its own training clips: partial spoofs made by the
mel vocoder stay at 19 % there. That is underfitting, so this script trains the same pipeline
(``train_detector_stage``: the 5-best average, seeded) at each ``--sizes`` entry, one after the other,
and prints per size the training, validation and test EER, the test EER of each spoof kind and type
against the bona fide clips (``detector_eer_by_type``), the parameter count and the seconds per epoch.
Each epoch's validation EER is logged as it comes, so a run cut short still says how far it got. The
last line is one JSON object with every size's figures.

Run (a GPU is the point; on the CPU one size takes about an hour):
``.venv/bin/python benchmarks/detector_capacity.py [--device auto] [--epochs 40]
[--sizes 128x64x2 256x128x2 256x256x4 128x64x2k634] [--centre] [--gabor] [--voices 60] [--utterances 40] [--lr 1e-3] [--snr 20 50]``,
where a size is HIDDENxCONVxCONFORMER[kKERNEL] (transformer width, conv channels, Conformer blocks, the
first convolution's length in samples, 10 when left out; 634 gives a 64 ms field), ``--centre`` centres each
frame's field on its 20 ms label frame (``centre_frames``), ``--gabor`` starts the first convolution as
mel-spaced Gabor filters (``filterbank_init``) and ``--snr``
is the range of the training noise's SNR in dB (``detector_noise_snr_db``). Several runs can share one
GPU as separate processes; build the corpus first (``--build-only``) so they do not all build it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import logging
import sys
import tempfile
import time
from pathlib import Path

from audioxai.errors import ConfigError
from audioxai.models.detector import CONV_KERNELS, CONV_STRIDES, SPECTRAL_NORMS
from audioxai.studies import prototype_xai as study


def parse_size(text: str) -> tuple[int, int, int, int]:
    """``HIDDENxCONVxCONFORMER[kKERNEL]`` as (hidden, conv, blocks, first conv kernel; wav2vec2's 10 when not given)."""
    size, _, kernel = text.lower().partition("k")
    try:
        hidden, conv, blocks = (int(v) for v in size.split("x"))
        first = int(kernel) if kernel else CONV_KERNELS[0]
    except ValueError:
        raise ConfigError(f"size {text!r}: write HIDDENxCONVxCONFORMER[kKERNEL], e.g. 256x128x2 or 128x64x2k634") from None
    if min(hidden, conv, blocks) < 1 or first < CONV_STRIDES[0]:
        raise ConfigError(f"size {text!r}: every part must be a positive integer, the kernel at least {CONV_STRIDES[0]}")
    return hidden, conv, blocks, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--sizes", nargs="+", default=["128x64x2", "256x128x2", "256x256x4"])
    parser.add_argument("--voices", type=int, default=60)
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--snr", type=float, nargs=2, default=[20.0, 50.0], metavar=("LOW", "HIGH"))
    parser.add_argument("--speed", type=float, nargs="+", default=[1.0],
                        help="speed-perturbation factors of the training clips (detector_speed_factors)")
    parser.add_argument("--centre", action="store_true",
                        help="centre each frame's receptive field on its 20 ms label frame (centre_frames)")
    parser.add_argument("--gabor", action="store_true",
                        help="start the first convolution as mel-spaced Gabor filters (filterbank_init)")
    parser.add_argument("--spectral", type=int, default=0,
                        help="window in samples of the fixed log-spectrum input (spectral_window; 0: none, 1024: 64 ms)")
    parser.add_argument("--spectral-norm", choices=SPECTRAL_NORMS, default="utterance",
                        help="centre the spectral input per bin by each clip's mean or the training frames' statistics")
    parser.add_argument("--build-only", action="store_true", help="build (or find) the corpus, then stop")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each size's avg_5_best.pth in KEEP/<size>_e<epochs>_snr<low>-<high>/ "
                             "(for benchmarks/stage2_sweep.py); default: a temporary folder")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes]
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(message)s")
    base = study.make_config(num_voices=args.voices, utterances_per_voice=args.utterances, seed=args.seed,
                             device=args.device, detector_epochs=args.epochs, detector_lr=args.lr,
                             detector_noise_snr_db=list(args.snr), detector_speed_factors=list(args.speed),
                             centre_frames=args.centre, filterbank_init=args.gabor,
                             spectral_window=args.spectral, spectral_norm=args.spectral_norm)
    start = time.perf_counter()
    data = study.load_study_data(base)
    print(f"corpus ready in {time.perf_counter() - start:.0f} s: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()),
          flush=True)
    if args.build_only:
        return
    results = []
    for hidden, conv, blocks, first in sizes:
        cfg = replace(base, hidden_size=hidden, conv_channels=conv, conformer_layers=blocks, first_conv_kernel=first)
        print(f"== size hidden {hidden}, conv {conv}, conformer {blocks}, first kernel {first}, "
              f"centred {args.centre}, Gabor init {args.gabor}, spectral window {args.spectral} ({args.spectral_norm}), {args.epochs} epochs, lr {args.lr}, "
              f"noise SNR {args.snr[0]:g}-{args.snr[1]:g} dB, speed {args.speed}", flush=True)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            speed = "" if args.speed == [1.0] else "_speed" + "-".join(f"{f:g}" for f in args.speed)
            shape = f"{hidden}x{conv}x{blocks}" + (f"k{first}" if first != CONV_KERNELS[0] else "") + ("c" if args.centre else "") + ("g" if args.gabor else "") + (f"s{args.spectral}" + ("d" if args.spectral_norm == "dataset" else "") if args.spectral else "")
            folder = (args.keep / f"{shape}_e{args.epochs}_snr{args.snr[0]:g}-{args.snr[1]:g}{speed}"
                      if args.keep else Path(scratch))
            detector, history = study.train_detector_stage(data, cfg, folder)
        seconds = time.perf_counter() - start
        table = study.detector_eer_by_type(detector, data)
        eer = table.groupby("split")["split_eer"].first()
        by_type = {split: {f"{k}/{t}": round(float(v), 4) for k, t, v in zip(part["kind"], part["spoof_type"],
                                                                             part["eer_vs_bonafide"])}
                   for split, part in table.groupby("split")}
        row = {"hidden": hidden, "conv": conv, "conformer": blocks, "first_conv_kernel": first,
               "centre_frames": args.centre, "filterbank_init": args.gabor,
               "spectral_window": args.spectral, "spectral_norm": args.spectral_norm if args.spectral else None, "epochs": args.epochs, "lr": args.lr,
               "snr_db": list(args.snr), "speed_factors": list(args.speed),
               "parameters": sum(p.numel() for p in detector.parameters()),
               "seconds_per_epoch": round(seconds / args.epochs, 2),
               "eer": {split: round(float(v), 4) for split, v in eer.items()},
               "test_eer_by_type": by_type.get("test", {}), "train_eer_by_type": by_type.get("train", {}),
               "averaged_epochs": list(history.averaged_epochs), "checkpoint": history.checkpoint_path if args.keep else None,
               "val_eer_by_epoch": [round(v, 4) for v in history.val_eer]}
        print(json.dumps(row), flush=True)
        results.append(row)
    print(json.dumps({"device": args.device, "sizes": results}))


if __name__ == "__main__":
    main()
