"""Costs of the corpus layer, measured side by side in one run, printed as ratios.

1. Reproducible synthesis: ``synthesize`` loads a fresh libespeak-ng for every utterance (the
   engine keeps state between utterances otherwise). Compared with one engine kept loaded.
2. Log-mel front-end: ``audioxai.features.log_mel_spectrogram`` (batched, per-sample dB floor)
   against torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB`` on the same batch, on CPU and, when
   present, CUDA. Also checks the two agree.

Run: ``.venv/bin/python benchmarks/bench_corpora.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchaudio

from audioxai.data import speech
from audioxai.features.spectrogram import log_mel_spectrogram

TEXTS = ["seven", "place blue at seven now", "four one seven two nine", "set green by three please"]


def _best(fn, repeats: int, sync=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_synthesis(repeats: int) -> None:
    def fresh() -> None:
        for text in TEXTS:
            speech._synth_fresh(text, "en-us+m3", 175, 50, 50)

    t_fresh = _best(fresh, repeats)
    engine = speech._Engine()  # opened only now: the library is global, one engine at a time

    def persistent() -> None:
        for text in TEXTS:
            engine.synth(text, "en-us+m3", 175, 50, 50)

    t_keep = _best(persistent, repeats)
    engine.close()
    print(f"synthesis, {len(TEXTS)} utterances: fresh engine {1e3 * t_fresh:.1f} ms, kept engine "
          f"{1e3 * t_keep:.1f} ms, ratio fresh/kept {t_fresh / t_keep:.2f}")


def bench_log_mel(repeats: int, device: str) -> None:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    batch = torch.randn(64, 16000, device=device)
    reference = torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(16000, n_fft=512, hop_length=160, n_mels=64, norm="slaney", mel_scale="slaney"),
        torchaudio.transforms.AmplitudeToDB("power", top_db=80.0),
    ).to(device)
    ours = lambda: log_mel_spectrogram(batch, 16000, n_mels=64, n_fft=512, hop_length=160)  # noqa: E731
    theirs = lambda: reference(batch)  # noqa: E731
    ours(), theirs()
    t_ours, t_theirs = _best(ours, repeats, sync), _best(theirs, repeats, sync)
    # torchaudio floors at top_db below the batch maximum; we floor per sample. Compare unfloored bins.
    a, b = ours(), theirs()
    keep = (a > a.amax(dim=(-2, -1), keepdim=True) - 79) & (b > b.amax() - 79)
    err = float((a - b)[keep].abs().max())
    print(f"log-mel, batch 64 x 1 s on {device}: ours {1e3 * t_ours:.2f} ms, torchaudio {1e3 * t_theirs:.2f} ms, "
          f"ratio ours/torchaudio {t_ours / t_theirs:.2f}, max |difference| {err:.2e} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench_synthesis(args.repeats)
    bench_log_mel(args.repeats, "cpu")
    if torch.cuda.is_available():
        bench_log_mel(args.repeats, "cuda")


if __name__ == "__main__":
    main()
