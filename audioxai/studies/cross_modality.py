"""The cross-modality study (chapter 1): train, explain and score on images and spectrograms.

For every dataset (``images``, ``audio``) and resolution, ``train_models`` fits a ``DigitCNN`` and
saves ``{dataset}_cnn_{resolution}.pt``; ``explain_and_score`` explains a fixed set of test samples with
every method and scores each explanation with every metric. Scores are per sample; ``summarise``
turns them into means with 95% bootstrap intervals.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from audioxai.config import load_config
from audioxai.data.audiomnist import AudioMNIST, audiomnist_root
from audioxai.data.images import load_digits_images
from audioxai.explain.gradients import get_explainer
from audioxai.metrics import (METRICS, attribution_mass_inside, avg_sensitivity, faithfulness_correlation,
                              model_parameter_randomisation, random_logit, randomisation_score, sparseness)
from audioxai.metrics.aggregate import bootstrap_ci
from audioxai.models.checkpoints import load_checkpoint, save_checkpoint
from audioxai.models.cnn import DigitCNN, first_pool_for
from audioxai.models.training import TrainConfig, evaluate, fit
from audioxai.runtime import resolve_device, seed_everything
from audioxai.studies.data import AUDIO_SAMPLE_RATE, ModalityData, audio_data, image_data

logger = logging.getLogger(__name__)

__all__ = ["CrossModalityConfig", "TrainedModel", "load_study_data", "train_models", "load_trained_cnn", "explain_and_score",
           "summarise", "METHODS", "METRIC_NAMES"]

METHODS = ("saliency", "integrated_gradients", "guided_gradcam")
METRIC_NAMES = ("faithfulness_correlation", "avg_sensitivity", "sparseness", "random_logit", "randomisation",
                "localisation")


@dataclass(frozen=True)
class CrossModalityConfig:
    """Every knob of the study; the notebook's parameters map onto these.

    Attributes:
        image_resolutions, audio_resolutions: side lengths (audio: mel bands = frames).
        num_speakers, repetitions: SynthDigits size (ignored with AUDIOMNIST_ROOT).
        num_epochs, lr, batch_size, patience: training.
        max_train_samples: cap on training samples per model (a seeded subset), or None for all.
        num_explained: test samples explained and scored per dataset and resolution.
        ig_steps: Integrated Gradients path steps (50 as in the design).
        faithfulness_subset_fraction, faithfulness_runs: share of features replaced per run, runs.
        sensitivity_samples, sensitivity_noise_fraction: perturbations and their size (share of the input range).
        num_visualised: samples drawn per method, dataset and resolution.
        seed, device: reproducibility and where to run.
    """

    image_resolutions: tuple[int, ...] = (28, 64, 128)
    audio_resolutions: tuple[int, ...] = (32, 64, 128)
    num_speakers: int = 60
    repetitions: int = 20
    num_epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64
    patience: int = 4
    max_train_samples: int | None = None
    num_explained: int = 256
    ig_steps: int = 50
    faithfulness_subset_fraction: float = 0.05
    faithfulness_runs: int = 100
    sensitivity_samples: int = 20
    sensitivity_noise_fraction: float = 0.1
    num_visualised: int = 3
    seed: int = 0
    device: str = "auto"


@dataclass
class TrainedModel:
    dataset: str
    resolution: int
    model: DigitCNN
    test_accuracy: float
    test: ModalityData
    checkpoint: Path


def make_config(**params) -> CrossModalityConfig:
    """``CrossModalityConfig`` from notebook parameters (lists become tuples; unknown names are refused)."""
    return load_config(CrossModalityConfig, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def load_study_data(cfg: CrossModalityConfig) -> dict[str, dict[int, dict[str, ModalityData]]]:
    """``data[dataset][resolution][split]`` for both modalities at every resolution."""
    images = load_digits_images(seed=cfg.seed)
    root = audiomnist_root(num_speakers=cfg.num_speakers, repetitions=cfg.repetitions, seed=cfg.seed)
    audio = {s: AudioMNIST(root, split=s, sample_rate=AUDIO_SAMPLE_RATE, duration=1.0, seed=cfg.seed)
             for s in ("train", "val", "test")}
    return {
        "images": {r: {s: image_data(images, s, r) for s in ("train", "val", "test")} for r in cfg.image_resolutions},
        "audio": {r: {s: audio_data(audio[s], r) for s in ("train", "val", "test")} for r in cfg.audio_resolutions},
        "sources": {"images": images.name, "audio": "AudioMNIST" if os.environ.get("AUDIOMNIST_ROOT") else "SynthDigits"},
    }


def _loader(data: ModalityData, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    return DataLoader(TensorDataset(data.inputs, data.labels), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def train_models(data, cfg: CrossModalityConfig, checkpoint_dir: Path, progress: bool = False) -> list[TrainedModel]:
    """Train one CNN per dataset and resolution; save ``{dataset}_cnn_{resolution}.pt``; report test accuracy."""
    device = resolve_device(cfg.device)
    train_cfg = TrainConfig(num_epochs=cfg.num_epochs, lr=cfg.lr, batch_size=cfg.batch_size, patience=cfg.patience,
                            monitor="val_acc", seed=cfg.seed)
    trained = []
    for dataset in ("images", "audio"):
        for resolution, splits in data[dataset].items():
            seed_everything(cfg.seed)
            train = splits["train"]
            if cfg.max_train_samples is not None and len(train) > cfg.max_train_samples:
                train = explained_subset(train, cfg.max_train_samples, cfg.seed)
            model = DigitCNN(input_mean=float(train.inputs.mean()), input_std=float(train.inputs.std()),
                             first_pool=first_pool_for(resolution))
            fit(model, _loader(train, cfg.batch_size, True, cfg.seed), _loader(splits["val"], 256, False, 0),
                train_cfg, device, progress=progress)
            accuracy = evaluate(model, _loader(splits["test"], 256, False, 0), device)["accuracy"]
            path = save_checkpoint(Path(checkpoint_dir) / f"{dataset}_{DigitCNN.architecture}_{resolution}.pt", model,
                                   {"dataset": dataset, "resolution": resolution, "test_accuracy": accuracy,
                                    "first_pool": model.first_pool,
                                    "config": asdict(cfg)})
            logger.info("%s at %d: test accuracy %.4f", dataset, resolution, accuracy)
            trained.append(TrainedModel(dataset, resolution, model.eval(), accuracy, splits["test"], path))
    return trained


def load_trained_cnn(path: str | os.PathLike[str], device: str = "cpu") -> DigitCNN:
    """Rebuild a study checkpoint (``{dataset}_cnn_{resolution}.pt``) as an eval-mode ``DigitCNN``.

    The pooling factor and standardisation come from the file (weights only, read with
    ``weights_only=True``); the model is ready for ``get_explainer(...)`` and the metrics.
    """
    state, meta = load_checkpoint(path, map_location=device)
    first_pool = int(meta.get("first_pool", first_pool_for(int(meta.get("resolution", 28)))))
    model = DigitCNN(first_pool=first_pool)
    load_checkpoint(path, model, map_location=device)
    return model.to(device).eval()


def explained_subset(test: ModalityData, num: int, seed: int) -> ModalityData:
    """A seeded, class-balanced-in-expectation sample of ``num`` test items (all of them if fewer)."""
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:num]
    return test.subset(order.sort().values)


def _baseline(kind: str) -> float | str:
    # Zeros (black) for images; silence for spectrograms, i.e. each spectrogram's floor in dB.
    return 0.0 if kind == "image" else "min"


def explain_and_score(tm: TrainedModel, cfg: CrossModalityConfig) -> tuple[pd.DataFrame, dict[str, torch.Tensor], ModalityData]:
    """Explain ``num_explained`` test samples with every method; score with every metric.

    Returns a long table (dataset, resolution, method, metric, sample, score), the attributions by
    method, and the explained samples.
    """
    device = resolve_device(cfg.device)
    model = tm.model.to(device).eval()
    data = explained_subset(tm.test, cfg.num_explained, cfg.seed)
    x, y = data.inputs.to(device), data.labels.to(device)
    baseline = _baseline(data.kind)
    rows, attributions = [], {}
    for method in METHODS:
        explain = get_explainer(method, baseline=baseline, n_steps=cfg.ig_steps)
        attr = explain(model, x, y)
        attributions[method] = attr.cpu()
        gen = lambda: torch.Generator().manual_seed(cfg.seed)  # noqa: E731  same CPU draws for every method and device
        scores = {
            "faithfulness_correlation": faithfulness_correlation(
                model, x, y, attr, subset_fraction=cfg.faithfulness_subset_fraction, num_runs=cfg.faithfulness_runs,
                baseline=baseline, generator=gen()),
            "avg_sensitivity": avg_sensitivity(model, x, y, explain, num_samples=cfg.sensitivity_samples,
                                               noise_fraction=cfg.sensitivity_noise_fraction, generator=gen()),
            "sparseness": sparseness(attr),
            "random_logit": random_logit(model, x, y, explain, num_classes=10, attributions=attr, generator=gen()),
            "randomisation": randomisation_score(model_parameter_randomisation(
                model, x, y, explain, attributions=attr, seed=cfg.seed, constant_randomised=0.0)),
        }
        if data.truth is not None:
            scores["localisation"] = attribution_mass_inside(attr, data.truth.to(device))
        for metric, values in scores.items():
            for i, value in enumerate(values.detach().cpu().tolist()):
                rows.append((tm.dataset, tm.resolution, method, metric, i, value))
    table = pd.DataFrame(rows, columns=["dataset", "resolution", "method", "metric", "sample", "score"])
    return table, attributions, data


def summarise(scores: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean and 95% bootstrap interval per dataset, resolution, method and metric."""
    rows = []
    for key, group in scores.groupby(["dataset", "resolution", "method", "metric"]):
        mean, low, high = bootstrap_ci(group["score"].to_numpy(), seed=seed)
        rows.append((*key, mean, low, high, int(group["score"].notna().sum())))
    return pd.DataFrame(rows, columns=["dataset", "resolution", "method", "metric", "mean", "ci_low", "ci_high", "n"])


def higher_is_better() -> dict[str, bool]:
    """Direction of every study metric, from the metric registry."""
    names = {"randomisation": "model_parameter_randomisation", "localisation": "localisation_mass"}
    return {m: METRICS[names.get(m, m)].higher_is_better for m in METRIC_NAMES}
