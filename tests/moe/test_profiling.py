import dataclasses
import json
import shutil
from collections import Counter

import pytest

from audioxai.data.folders import read_metadata, write_metadata
from audioxai.data.moe_corpus import load_truth, moe_corpus
from audioxai.errors import ConfigError, DatasetError
from audioxai.moe.profiling import DatasetProfile, load_profile, profile_dataset, quality_score, save_profile

TINY = dict(num_per_class=8, duration_s=(0.4, 0.6), noise_kinds=("white", "pink"), progress=False)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Tiny corpora in a temporary cache: band-limited sonar, broadband, and mixed with noisy and clipped files."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield {
            "sonar": moe_corpus(classes=("sonar_ping", "sonar_hum"), noisy_share=0.0, clipped_share=0.0, seed=1,
                                **TINY),
            "broadband": moe_corpus(classes=("clicks", "engine", "rain"), noisy_share=0.0, clipped_share=0.0, seed=2,
                                    **TINY),
            "mixed": moe_corpus(classes=("sonar_ping", "sonar_hum", "clicks", "engine", "rain", "digit_seven"),
                                noisy_share=0.5, clipped_share=0.25, clip_threshold=(0.2, 0.5), seed=3, **TINY),
        }


@pytest.fixture(scope="module")
def mixed_profile(corpora):
    root = corpora["mixed"]
    return profile_dataset(root, root / "metadata.csv")


def _subset_csv(root, subsets, path):
    """A metadata.csv (written at ``path``) of the train rows of ``root`` whose subset is in ``subsets``."""
    rows = [r for r in read_metadata(root / "metadata.csv") if r.split == "train" and r.extra["subset"] in subsets]
    return write_metadata(rows, path)


def test_sample_rates_match_the_truth_exactly(corpora, mixed_profile):
    truth = load_truth(corpora["mixed"]).datasets["train"]
    assert mixed_profile.fs_unique == truth.fs_unique == [8000, 16000, 22050, 44100]
    assert mixed_profile.fs_mode == truth.fs_mode
    files = [f for f in load_truth(corpora["mixed"]).files if f.split == "train"]
    assert mixed_profile.fs_counts == {str(r): n for r, n in sorted(Counter(f.sample_rate for f in files).items())}
    assert mixed_profile.num_files == mixed_profile.num_profiled == truth.num_files == 24
    assert mixed_profile.class_counts == truth.class_counts and mixed_profile.num_classes == 6
    seconds = [f.num_samples / f.sample_rate for f in files]
    assert mixed_profile.duration["min"] == pytest.approx(min(seconds))
    assert mixed_profile.duration["max"] == pytest.approx(max(seconds))
    assert mixed_profile.total_seconds == pytest.approx(sum(seconds))


@pytest.mark.parametrize("name", ["sonar", "broadband"])
def test_fmax_eff_is_within_ten_percent_of_the_true_band_edge(corpora, name):
    root = corpora[name]
    truth = load_truth(root).datasets["train"]
    profile = profile_dataset(root, root / "metadata.csv")
    assert truth.band_limited == (name == "sonar")
    assert truth.fmax_hz == (1800.0 if name == "sonar" else 0.45 * 44100)
    assert abs(profile.fmax_eff - truth.fmax_hz) <= 0.1 * truth.fmax_hz
    assert 0.0 <= profile.fmin_eff < 0.5 * profile.fmax_eff
    for label, stats in profile.per_class.items():  # each class alone, too
        assert abs(stats["fmax_eff"] - truth.fmax_hz) <= 0.1 * truth.fmax_hz, label


def test_clipping_rate_is_within_one_point_of_the_truth(corpora, mixed_profile, tmp_path):
    truth = load_truth(corpora["mixed"]).datasets["train"]
    assert truth.clipping_rate > 0.01
    assert abs(mixed_profile.clipping_rate - truth.clipping_rate) <= 0.01
    clipped = profile_dataset(corpora["mixed"], _subset_csv(corpora["mixed"], {"clipped"}, tmp_path / "c.csv"))
    files = [f for f in load_truth(corpora["mixed"]).files if f.split == "train" and f.subset == "clipped"]
    exact = sum(f.clipped_samples for f in files) / sum(f.num_samples for f in files)
    assert abs(clipped.clipping_rate - exact) <= 0.01
    clean = profile_dataset(corpora["sonar"], corpora["sonar"] / "metadata.csv")
    assert clean.clipping_rate == 0.0


def test_snr_proxy_and_quality_are_lower_for_noisy_and_clipped_files(corpora, tmp_path):
    root = corpora["mixed"]
    clean = profile_dataset(root, _subset_csv(root, {"clean"}, tmp_path / "clean.csv"))
    noisy = profile_dataset(root, _subset_csv(root, {"noisy"}, tmp_path / "noisy.csv"))
    degraded = profile_dataset(root, _subset_csv(root, {"noisy", "clipped"}, tmp_path / "degraded.csv"))
    assert noisy.snr_db_proxy < clean.snr_db_proxy - 10.0
    assert clean.snr_db_proxy > 25.0
    assert degraded.quality_score < clean.quality_score - 0.2
    assert 0.0 <= degraded.quality_score < clean.quality_score <= 1.0
    assert noisy.per_class["engine"]["quality_score"] < clean.per_class["engine"]["quality_score"]


