"""The XAI-driven mixture-of-experts study (chapter 5): profile, configure, route, and compare with a CNN.

Pipeline: ``make_corpus`` generates the MoE corpus (known sample rates, band edges, noisy and clipped
subsets); ``profile_against_truth`` scores the profiler against that truth on a band-limited (sonar-only)
corpus and on the chapter's corpus; ``train_budgets`` trains ``MoEAudioClassifier`` under both budgets;
``train_baseline`` trains the monolithic CNN of matched inference cost on the same front-end and clips;
``compare_over_seeds`` repeats both on the same corpus over several training seeds (test sets of a few
hundred clips move by points between seeds, so one seed does not decide which model is more accurate);
``routing_table`` gives K and expert usage per class and per quality subset; ``saliency_agreement``
correlates the router's saliency with Grad-CAM; ``cost_table`` sets accuracy against FLOPs and time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from audioxai.config import load_config
from audioxai.data.moe_corpus import MoECorpusConfig, load_truth, moe_corpus
from audioxai.moe.classifier import MoEAudioClassifier
from audioxai.moe.data import load_split, split_rows
from audioxai.moe.network import MonolithicCNN, flops_per_sample, gradcam, matched_baseline
from audioxai.moe.profiling import DatasetProfile, profile_dataset
from audioxai.runtime import best_wall_times, resolve_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["MoEStudyConfig", "make_config", "make_corpus", "profile_against_truth", "train_budgets", "split_data",
           "train_baseline", "compare_over_seeds", "summarise_seeds", "routing_table", "saliency_agreement",
           "cost_table"]


@dataclass
class MoEStudyConfig:
    """Every knob of the chapter; the notebook's parameters map onto these.

    Attributes:
        num_per_class: files per class in the corpus (split 60/20/20).
        classes: MoE corpus classes.
        epochs, batch_size, lr: training of both MoE budgets and of the baseline.
        target_sample_rate: None lets the profile choose the front-end's rate (full); a number overrides it.
        seed, device: corpus seed and the first training seed; placement.
        seeds: training seeds (weights and shuffling) of the repeated comparison on the same corpus.
    """

    num_per_class: int = 60
    classes: tuple[str, ...] = ("sonar_ping", "sonar_hum", "clicks", "engine", "rain", "digit_zero", "digit_one")
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    target_sample_rate: int | None = None
    seed: int = 0
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"


def make_config(**params) -> MoEStudyConfig:
    """``MoEStudyConfig`` from notebook parameters (lists become tuples; unknown names are refused)."""
    return load_config(MoEStudyConfig, {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def make_corpus(cfg: MoEStudyConfig, progress: bool = False) -> Path:
    """The chapter's MoE corpus folder (cached)."""
    return moe_corpus(MoECorpusConfig(classes=tuple(cfg.classes), num_per_class=cfg.num_per_class, seed=cfg.seed),
                      progress=progress)


