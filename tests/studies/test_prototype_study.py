"""The chapter 3 pipeline end to end on a tiny corpus and a tiny detector."""

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.explain.prototypes import detector_embeddings, stage2_layers, stage2_loss
from audioxai.metrics.detection import equal_error_rate
from audioxai.models.checkpoints import load_checkpoint
from audioxai.models.detector import DetectorConfig, SpoofDetector
from audioxai.studies import prototype_xai as study


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        cfg = study.make_config(num_voices=5, utterances_per_voice=5, hidden_size=32, num_layers=1, conv_channels=16,
                                conformer_layers=1, detector_epochs=2, stage2_epochs=2, seeds=[0, 1], ig_steps=2,
                                batch_size=8, device="cpu", detector_noise_snr_db=[25.0, 40.0],
                                detector_speed_factors=[0.9, 1.0, 1.1])
        data = study.load_study_data(cfg)
        ckpt = tmp_path_factory.mktemp("ckpt")
        detector, history = study.train_detector_stage(data, cfg, ckpt)
        before = {k: v.clone() for k, v in detector.state_dict().items()}
        embeddings = study.frozen_embeddings(detector, data, cfg)
        runs = study.train_explainers(embeddings, cfg, study.stage2_layer_dims(detector))
        truth = study.frame_truth(detector, data["test"])
        maps = {f"prototype_{m}": study.prototype_maps(runs[(m, 0)][0], embeddings["test"][0])
                for m in ("ema", "fixed", "learnable")}
        maps.update(study.baseline_maps(detector, data["test"], cfg))
    return cfg, data, ckpt, detector, before, embeddings, runs, truth, maps


def test_the_detector_is_saved_as_the_average_of_its_best_epochs_and_stays_frozen(run):
    cfg, data, ckpt, detector, before, *_ = run
    assert (ckpt / "avg_5_best.pth").is_file()
    assert not any(p.requires_grad for p in detector.parameters())
    # stage 2 and every baseline ran: the detector's weights are bit-identical
    assert all(torch.equal(before[k], v) for k, v in detector.state_dict().items())
    assert 0.0 <= study.utterance_eer(detector, data["test"]) <= 1.0
    # the study's training knobs reach stage 1 (the checkpoint records its training config)
    meta = load_checkpoint(ckpt / "avg_5_best.pth")[1]["train"]
    assert meta["noise_snr_db"] == [25.0, 40.0] and meta["speed_factors"] == [0.9, 1.0, 1.1]
    assert meta["num_epochs"] == cfg.detector_epochs


def test_every_method_gives_one_map_per_test_clip_and_frame(run):
    _, data, _, detector, _, _, _, truth, maps = run
    frames = detector.frame_count(data["test"].waveform.shape[-1])
    assert set(maps) == set(study.METHODS)
    assert all(m.shape == (len(data["test"]), frames) and (m >= 0).all() for m in maps.values())
    assert truth["labels"].shape == (len(data["test"]), frames)


def test_tables_score_every_method_in_range(run):
    *_, truth, maps = run
    table = study.localisation_table(maps, truth)
    assert set(table.index) == set(study.METHODS)
    assert table.stack().between(0, 1).all()
    regions = study.region_table(maps, truth)
    assert set(regions["region"]) == {"bonafide_speech", "spoofed_speech", "transition", "non_speech"}


def test_ablation_covers_every_mode_and_seed(run):
    cfg, _, _, _, _, embeddings, runs, truth, _ = run
    assert set(runs) == {(m, s) for m in ("ema", "fixed", "learnable") for s in cfg.seeds}
    summary, per_run = study.ablation_table(runs, embeddings["test"], truth)
    assert len(per_run) == 3 * len(cfg.seeds) and set(summary["seeds"]) == {len(cfg.seeds)}
    auc = summary[summary["score"] == "frame_auc"]
    assert (auc["ci_low"] <= auc["mean"]).all() and (auc["mean"] <= auc["ci_high"]).all()


def test_no_detector_score_enters_stage_2(run):
    """Stage 2 sees only the encoder's embeddings and the labels: re-initialising the detector's
    classifier (Conformer and head) changes its scores but not the stage-2 loss."""
    cfg, data, _, detector, _, embeddings, runs, *_ = run
    explainer = runs[("ema", 0)][0]
    other = type(detector)(detector.config).eval()
    other.load_state_dict(detector.state_dict())
    torch.manual_seed(123)
    with torch.no_grad():
        for name, p in other.named_parameters():
            if not name.startswith("encoder."):
                p.normal_(0, 0.5)
    x = data["test"].waveform[:4]
    with torch.no_grad():
        assert not torch.allclose(detector(x), other(x))
        losses = []
        for model in (detector, other):
            emb = detector_embeddings(model, x, layers=stage2_layers(explainer.config))
            w = explainer(emb)
            losses.append(stage2_loss(w, explainer.prototype_logits(emb, 0.07), data["test"].labels[:4],
                                      torch.ones(w.shape, dtype=torch.bool), explainer.config)["total"])
    assert torch.equal(losses[0], losses[1])