def test_quality_score_follows_its_formula():
    assert quality_score([45.0, 30.0], 0.0) == 1.0
    assert quality_score([15.0, 45.0, -5.0], 0.0) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert quality_score([60.0], 0.01) == pytest.approx(0.36787944)


def test_transient_rate_is_higher_for_clicks_than_for_tonal_classes(corpora, mixed_profile):
    broadband = profile_dataset(corpora["broadband"], corpora["broadband"] / "metadata.csv")
    sonar = profile_dataset(corpora["sonar"], corpora["sonar"] / "metadata.csv")
    clicks = broadband.per_class["clicks"]["transient_rate"]
    assert clicks > 0.5
    assert clicks > broadband.per_class["engine"]["transient_rate"] + 0.3
    assert clicks > max(s["transient_rate"] for s in sonar.per_class.values()) + 0.3
    tonal = max(mixed_profile.per_class[c]["transient_rate"] for c in ("sonar_ping", "sonar_hum"))
    assert mixed_profile.per_class["clicks"]["transient_rate"] > tonal


def test_spectral_flatness_is_higher_for_rain_than_for_tonal_lines(corpora):
    broadband = profile_dataset(corpora["broadband"], corpora["broadband"] / "metadata.csv")
    sonar = profile_dataset(corpora["sonar"], corpora["sonar"] / "metadata.csv")
    rain, hum = broadband.per_class["rain"]["spectral_flatness"], sonar.per_class["sonar_hum"]["spectral_flatness"]
    assert 0.0 < hum < rain - 0.3 and rain <= 1.0


def test_profile_is_deterministic_and_max_files_draws_a_seeded_subset(corpora, mixed_profile):
    root = corpora["mixed"]
    assert profile_dataset(root, root / "metadata.csv") == mixed_profile
    a = profile_dataset(root, root / "metadata.csv", max_files=6, seed=4)
    assert a == profile_dataset(root, root / "metadata.csv", max_files=6, seed=4)
    assert a.num_profiled == 6 and a.num_files == 24 and a.fs_unique == mixed_profile.fs_unique
    assert profile_dataset(root, root / "metadata.csv", split="val").num_files == 12
    with pytest.raises(ConfigError, match="max_files"):
        profile_dataset(root, root / "metadata.csv", max_files=0)


def test_profile_round_trips_through_json(mixed_profile, tmp_path):
    path = save_profile(mixed_profile, tmp_path / "run" / "profile.json")
    assert load_profile(path) == mixed_profile
    data = json.loads(path.read_text())
    assert {"fs_mode", "fmin_eff", "fmax_eff", "quality_score", "per_class"} <= set(data)
    data["fmax_hz"] = 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="fmax_hz"):
        load_profile(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(tmp_path / "none.json")


def test_multi_label_rows_count_for_each_label(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path / "cache"))
        root = moe_corpus(classes=("sonar_hum", "clicks", "rain"), num_per_class=3, duration_s=(0.2, 0.3),
                          noisy_share=0.0, clipped_share=0.0, multi_label=True, mix_share=1.0, seed=4, progress=False)
    profile = profile_dataset(root, root / "metadata.csv")
    assert profile.multi_label and profile.num_files == 3
    assert sum(profile.class_counts.values()) == 6
    assert set(profile.per_class) == set(profile.class_counts)


@pytest.fixture
def small_root(corpora, tmp_path):
    """A dataset root holding two copies of corpus files, for bad metadata."""
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    for i, src in enumerate(sorted((corpora["sonar"] / "train").glob("*.wav"))[:2]):
        shutil.copy(src, root / "train" / f"f{i}.wav")
    return root


def test_bad_metadata_errors_name_the_row_and_file(small_root, tmp_path):
    csv = small_root / "metadata.csv"
    with pytest.raises(DatasetError, match="does not exist"):
        profile_dataset(small_root, csv)
    csv.write_text("filepath,split\ntrain/f0.wav,train\n")
    with pytest.raises(DatasetError, match="no 'label' column"):
        profile_dataset(small_root, csv)
    csv.write_text("filepath,split,label\ntrain/f0.wav,train,a\ntrain/f1.wav,train,\n")
    with pytest.raises(DatasetError, match=r"row 3 \(train/f1.wav\) has an empty label"):
        profile_dataset(small_root, csv)
    (small_root / "train" / "bad.wav").write_bytes(b"RIFF not really audio")
    csv.write_text("filepath,split,label\ntrain/f0.wav,train,a\ntrain/bad.wav,train,b\n")
    with pytest.raises(DatasetError, match=r"row 3 names 'train/bad.wav', which is not readable audio"):
        profile_dataset(small_root, csv)
    shutil.copy(small_root / "train" / "f0.wav", tmp_path / "outside.wav")
    csv.write_text("filepath,split,label\ntrain/f0.wav,train,a\n../outside.wav,train,b\n")
    with pytest.raises(DatasetError, match=r"row 3 has filepath '../outside.wav'.*outside the dataset root"):
        profile_dataset(small_root, csv)
    csv.write_text("filepath,split,label\ntrain/f0.wav,train,a\ntrain/f1.wav,train,b\n")
    with pytest.raises(DatasetError, match="split 'test' .* has no rows"):
        profile_dataset(small_root, csv, split="test")
    profile = profile_dataset(small_root, csv)
    assert dataclasses.asdict(profile)["class_counts"] == {"a": 1, "b": 1}
    assert isinstance(profile, DatasetProfile)
