"""The chapter 2 pipeline end to end on a tiny corpus and a tiny encoder."""

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.studies import lmac as study


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        patch.delenv("AUDIOMNIST_ROOT", raising=False)
        cfg = study.make_config(num_speakers=5, repetitions=2, hidden_size=32, num_layers=2, conv_channels=16,
                                classifier_epochs=2, lmac_epochs=1, finetune_epochs=1, lmac_channels=4,
                                num_explained=3, ig_steps=2, num_samples=2, bank_seconds=2.0, device="cpu")
        data = study.load_study_data(cfg)
        ckpt = tmp_path_factory.mktemp("ckpt")
        classifier, history, accuracy = study.train_classifier(data, cfg, ckpt)
        lmac, lmac_history = study.train_interpreter(classifier, data, cfg)
        masks = study.explain_all(lmac, data["test"].mixture[:3], cfg)
    return cfg, data, ckpt, accuracy, lmac, lmac_history, masks


def test_splits_hold_noisy_digits_and_the_ood_noise_is_unseen(run):
    cfg, data, *_ = run
    assert set(data) == {"train", "val", "test", "test_ood"}
    assert set(data["train"].noise_type) <= set(cfg.noise_types)
    assert set(data["test_ood"].noise_type) == {"traffic"}
    assert torch.equal(data["test"].labels, data["test_ood"].labels)


def test_classifier_checkpoint_and_accuracies(run):
    _, _, ckpt, accuracy, lmac, lmac_history, _ = run
    assert (ckpt / "hubert_classifier.pt").is_file()
    assert set(accuracy) == {"test", "test_ood"} and all(0 <= a <= 1 for a in accuracy.values())
    assert lmac_history.stage == ["lmac", "finetune"]


def test_every_method_gives_masks_that_score(run):
    _, data, _, _, lmac, _, masks = run
    assert list(masks) == list(study.METHODS)
    shape = masks["lmac"].shape
    assert all(m.shape == shape for m in masks.values()) and shape[0] == 3
    test = data["test"].subset([0, 1, 2])
    table = study.score_masks(lmac, test.mixture, masks["gradcam"], test.clean, test.noise, test.word_span)
    assert len(table) == 3 and table["gt_auc"].between(0, 1).all()


def test_unknown_parameters_are_refused():
    with pytest.raises(ConfigError, match="lmac_epoch.*lmac_epochs"):
        study.make_config(lmac_epoch=3)


def test_phoneme_table_covers_every_phoneme_of_every_clip(run):
    _, data, _, _, _, _, masks = run
    test = data["test"].subset([0, 1, 2])
    table = study.phoneme_table(masks, test)
    per_method = sum(len(p) for p in test.phonemes)
    assert len(table) == per_method * len(study.METHODS)
    assert table["mean"].between(0, 1).all() and set(table["class"]) <= {"vowel", "plosive", "fricative", "nasal",
                                                                        "approximant", "other"}
    assert "vowel" in set(table["class"])


def test_lmac_explains_a_spectrogram_cnn_too(run, tmp_path):
    from audioxai.explain.lmac import LMAC, LMACConfig, train_lmac
    cfg, data, *_ = run
    cnn, accuracy = study.train_cnn_classifier(data, cfg, tmp_path)
    assert (tmp_path / "cnn_classifier.pt").is_file() and 0 <= accuracy <= 1
    low = study.at_rate(data["train"], 8000)
    assert low.mixture.shape[1] == 8000 and low.word_span == data["train"].word_span
    lmac = LMAC(cnn, LMACConfig(channels=4, n_fft=256, hop_length=64, num_epochs=1, device="cpu"))
    train_lmac(lmac, (low.mixture,), (low.mixture[:4],))
    assert lmac(low.mixture[:2]).shape == (2, 129, 126)


def test_cnn_comparison_scores_lmac_and_baselines(run, tmp_path):
    cfg, data, *_ = run
    table, accuracy = study.cnn_comparison(data, cfg, tmp_path, methods=("saliency",), channels=4)
    assert list(table.index) == ["lmac", "saliency"] and "gt_auc" in table.columns and 0 <= accuracy <= 1


def test_waveform_domain_comparison_scores_temporal_masks(run):
    cfg, data, _, _, lmac, _, _ = run
    table, masks, wave_lmac, history = study.domain_comparison(lmac.classifier, data, cfg)
    assert wave_lmac.config.mask_domain == "waveform" and history.stage == ["lmac", "finetune"]
    n = min(cfg.num_explained, len(data["test"]))
    assert all(m.shape == (n, data["test"].mixture.shape[-1]) for m in masks.values())
    assert sorted(table["method"].unique()) == sorted(study.METHODS) and len(table) == n * len(study.METHODS)
    # x * m against the clean digit: finite for every method
    assert table["si_sdr"].notna().all() and table["gt_auc"].between(0, 1).all()
    # the stft interpreter it came from is untouched
    assert lmac.config.mask_domain == "stft"
