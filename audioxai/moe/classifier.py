"""``MoEAudioClassifier``: profile a ``metadata.csv`` dataset, choose a front-end and an expert policy, train
the saliency-routed mixture of experts, and report, predict and explain (the design note's Python API).

A training run writes into ``out_dir`` (built in a temporary folder beside it and renamed at the end, so a
failed run leaves no half-written folder): ``best.pt`` and ``last.pt`` (weights and the run's configuration,
loaded with ``weights_only=True``), ``run_config.json`` (labels, policy, profile, front-end, history),
``profile.json``, ``spectro_config.json``, ``policy.json``, ``architecture.txt``, ``expert_usage.json``,
``metrics.json`` (validation scores of the best epoch) with ``confusion_matrix.png`` (single-label),
``saliency_router.png``, ``patch_selection.png`` and, with ``explainability="gradcam"``, ``gradcam.png``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from audioxai.atomic import atomic_write_text
from audioxai.config import config_to_dict, load_config
from audioxai.errors import ConfigError, DatasetError
from audioxai.models.checkpoints import load_checkpoint, save_checkpoint
from audioxai.moe.data import LabelSet, label_set, load_clip, load_split, output_dir_is_free, split_rows
from audioxai.moe.frontend import SpectroConfig, choose_frontend, save_spectro_config
from audioxai.moe.network import MoENetwork, gradcam, moe_loss
from audioxai.moe.policy import Policy, make_policy, save_policy
from audioxai.moe.profiling import DatasetProfile, profile_dataset, save_profile
from audioxai.moe.reports import (architecture_text, classification_scores, expert_usage, plot_confusion,
                                  plot_patch_selection, plot_saliency_and_gradcam)
from audioxai.runtime import resolve_device, seed_everything
from audioxai.viz.figures import save_figure

logger = logging.getLogger(__name__)

__all__ = ["MoEAudioClassifier", "TASKS", "BUDGETS"]

TASKS = ("single_label", "multi_label")
BUDGETS = ("accuracy", "latency")


class MoEAudioClassifier:
    """The design note's classifier. Optional overrides of what auto-configuration would choose:
    ``target_sample_rate``, ``fmin``, ``fmax``, ``spectrogram_kind`` (stft | logmel | logmel_pcen),
    ``duration_s``, ``num_experts``, ``k_max``, ``patch_size``, ``patch_stride``. With ``auto_config=False``
    the front-end is a log-mel over the whole band at the data's most common rate unless overridden
    (the policy's rule masks still follow the profile)."""

    def __init__(self, task: str = "single_label", budget: str = "accuracy", auto_config: bool = True,
                 explainability: str | None = None, device: str = "auto", seed: int = 0, lr: float = 2e-3,
                 balance_weight: float = 0.01, max_profile_files: int | None = None, **overrides) -> None:
        if task not in TASKS or budget not in BUDGETS or explainability not in (None, "gradcam"):
            raise ConfigError(f"task={task!r}, budget={budget!r}, explainability={explainability!r}: use task in "
                              f"{TASKS}, budget in {BUDGETS}, explainability None or 'gradcam'")
        allowed = {"target_sample_rate", "fmin", "fmax", "spectrogram_kind", "duration_s", "num_experts", "k_max",
                   "patch_size", "patch_stride"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown}: the overrides are {sorted(allowed)}")
        self.task, self.budget, self.auto_config, self.explainability = task, budget, auto_config, explainability
        self.device, self.seed, self.lr, self.balance_weight = resolve_device(device), seed, lr, balance_weight
        self.max_profile_files, self.overrides = max_profile_files, overrides
        self.network: MoENetwork | None = None
        self.labels: LabelSet | None = None
        self.spectro: SpectroConfig | None = None
        self.policy: Policy | None = None
        self.profile: DatasetProfile | None = None
        self.usage: dict = {}
        self.history: dict[str, list[float]] = {"train_loss": [], "val_score": []}

    @property
    def multi_label(self) -> bool:
        return self.task == "multi_label"

    def _configure(self, dataset_dir, metadata_csv) -> None:
        o = self.overrides
        self.profile = profile_dataset(dataset_dir, metadata_csv, split="train", max_files=self.max_profile_files,
                                       seed=self.seed)
        if self.auto_config:
            self.spectro = choose_frontend(self.profile, o.get("target_sample_rate"), o.get("fmin"), o.get("fmax"),
                                           o.get("spectrogram_kind"), o.get("duration_s"))
        else:
            self.spectro = choose_frontend(self.profile, o.get("target_sample_rate") or self.profile.fs_mode,
                                           o.get("fmin", 0.0), o.get("fmax"), o.get("spectrogram_kind") or "logmel",
                                           o.get("duration_s"))
        self.policy = make_policy(self.profile, self.spectro, self.budget, o.get("num_experts"), o.get("k_max"),
                                  o.get("patch_size"), o.get("patch_stride"))

    def _build(self) -> MoENetwork:
        return MoENetwork(self.spectro, self.policy, len(self.labels.names), self.multi_label).to(self.device)

    def _score(self, metrics: dict) -> float:
        return metrics["mAP"] if self.multi_label else metrics["accuracy"]

    def fit(self, dataset_dir: str | os.PathLike[str], metadata_csv: str | os.PathLike[str], epochs: int = 20,
            batch_size: int = 16, out_dir: str | os.PathLike[str] = "runs/exp1", overwrite: bool = False):
        """Profile, configure, train (keeping the epoch with the best validation score) and write the run."""
        if epochs < 1 or batch_size < 1:
            raise ConfigError(f"epochs={epochs}, batch_size={batch_size}: both must be at least 1")
        target = output_dir_is_free(out_dir, overwrite)
        train_rows, val_rows = split_rows(dataset_dir, metadata_csv, "train"), split_rows(dataset_dir, metadata_csv, "val")
        self.labels = label_set(train_rows, self.multi_label)
        self._configure(dataset_dir, metadata_csv)
        sr, n = self.spectro.sample_rate, self.spectro.num_samples
        x_tr, y_tr = load_split(train_rows, self.labels, sr, n)
        x_va, y_va = load_split(val_rows, self.labels, sr, n)
        generator = seed_everything(self.seed)
        self.network = self._build()
        optimiser = torch.optim.AdamW(self.network.parameters(), lr=self.lr, weight_decay=1e-4)
        best, best_state, best_metrics = -1.0, None, {}
        for epoch in range(epochs):
            self.network.train()
            order, losses = torch.randperm(len(x_tr), generator=generator), []
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                out = self.network(x_tr[idx].to(self.device))
                loss = moe_loss(out, y_tr[idx].to(self.device), self.multi_label, self.balance_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            metrics = self._evaluate_tensors(x_va, y_va, batch_size)
            self.history["train_loss"].append(sum(losses) / len(losses))
            self.history["val_score"].append(self._score(metrics))
            logger.info("epoch %d: loss %.4f val %.4f", epoch + 1, self.history["train_loss"][-1], self._score(metrics))
            if self._score(metrics) > best:
                best, best_metrics = self._score(metrics), metrics
                best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        last_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        self.network.load_state_dict(best_state)
        best_metrics = {**best_metrics, "best_epoch": 1 + self.history["val_score"].index(best)}
        self._write_run(target, overwrite, best_state, last_state, best_metrics, x_va[:4], y_va[:4])
        return self

    @torch.no_grad()
    def _forward_all(self, x: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        self.network.eval()
        parts: dict[str, list[torch.Tensor]] = {"logits": [], "k": [], "selected": [], "gates": []}
        for i in range(0, len(x), batch_size):
            out = self.network(x[i:i + batch_size].to(self.device))
            for key in parts:
                parts[key].append(getattr(out, key).detach().cpu())
        return {key: torch.cat(v) for key, v in parts.items()}

    def _evaluate_tensors(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> dict:
        start = time.perf_counter()
        out = self._forward_all(x, batch_size)
        seconds = (time.perf_counter() - start) / max(len(x), 1)
        metrics = classification_scores(out["logits"], y, self.multi_label)
        class_index = None if self.multi_label else y
        self.usage = expert_usage(out["selected"], out["k"], out["gates"], [e.name for e in self.policy.experts],
                                  class_index, self.labels.names)
        return {**metrics, "mean_k": self.usage["mean_k"], "seconds_per_sample": seconds, "num_samples": len(x)}

    def evaluate(self, dataset_dir: str | os.PathLike[str], metadata_csv: str | os.PathLike[str],
                 split: str = "test", batch_size: int = 32) -> dict:
        """Scores on one split (accuracy, macro F1 and confusion matrix; or mAP and F1), mean K, seconds per sample."""
        self._require_model()
        x, y = load_split(split_rows(dataset_dir, metadata_csv, split), self.labels, self.spectro.sample_rate,
                          self.spectro.num_samples)
        return self._evaluate_tensors(x, y, batch_size)

    def predict(self, path: str | os.PathLike[str]) -> dict:
        """The predicted label(s), the class probabilities and the experts the router ran for one file."""
        self._require_model()
        x = load_clip(path, self.spectro.sample_rate, self.spectro.num_samples)[None].to(self.device)
        self.network.eval()
        with torch.no_grad():
            out = self.network(x)
        probs = torch.sigmoid(out.logits[0]) if self.multi_label else out.logits[0].softmax(0)
        names = self.labels.names
        labels = [n for n, p in zip(names, probs.tolist()) if p >= 0.5] if self.multi_label else [names[int(probs.argmax())]]
        return {"labels": labels, "probabilities": {n: float(p) for n, p in zip(names, probs)}, "k": int(out.k[0]),
                "experts": [e.name for e, s in zip(self.policy.experts, out.selected[0].tolist()) if s]}

    def explain(self, audio_path: str | os.PathLike[str], method: str = "gradcam",
                save_dir: str | os.PathLike[str] | None = None) -> dict:
        """Grad-CAM of the predicted class beside the router's saliency for one file; figures in ``save_dir``."""
        if method != "gradcam":
            raise ConfigError(f"method={method!r}: the classifier explains with 'gradcam'")
        self._require_model()
        x = load_clip(audio_path, self.spectro.sample_rate, self.spectro.num_samples)[None].to(self.device)
        prediction = self.predict(audio_path)
        target = self.labels.names.index(max(prediction["probabilities"], key=prediction["probabilities"].get))
        cam = gradcam(self.network, x, target)[0]
        self.network.eval()
        out = self.network(x)
        spec = self.network.spectrogram(x)[0, 0].detach()
        result = {"prediction": prediction, "gradcam": cam.cpu(), "saliency": out.saliency[0, 0].cpu()}
        if save_dir is not None:
            folder = Path(save_dir)
            folder.mkdir(parents=True, exist_ok=True)
            fig = plot_saliency_and_gradcam(spec, out.saliency[0, 0], cam, f"{Path(audio_path).name}: {prediction['labels']}")
            save_figure(fig, folder / "gradcam.png")
            plt.close(fig)
            result["files"] = [str(folder / "gradcam.png")]
        return result

    def print_architecture(self) -> None:
        """Print the front-end, the policy and the network's size."""
        self._require_model()
        print(architecture_text(self.network, self.policy, self.spectro, self.labels))  # noqa: T201 (the API prints)

    def print_expert_usage(self) -> None:
        """Print the last evaluation's expert selection rates, K histogram and load balance."""
        print(json.dumps({k: v for k, v in self.usage.items() if k != "per_class"}, indent=2))  # noqa: T201

    def _require_model(self) -> None:
        if self.network is None:
            raise ConfigError("no trained model: call fit(...) first or load one with MoEAudioClassifier.load(path)")

    def _run_config(self, history: bool = True) -> dict:
        return {"task": self.task, "budget": self.budget, "labels": list(self.labels.names), "seed": self.seed,
                "spectro": config_to_dict(self.spectro), "policy": config_to_dict(self.policy),
                "profile": asdict(self.profile), **({"history": self.history} if history else {})}

    def _write_run(self, target: Path, overwrite: bool, best_state, last_state, metrics: dict, x_show, y_show) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            meta = self._run_config(history=False)
            save_checkpoint(tmp / "best.pt", best_state, meta)
            save_checkpoint(tmp / "last.pt", last_state, meta)
            atomic_write_text(tmp / "run_config.json", json.dumps(self._run_config(), indent=2) + "\n")
            save_profile(self.profile, tmp / "profile.json")
            save_spectro_config(self.spectro, tmp / "spectro_config.json")
            save_policy(self.policy, tmp / "policy.json")
            atomic_write_text(tmp / "architecture.txt", architecture_text(self.network, self.policy, self.spectro, self.labels))
            atomic_write_text(tmp / "expert_usage.json", json.dumps(self.usage, indent=2) + "\n")
            atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2) + "\n")
            self._write_figures(tmp, metrics, x_show, y_show)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_figures(self, folder: Path, metrics: dict, x: torch.Tensor, y: torch.Tensor) -> None:
        if "confusion_matrix" in metrics:
            fig = plot_confusion(metrics["confusion_matrix"], self.labels.names)
            save_figure(fig, folder / "confusion_matrix.png")
            plt.close(fig)
        self.network.eval()
        x = x.to(self.device)
        out = self.network(x)
        titles = [", ".join(self.labels.names[j] for j in (t.nonzero().flatten().tolist() if self.multi_label else [int(t)]))
                  for t in y]
        fig = plot_patch_selection(out.patch_importance.detach().cpu(), out.patch_grid, out.selected.cpu(),
                                   [e.name for e in self.policy.experts], titles)
        save_figure(fig, folder / "patch_selection.png")
        plt.close(fig)
        spec = self.network.spectrogram(x[:1])[0, 0].detach()
        cam = gradcam(self.network, x[:1], int(out.logits[0].argmax()))[0] if self.explainability == "gradcam" else None
        fig = plot_saliency_and_gradcam(spec, out.saliency[0, 0], None, titles[0])
        save_figure(fig, folder / "saliency_router.png")
        plt.close(fig)
        if cam is not None:
            fig = plot_saliency_and_gradcam(spec, out.saliency[0, 0], cam, titles[0])
            save_figure(fig, folder / "gradcam.png")
            plt.close(fig)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "auto") -> MoEAudioClassifier:
        """A trained classifier from ``best.pt`` / ``last.pt`` (weights only; configuration from its metadata)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"checkpoint {path} does not exist: pass the best.pt written by fit or xaimoe-audio train")
        state, meta = load_checkpoint(path)
        missing = [k for k in ("task", "budget", "labels", "spectro", "policy", "profile") if k not in meta]
        if missing:
            raise ConfigError(f"{path} lacks {missing} in its metadata: it was not written by MoEAudioClassifier.fit")
        clf = cls(task=meta["task"], budget=meta["budget"], device=device, seed=int(meta.get("seed", 0)))
        clf.labels = LabelSet(tuple(meta["labels"]), meta["task"] == "multi_label")
        clf.spectro = load_config(SpectroConfig, meta["spectro"])
        clf.policy = load_config(Policy, meta["policy"])
        clf.profile = load_config(DatasetProfile, meta["profile"])
        clf.network = clf._build()
        try:
            clf.network.load_state_dict(state)
        except RuntimeError as err:
            raise DatasetError(f"{path}: its weights do not fit the network its metadata describes ({err})") from err
        clf.network.eval()
        return clf
