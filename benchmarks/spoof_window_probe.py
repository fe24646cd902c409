"""How long an analysis window chapter 3's mel-vocoder spoofs need: a linear frame probe per window length.

The mel vocoder (``audioxai.data.spoofs``) replaces each 1024-sample STFT frame's magnitude by its 80-band
mel envelope, so its trace is harmonics smeared inside mel bands. The chapter's detector sees the
waveform through wav2vec2's convolutional encoder, whose receptive field is 400 samples (25 ms). This
script asks how much of the trace a window of that length keeps: for each ``--windows`` length it takes
the log-magnitude spectrum of every 20 ms label frame (Hann window of that length, zero-padded to a
1024-point FFT, so every length has the same 513 bins; frame k centred on the label frame's centre),
keeps speech frames only, and trains a logistic regression (standardised features, balanced classes) to
tell the spoofed frames of mel-vocoder partial spoofs from the frames of bona fide clips on the training
voices. It prints the frame AUC on the training voices and on the held-out test voices.

Run: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/spoof_window_probe.py [--windows 400 640 1024]
[--voices 60] [--utterances 40] [--seed 0]`` (about 30 s on a 2-core CPU once the corpus is built).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from audioxai.data.spoofs import SpoofSet
from audioxai.errors import ConfigError
from audioxai.studies import prototype_xai as study

N_FFT, HOP = 1024, 320  # 320 samples = one 20 ms label frame at 16 kHz


def frame_spectra(data: SpoofSet, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Log spectra of the speech frames of bona fide clips (label 0) and of the spoofed speech frames of
    mel-vocoder partial spoofs (label 1)."""
    features, labels = [], []
    for i in range(len(data)):
        partial = data.kind[i] == "partial" and data.spoof_type[i] == "mel_vocoder"
        if not (partial or data.kind[i] == "bonafide"):
            continue
        x = data.waveform[i][HOP // 2:]  # stft centres frame k on sample 320 k; the label frame's centre is 320 k + 160
        spec = torch.stft(x, N_FFT, HOP, win_length=window, window=torch.hann_window(window), return_complex=True)
        spec = spec.abs().clamp_min(1e-7).log()
        frames = min(spec.shape[1], data.frame_labels.shape[1])
        keep = data.speech_frames[i, :frames].bool()
        if partial:
            keep &= data.frame_labels[i, :frames].bool()
        features.append(spec[:, :frames].T[keep].numpy())
        labels.append(np.full(int(keep.sum()), int(partial)))
    return np.concatenate(features), np.concatenate(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[400, 640, 1024])
    parser.add_argument("--voices", type=int, default=60)
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if bad := [w for w in args.windows if not 16 <= w <= N_FFT]:
        raise ConfigError(f"--windows {bad}: use lengths from 16 to {N_FFT} samples")
    cfg = study.make_config(num_voices=args.voices, utterances_per_voice=args.utterances, seed=args.seed)
    data = study.load_study_data(cfg)
    rows = []
    for window in args.windows:
        x_train, y_train = frame_spectra(data["train"], window)
        x_test, y_test = frame_spectra(data["test"], window)
        scaler = StandardScaler().fit(x_train)
        probe = LogisticRegression(max_iter=500, C=0.1, class_weight="balanced").fit(scaler.transform(x_train), y_train)
        row = {"window_samples": window, "window_ms": window / 16,
               "train_auc": round(float(roc_auc_score(y_train, probe.decision_function(scaler.transform(x_train)))), 4),
               "test_auc": round(float(roc_auc_score(y_test, probe.decision_function(scaler.transform(x_test)))), 4),
               "spoofed_frames": int(y_train.sum()), "bonafide_frames": int((y_train == 0).sum())}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(json.dumps({"probe": "logistic regression on log spectra", "rows": rows}))


if __name__ == "__main__":
    main()