def profile_against_truth(root: Path, cfg: MoEStudyConfig) -> tuple[DatasetProfile, pd.DataFrame]:
    """The chapter corpus's training profile, and a table of profiler estimates against the generator's truth:
    on a sonar-only corpus (every file band-limited at a known edge) and on the chapter's corpus."""
    sonar = moe_corpus(MoECorpusConfig(classes=("sonar_ping", "sonar_hum"), num_per_class=max(10, cfg.num_per_class // 3),
                                       seed=cfg.seed), progress=False)
    rows = []
    for name, folder in (("sonar only (band-limited)", sonar), ("chapter corpus", root)):
        profile = profile_dataset(folder, folder / "metadata.csv", split="train", seed=cfg.seed)
        truth = load_truth(folder).datasets["train"]
        rows.append({"dataset": name, "true_fmax_hz": truth.fmax_hz, "fmax_eff": profile.fmax_eff,
                     "fmax_error": abs(profile.fmax_eff - truth.fmax_hz) / truth.fmax_hz if truth.band_limited else math.nan,
                     "true_clipping_rate": truth.clipping_rate, "clipping_rate": profile.clipping_rate,
                     "true_fs": sorted(truth.fs_unique), "fs_unique": sorted(profile.fs_unique),
                     "quality_score": profile.quality_score})
        if folder == root:
            chapter_profile = profile
    return chapter_profile, pd.DataFrame(rows).set_index("dataset")


def train_budgets(root: Path, cfg: MoEStudyConfig, out: Path, seed: int | None = None) -> dict[str, MoEAudioClassifier]:
    """``MoEAudioClassifier`` trained under the ``accuracy`` and ``latency`` budgets (run folders in ``out``),
    with training seed ``seed`` (default ``cfg.seed``)."""
    overrides = {"target_sample_rate": cfg.target_sample_rate} if cfg.target_sample_rate else {}
    seed = cfg.seed if seed is None else int(seed)
    runs = {}
    for budget in ("accuracy", "latency"):
        clf = MoEAudioClassifier(budget=budget, explainability="gradcam", device=cfg.device, seed=seed, lr=cfg.lr,
                                 **overrides)
        runs[budget] = clf.fit(root, root / "metadata.csv", epochs=cfg.epochs, batch_size=cfg.batch_size,
                               out_dir=out / f"run_{budget}", overwrite=True)
    return runs


def split_data(clf: MoEAudioClassifier, root: Path, split: str = "test") -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    """The split's clips at the classifier's front-end rate and length, targets, and their metadata rows."""
    rows = split_rows(root, root / "metadata.csv", split)
    x, y = load_split(rows, clf.labels, clf.spectro.sample_rate, clf.spectro.num_samples)
    meta = pd.DataFrame([{"filepath": r.relpath, "label": ";".join(r.labels), **r.extra} for r in rows])
    return x, y, meta


def train_baseline(clf: MoEAudioClassifier, root: Path, cfg: MoEStudyConfig,
                   seed: int | None = None) -> tuple[MonolithicCNN, list[float]]:
    """The monolithic CNN whose FLOPs per sample match the MoE network's, trained on the same clips with the
    same epochs, batch size and learning rate (the epoch with the best validation accuracy kept), with
    training seed ``seed`` (default ``cfg.seed``)."""
    device = resolve_device(cfg.device)
    x_tr, y_tr, _ = split_data(clf, root, "train")
    x_va, y_va, _ = split_data(clf, root, "val")
    generator = seed_everything(cfg.seed if seed is None else int(seed))
    model = matched_baseline(clf.network, clf.spectro.num_samples, waveform=x_va[:8].to(device)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    best, best_state, history = -1.0, None, []
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=generator)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = F.cross_entropy(model(x_tr[idx].to(device)), y_tr[idx].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        accuracy = _accuracy(model, x_va, y_va, device)
        history.append(accuracy)
        if accuracy > best:
            best, best_state = accuracy, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval(), history


def compare_over_seeds(root: Path, cfg: MoEStudyConfig, out: Path,
                       trained: dict[int, tuple[dict[str, MoEAudioClassifier], MonolithicCNN]] | None = None,
                       split: str = "test") -> pd.DataFrame:
    """Both budgets and the matched CNN for every seed of ``cfg.seeds`` on the same corpus: one row per
    (seed, model) with accuracy, multiply-accumulates and seconds per clip, and mean K for the MoE.

    Args:
        trained: seed -> (``train_budgets`` result, trained baseline) already at hand (not retrained).
        out: parent of the per-seed run folders ``seed_<s>/``.
    """
    trained = dict(trained or {})
    rows = []
    for seed in cfg.seeds:
        if seed in trained:
            runs, baseline = trained[seed]
        else:
            runs = train_budgets(root, cfg, out / f"seed_{seed}", seed=seed)
            baseline, _ = train_baseline(runs["accuracy"], root, cfg, seed=seed)
        x, y, _ = split_data(runs["accuracy"], root, split)
        models = {"moe (accuracy)": runs["accuracy"].network, "moe (latency)": runs["latency"].network,
                  "monolithic CNN": baseline}
        costs = cost_table(models, x, y, cfg.device, repeats=1)
        rows += [{"seed": int(seed), "model": name, **row.to_dict()} for name, row in costs.iterrows()]
    return pd.DataFrame(rows)


def summarise_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: mean, standard deviation, min and max of accuracy over seeds, mean cost and K, and the
    MoE's paired accuracy difference to the CNN (same seed) with the number of seeds it won or tied."""
    summary = table.groupby("model").agg(seeds=("seed", "count"), accuracy_mean=("accuracy", "mean"),
                                         accuracy_std=("accuracy", "std"), accuracy_min=("accuracy", "min"),
                                         accuracy_max=("accuracy", "max"), flops_per_sample=("flops_per_sample", "mean"),
                                         mean_k=("mean_k", "mean"))
    cnn = table[table["model"] == "monolithic CNN"].set_index("seed")["accuracy"]
    for name in summary.index:
        diff = table[table["model"] == name].set_index("seed")["accuracy"] - cnn
        summary.loc[name, "minus_cnn_mean"] = float(diff.mean())
        summary.loc[name, "seeds_at_least_cnn"] = int((diff >= -1e-9).sum())
    return summary


def routing_table(clf: MoEAudioClassifier, x: torch.Tensor, meta: pd.DataFrame) -> pd.DataFrame:
    """One row per test clip: label, quality subset, sample rate, K, the experts run and whether it was right."""
    clf.network.eval()
    rows = []
    with torch.no_grad():
        for i in range(0, len(x), 32):
            out = clf.network(x[i:i + 32].to(clf.device))
            for j in range(out.k.shape[0]):
                m = meta.iloc[i + j]
                rows.append({"label": m["label"], "subset": m.get("subset", ""), "sample_rate": m.get("sample_rate", ""),
                             "k": int(out.k[j]), "predicted": clf.labels.names[int(out.logits[j].argmax())],
                             **{e.name: bool(s) for e, s in zip(clf.policy.experts, out.selected[j].tolist())}})
    table = pd.DataFrame(rows)
    table["correct"] = table["predicted"] == table["label"]
    return table


def saliency_agreement(clf: MoEAudioClassifier, x: torch.Tensor, count: int = 16) -> pd.DataFrame:
    """Per clip: Spearman correlation between the router's |gradient x input| and Grad-CAM of the predicted
    class on the spectrogram grid (how far the always-on saliency stands in for the human explanation)."""
    from scipy.stats import spearmanr

    rows = []
    clf.network.eval()
    for i in range(min(count, len(x))):
        w = x[i:i + 1].to(clf.device)
        out = clf.network(w)
        cam = gradcam(clf.network, w, int(out.logits[0].argmax()))[0]
        sal = out.saliency[0, 0].abs()
        rho = spearmanr(sal.flatten().cpu().numpy(), cam.flatten().cpu().numpy()).statistic
        rows.append({"clip": i, "spearman": float(rho) if np.isfinite(rho) else math.nan})
    return pd.DataFrame(rows)


def cost_table(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, device: str | torch.device,
               repeats: int = 3) -> pd.DataFrame:
    """Accuracy, multiply-accumulates per sample, seconds per sample (best of ``repeats``) and, for an MoE, mean K
    (NaN for a plain classifier) on the same clips; accuracy and K come from the timed passes."""
    device = resolve_device(device)
    rows = []
    for name, model in models.items():
        model.eval()
        flops = flops_per_sample(model, x.shape[1], waveform=x[:32].to(device))
        seconds, results = best_wall_times({name: lambda: _scores(model, x, y, device)}, repeats, device)
        accuracy, mean_k = results[name]
        rows.append({"model": name, "accuracy": accuracy, "flops_per_sample": flops,
                     "seconds_per_sample": seconds[name] / len(x), "mean_k": mean_k})
    return pd.DataFrame(rows).set_index("model")


@torch.no_grad()
def _scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """Accuracy and mean K (NaN unless the model returns an ``MoEOutput``) of a classifier, in eval mode."""
    model.eval()
    logits, ks = [], []
    for i in range(0, len(x), 32):
        out = model(x[i:i + 32].to(device))
        logits.append((out.logits if hasattr(out, "logits") else out).cpu())
        if hasattr(out, "k"):
            ks.append(out.k.float().cpu())
    accuracy = float((torch.cat(logits).argmax(1) == y).float().mean())
    return accuracy, float(torch.cat(ks).mean()) if ks else math.nan


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Accuracy of a classifier returning logits, or an ``MoEOutput`` holding them, in eval mode."""
    return _scores(model, x, y, device)[0]
