import dataclasses
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from audioxai.data.folders import FolderDataset, read_metadata
from audioxai.data.moe_corpus import MoECorpusConfig, generate_moe_corpus, load_truth, moe_corpus
from audioxai.data.moe_sounds import BAND_LIMITED_CLASSES, SOUND_CLASSES, synthesize_event
from audioxai.errors import ConfigError, DatasetError

RATES = [8000, 16000, 22050, 44100]
SMALL = dict(classes=("sonar_ping", "sonar_hum", "clicks", "engine", "rain", "digit_seven"), num_per_class=6,
             duration_s=(0.3, 0.4), noisy_share=0.25, clipped_share=0.25, noise_kinds=("white", "pink"), seed=5,
             progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # the same session cache that tests/data/conftest.py sets for every test
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield moe_corpus(**SMALL)


@pytest.fixture(scope="module")
def rows(corpus):
    return {r.relpath: r for r in read_metadata(corpus / "metadata.csv", check_audio=True)}


def _energy_above(x: np.ndarray, fs: int, edge: float) -> tuple[float, float]:
    """Shares of the energy above ``edge`` and in the top tenth of the band below it."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / fs)
    top = (freqs > 0.9 * edge) & (freqs <= edge)
    return power[freqs > 1.01 * edge].sum() / power.sum(), power[top].sum() / power.sum()


def test_layout_follows_metadata_csv_and_truth_lists_every_file(corpus, rows):
    truth = load_truth(corpus)
    assert sorted(rows) == sorted(f.filepath for f in truth.files) == sorted(
        str(p.relative_to(corpus)) for p in corpus.glob("*/*.wav"))
    assert all(r.relpath.startswith(f"{r.split}/") for r in rows.values())
    counts = Counter((r.split, r.labels) for r in rows.values())
    assert counts == {(s, (c,)): n for c in SMALL["classes"] for s, n in (("train", 4), ("val", 1), ("test", 1))}
    extra = next(iter(rows.values())).extra
    assert {"sample_rate", "true_fmax_hz", "subset", "snr_db", "clipping_rate", "duration_s"} <= set(extra)
    assert truth.datasets["all"].class_counts == {c: 6 for c in sorted(SMALL["classes"])}


def test_sample_rates_are_exact_and_vary_within_each_class(corpus, rows):
    truth = load_truth(corpus)
    for f in truth.files:
        info = sf.info(str(corpus / f.filepath))
        assert info.samplerate == f.sample_rate == int(rows[f.filepath].extra["sample_rate"])
        assert info.frames == f.num_samples
    for label in SMALL["classes"]:
        assert {f.sample_rate for f in truth.files if f.labels == (label,)} == set(RATES)
    assert truth.datasets["all"].fs_unique == RATES
    assert truth.datasets["train"].fs_unique == RATES


def test_clean_files_hold_no_energy_above_their_band_edge(corpus):
    truth = load_truth(corpus)
    clean = [f for f in truth.files if f.subset == "clean"]
    assert len(clean) >= 12
    for f in clean:
        x, fs = sf.read(corpus / f.filepath)
        above, top = _energy_above(x, fs, f.true_fmax_hz)
        assert above < 1e-5, f.filepath
        expected = 1800.0 if f.band_limited else min(0.45 * fs, 0.45 * 22050 if "digit" in f.labels[0] else fs)
        assert f.true_fmax_hz == pytest.approx(expected)
        assert f.band_limited == (f.labels[0] in BAND_LIMITED_CLASSES)
        if f.labels[0] != "digit_seven":
            assert top > 1e-3, f.filepath  # the content reaches the edge
        assert np.abs(x).max() <= 0.9 + 1e-3


def test_clipped_files_sit_at_full_scale_at_the_recorded_rate(corpus, rows):
    truth = load_truth(corpus)
    clipped = [f for f in truth.files if f.subset == "clipped"]
    assert len(clipped) == len(SMALL["classes"])  # round(0.25 * 4) in train, none in val and test
    for f in clipped:
        x, _ = sf.read(corpus / f.filepath)
        measured = np.mean(np.abs(x) >= 0.999)
        assert 0.0 < f.clipping_rate == pytest.approx(float(rows[f.filepath].extra["clipping_rate"]), abs=1e-8)
        assert measured == pytest.approx(f.clipping_rate, abs=2e-3)
        assert 0.4 <= f.clip_threshold <= 0.9
    pooled = sum(f.clipped_samples for f in truth.files if f.split == "train") / sum(
        f.num_samples for f in truth.files if f.split == "train")
    assert truth.datasets["train"].clipping_rate == pytest.approx(pooled)
    assert truth.datasets["val"].clipping_rate == 0.0


def test_noisy_files_record_their_noise_and_snr(corpus, rows):
    truth = load_truth(corpus)
    noisy = [f for f in truth.files if f.subset == "noisy"]
    assert len(noisy) == len(SMALL["classes"])
    assert all(f.noise_kind in ("white", "pink") and 0.0 <= f.snr_db <= 15.0 for f in noisy)
    assert all(rows[f.filepath].extra["snr_db"] == "" and f.snr_db is None for f in truth.files if f.subset == "clean")
    assert truth.datasets["train"].mean_snr_db == pytest.approx(np.mean([f.snr_db for f in noisy]))
    assert truth.datasets["train"].noisy_share == pytest.approx(0.25)


def test_same_seed_gives_the_same_files_and_another_seed_others(tmp_path):
    cfg = MoECorpusConfig(classes=("sonar_hum", "clicks"), num_per_class=3, duration_s=(0.2, 0.3),
                          noisy_share=0.34, clipped_share=0.33, noise_kinds=("white",), seed=11)
    a = generate_moe_corpus(tmp_path / "a", cfg, progress=False)
    b = generate_moe_corpus(tmp_path / "b", cfg, progress=False)
    c = generate_moe_corpus(tmp_path / "c", dataclasses.replace(cfg, seed=12), progress=False)
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*.*"))
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*.*"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "train/clicks_0000.wav").read_bytes() != (c / "train/clicks_0000.wav").read_bytes()


def test_corpus_is_cached_by_config(corpus):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(corpus.parents[1]))
        assert moe_corpus(**SMALL) == corpus
    assert (corpus / "corpus_config.json").is_file()


def test_multi_label_rows_join_labels_with_semicolons(tmp_path):
    cfg = MoECorpusConfig(classes=("sonar_ping", "rain", "engine"), num_per_class=3, duration_s=(0.2, 0.3),
                          noisy_share=0.0, clipped_share=0.0, multi_label=True, mix_share=1.0, seed=2)
    root = generate_moe_corpus(tmp_path / "multi", cfg, progress=False)
    text = (root / "metadata.csv").read_text()
    assert text.count(";") == 9
    parsed = read_metadata(root / "metadata.csv")
    assert all(len(r.labels) == 2 and set(r.labels) <= set(cfg.classes) for r in parsed)
    truth = load_truth(root)
    for f in truth.files:  # every pair holds rain or engine, so the mixture's band edge is theirs, 0.45 fs
        assert f.true_fmax_hz == pytest.approx(0.45 * f.sample_rate) and not f.band_limited
    data = FolderDataset(root, split="train", multi_label=True, sample_rate=8000)
    assert all(float(data[i][1].sum()) == 2.0 for i in range(len(data)))


def test_sound_classes_are_deterministic_in_the_generator():
    for label in ("sonar_ping", "sonar_hum", "clicks", "engine", "rain"):
        a = synthesize_event(label, np.random.default_rng(3), 0.2, 16000, 1800.0)
        b = synthesize_event(label, np.random.default_rng(3), 0.2, 16000, 1800.0)
        assert a.shape == (3200,) and np.array_equal(a, b) and np.abs(a).max() > 0
    assert "digit_nine" in SOUND_CLASSES
    with pytest.raises(ConfigError, match="sonar_pong"):
        synthesize_event("sonar_pong", np.random.default_rng(0), 0.2, 16000, 1800.0)


@pytest.mark.parametrize("overrides, words", [
    ({"classes": ("sonar_ping", "whale")}, "whale"),
    ({"band_edge_hz": 3800.0}, "band_edge_hz"),
    ({"noisy_share": 0.7, "clipped_share": 0.5}, "clipped_share"),
    ({"clip_threshold": (0.5, 1.2)}, "clip_threshold"),
    ({"noise_kinds": ("hail",)}, "noise_kinds"),
    ({"num_per_class": 2}, "num_per_class"),
    ({"multi_label": True, "classes": ("rain",)}, "multi_label"),
])
def test_bad_config_is_refused_by_name(overrides, words):
    with pytest.raises(ConfigError, match=words):
        moe_corpus(progress=False, **overrides)


def test_load_truth_names_a_folder_without_truth(tmp_path):
    with pytest.raises(DatasetError, match="truth.json does not exist"):
        load_truth(tmp_path)
    (tmp_path / "truth.json").write_text('{"files": [{"filepath": 1}]}')
    with pytest.raises(DatasetError, match="not a MoECorpus truth file"):
        load_truth(tmp_path)