def test_profiles_and_unknown_parameters(run):
    _, data, _, _, _, embeddings, runs, _, maps = run
    explainer = runs[("ema", 0)][0]
    profiles = study.importance_profiles(maps["prototype_ema"], explainer, embeddings["test"][0], data["test"].kind)
    assert len(profiles) == len(data["test"]) and profiles["concentration"].between(0, 1).all()
    with pytest.raises(ConfigError, match="detector_epoch.*detector_epochs"):
        study.make_config(detector_epoch=3)


def test_eer_by_type_splits_every_spoof_group_against_the_same_bona_fide_clips(run):
    _, data, _, detector, *_ = run
    table = study.detector_eer_by_type(detector, data)
    assert set(table["split"]) == set(data)
    for split, d in data.items():
        rows = table[table["split"] == split]
        spoofs = [(k, t) for k, t in zip(d.kind, d.spoof_type) if k != "bonafide"]
        assert set(zip(rows["kind"], rows["spoof_type"])) == set(spoofs)
        assert rows["clips"].sum() == len(spoofs)
        assert rows["split_eer"].eq(study.utterance_eer(detector, d)).all()
    # one group by hand: its clips and the split's bona fide clips, nothing else
    d, row = data["test"], table[table["split"] == "test"].iloc[0]
    scores = study.detector_scores(detector, d)
    bona = [i for i, k in enumerate(d.kind) if k == "bonafide"]
    group = [i for i, (k, t) in enumerate(zip(d.kind, d.spoof_type)) if (k, t) == (row["kind"], row["spoof_type"])]
    labels = torch.cat([torch.zeros(len(bona)), torch.ones(len(group))])
    assert row["eer_vs_bonafide"] == pytest.approx(equal_error_rate(scores[bona + group], labels))
    assert row["mean_spoof_score"] == pytest.approx(float(scores[group].mean()))
    assert table[["eer_vs_bonafide", "mean_spoof_score", "mean_bonafide_score"]].stack().between(0, 1).all()


def test_stage_1_fine_tunes_a_local_wav2vec2_folder_when_given_one(run, tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from audioxai.models.detector import load_detector

    cfg, data = run[0], run[1]
    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 conv_dim=(8,) * 7, num_conv_pos_embeddings=16,
                                 num_conv_pos_embedding_groups=4)).save_pretrained(tmp_path / "w2v")
    pretrained = study.make_config(**{**cfg.__dict__, "encoder_checkpoint": str(tmp_path / "w2v"),
                                      "detector_epochs": 1, "detector_encoder_lr": 1e-5})
    detector, history = study.train_detector_stage(data, pretrained, tmp_path / "ckpt")
    # the encoder is the folder's (24 wide), not the study's small one (32), and the saved average reloads
    assert detector.config.hidden_size == 24 and detector.config.hidden_size != cfg.hidden_size
    meta = load_checkpoint(tmp_path / "ckpt" / "avg_5_best.pth")[1]
    assert meta["train"]["encoder_lr"] == 1e-5 and meta["encoder"]["hidden_size"] == 24
    reloaded = load_detector(tmp_path / "ckpt" / "avg_5_best.pth")
    x = data["test"].waveform[:2]
    assert torch.allclose(reloaded(x), detector.cpu()(x), atol=1e-5)
    with pytest.raises(ConfigError, match="not found"):
        study.train_detector_stage(data, study.make_config(**{**cfg.__dict__, "encoder_checkpoint": str(tmp_path / "nope")}),
                                   tmp_path / "ckpt2")


def test_frame_truth_takes_the_label_frame_each_detector_frame_is_centred_in(run):
    _, data, _, detector, *_ = run
    test = data["test"]
    n = test.frame_labels.shape[1]
    assert test.waveform.shape[-1] == 320 * n
    truth = study.frame_truth(detector, test)  # wav2vec2's framing: field [320k, 320k + 400), centre in frame k
    assert torch.equal(truth["labels"], test.frame_labels[:, :n - 1])
    base = detector.config.__dict__
    centred = SpoofDetector(DetectorConfig(**{**base, "first_conv_kernel": 634, "centre_frames": True}))
    truth = study.frame_truth(centred, test)
    assert all(torch.equal(truth[k], getattr(test, name)) for k, name in
               (("labels", "frame_labels"), ("speech", "speech_frames"), ("transition", "transition_frames")))
    late = SpoofDetector(DetectorConfig(**{**base, "first_conv_kernel": 634}))  # field [320k, 320k + 1024)
    truth = study.frame_truth(late, test)
    assert truth["labels"].shape == (len(test), late.frame_count(320 * n))
    for key, name in (("labels", "frame_labels"), ("speech", "speech_frames"), ("transition", "transition_frames")):
        assert torch.equal(truth[key], getattr(test, name)[:, 1:1 + truth[key].shape[1]]), key
