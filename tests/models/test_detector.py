import math

import pytest
import torch
from torch import nn
from transformers import HubertConfig, HubertModel, Wav2Vec2Model

import audioxai.models.detector_training as training_module
from audioxai.errors import ConfigError
from audioxai.models.asr import gabor_filterbank
from audioxai.models.checkpoints import load_checkpoint, save_checkpoint
from audioxai.models.detector import DetectorConfig, SpoofDetector, freeze, load_detector, multihead_attention_weights
from audioxai.models.detector_training import (DetectorTrainConfig, augment_batch, average_state_dicts, rank_epochs,
                                               speed_perturb, train_detector)
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig

TINY = DetectorConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_channels=16,
                      conformer_dim=32, num_head_tokens=2, conformer_layers=1, conformer_heads=2,
                      conformer_ffn_dim=64, depthwise_kernel_size=7)


def tiny_detector(seed: int = 0, **changes) -> SpoofDetector:
    torch.manual_seed(seed)
    config = TINY if not changes else DetectorConfig(**{**TINY.__dict__, **changes})
    return SpoofDetector(config).eval()


@pytest.fixture(scope="module")
def detector():
    return tiny_detector()


def test_shapes_and_frame_count_follow_the_20_ms_feature_encoder(detector):
    for samples in (400, 8000, 8123):
        x = torch.randn(2, samples) * 0.1
        details = detector.forward_details(x, output_attentions=True)
        frames = detector.frame_count(samples)
        assert frames == (samples - 400) // 320 + 1
        assert details["logits"].shape == (2, 2)
        assert details["embeddings"].shape == detector.embeddings(x).shape == (2, frames, 32)
        assert details["conformer_frames"].shape == details["conformer_frames_in"].shape == (2, frames, 32)
        assert [a.shape for a in details["encoder_attentions"]] == [(2, 2, frames, frames)]
        assert [a.shape for a in details["conformer_attentions"]] == [(2, 2, frames + 2, frames + 2)]
        assert torch.allclose(details["logits"], detector(x), atol=1e-6)
    assert detector.frame_count(399) == 0 and detector.frame_count(8000) == 24


def test_layer_embeddings_are_the_encoders_local_and_contextual_representations(detector):
    x = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        layers = detector.layer_embeddings(x)
        out = detector.encoder(x)
    frames = detector.frame_count(8000)
    assert list(layers) == ["features", "context"]
    assert layers["features"].shape == (2, frames, detector.layer_dim("features"))
    assert layers["context"].shape == (2, frames, detector.layer_dim("context"))
    assert torch.equal(layers["features"], out.extract_features) and torch.equal(layers["context"], out.last_hidden_state)
    # the local representation of a frame does not depend on audio outside its 400-sample field
    y = x.clone()
    y[:, 4000:] = 0.0
    with torch.no_grad():
        local = detector.layer_embeddings(y, ("features",))["features"]
    early = (4000 - 400) // 320 + 1  # frames whose field ends before sample 4000
    assert torch.allclose(local[:, :early], layers["features"][:, :early], atol=1e-5)
    with pytest.raises(ConfigError, match="'layer3'"):
        detector.layer_embeddings(x, ("layer3",))
    with pytest.raises(ConfigError, match="'layer3'"):
        detector.layer_dim("layer3")


@pytest.mark.parametrize("first_kernel", [10, 634])
@torch.no_grad()
def test_centred_frames_sit_on_the_label_frames_and_see_only_their_field(first_kernel):
    detector = tiny_detector(first_conv_kernel=first_kernel, centre_frames=True)
    field = 390 + first_kernel
    assert detector.receptive_field == field and sum(detector.frame_padding) == field - 320
    assert detector.min_samples == 320 and detector.frame_count(319) == 0
    assert detector(torch.randn(1, 320) * 0.1).shape == (1, 2)  # one label frame is enough once centred
    with pytest.raises(ConfigError, match=r"needs at least 320 samples \(20 ms"):
        detector(torch.randn(1, 319))
    for n in (1, 7, 50):
        assert detector.frame_count(320 * n) == n
        centres = detector.frame_centres(320 * n)
        assert (centres - (320 * torch.arange(n) + 159.5)).abs().max() <= 0.5  # label frame k's centre
    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(3)) * 0.1
    local = detector.layer_embeddings(x, ("features",))["features"]
    assert local.shape[1] == 50
    # frame 25's field is samples [start, start + field), centred on label frame 25's centre (8160)
    start = 8000 - detector.frame_padding[0]
    assert start + field / 2 == pytest.approx(8160, abs=0.5)

    def frame_25(y):
        return detector.layer_embeddings(y, ("features",))["features"][:, 25]

    y = x.clone()
    y[:, :start] = 0.0
    y[:, start + field:] = 0.0
    assert torch.allclose(frame_25(y), local[:, 25], atol=1e-5)  # nothing outside the field counts
    for n in (start - 1, start + field):
        y = x.clone()
        y[:, n] += 1.0
        assert torch.allclose(frame_25(y), local[:, 25], atol=1e-5), n
    for n in (start, start + field - 1):  # its first and last samples do
        y = x.clone()
        y[:, n] += 1.0
        assert (frame_25(y) - local[:, 25]).abs().max() > 1e-4, n
    ones = detector.frame_windows(torch.ones(1, 16000))
    assert ones.shape == (1, 50) and ones[0, 10:40].eq(field).all() and ones[0, 0] == field - detector.frame_padding[0]


def test_the_first_convolution_can_be_longer_and_uncentred_frames_start_at_the_hop():
    detector = tiny_detector(first_conv_kernel=634)
    assert detector.encoder.feature_extractor.conv_layers[0].conv.kernel_size == (634,)
    assert detector.receptive_field == 1024 and detector.frame_padding == (0, 0)
    assert detector.frame_count(16000) == (16000 - 1024) // 320 + 1 and detector.frame_count(1023) == 0
    assert detector.frame_centres(16000)[:2].tolist() == [511.5, 831.5]
    with pytest.raises(ConfigError, match=r"needs at least 1024 samples \(64 ms"):
        detector(torch.randn(1, 1000))
    for bad in (4, 10.0, True):
        with pytest.raises(ConfigError, match="first_conv_kernel"):
            DetectorConfig(first_conv_kernel=bad)
    with pytest.raises(ConfigError, match="centre_frames"):
        DetectorConfig(centre_frames="yes")
    with pytest.raises(ConfigError, match="filterbank_init"):
        DetectorConfig(filterbank_init=1)


def test_the_filterbank_init_starts_the_first_convolution_as_gabor_filters():
    detector = tiny_detector(first_conv_kernel=634, filterbank_init=True)
    weight = detector.encoder.feature_extractor.conv_layers[0].conv.weight[:, 0]
    assert torch.equal(weight, gabor_filterbank(16, 634))
    spectrum = torch.fft.rfft(weight, n=16000).abs()  # 1 Hz bins: each filter peaks at its own frequency
    peaks = spectrum.argmax(dim=1).float()
    assert peaks[0] == pytest.approx(150, abs=3) and peaks[-1] == pytest.approx(7040, abs=3)
    assert (peaks[2::2] > peaks[:-2:2]).all()
    assert not torch.equal(tiny_detector(first_conv_kernel=634).encoder.feature_extractor.conv_layers[0].conv.weight[:, 0],
                           weight)


def test_bad_waveforms_are_refused_with_the_fix(detector):
    with pytest.raises(ConfigError, match=r"needs at least 400 samples \(25 ms at 16 kHz\)"):
        detector(torch.randn(1, 399))
    with pytest.raises(ConfigError, match="NaN or infinite"):
        detector(torch.full((1, 800), float("nan")))
    with pytest.raises(ConfigError, match="NaN or infinite"):
        detector.embeddings(torch.full((1, 800), float("inf")))
    with pytest.raises(ConfigError, match=r"\(batch, samples\)"):
        detector(torch.randn(800))
    with pytest.raises(ConfigError, match="float waveform"):
        detector(torch.zeros(1, 800, dtype=torch.int16))
    with pytest.raises(ConfigError, match="odd kernel"):
        DetectorConfig(depthwise_kernel_size=8)


@torch.no_grad()
def test_the_input_level_is_not_normalised_away_unlike_with_wav2vec2_base_group_norm(detector):
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    assert (detector(x) - detector(0.5 * x)).abs().max() > 1e-2
    group = tiny_detector(feat_extract_norm="group")
    assert (group(x) - group(0.5 * x)).abs().max() < 5e-3  # per-utterance channel norm hides a global gain


@pytest.mark.parametrize("batch_first", [False, True])
def test_recomputed_attention_weights_match_nn_multihead_attention(batch_first):
    torch.manual_seed(1)
    attention = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    x = torch.randn(3, 7, 16) if batch_first else torch.randn(7, 3, 16)
    _, expected = attention(x, x, x, need_weights=True, average_attn_weights=False)
    assert torch.allclose(multihead_attention_weights(attention, x), expected, atol=1e-6)


def test_conformer_attentions_are_those_of_the_conformer_layer_inputs(detector):
    captured = []
    layer = detector.conformer.conformer_layers[0]
    hook = layer.self_attn.register_forward_pre_hook(lambda m, a, kw: captured.append(kw["query"]), with_kwargs=True)
    try:
        details = detector.forward_details(torch.randn(2, 4000) * 0.1, output_attentions=True)
    finally:
        hook.remove()
    q = captured[0]
    _, expected = layer.self_attn(q, q, q, need_weights=True, average_attn_weights=False)
    assert torch.allclose(details["conformer_attentions"][0], expected, atol=1e-6)


def test_from_pretrained_reads_a_local_wav2vec2_folder_and_refuses_others(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    encoder = Wav2Vec2Model(TINY.wav2vec2_config()).eval()
    encoder.save_pretrained(tmp_path / "w2v")
    model = SpoofDetector.from_pretrained(tmp_path / "w2v", conformer_dim=16, num_head_tokens=2, conformer_heads=2,
                                          conformer_ffn_dim=32, depthwise_kernel_size=5).eval()
    x = torch.randn(1, 4000) * 0.1
    assert torch.allclose(model.embeddings(x), encoder(x).last_hidden_state, atol=1e-5)
    assert model(x).shape == (1, 2) and model.config.hidden_size == 32
    with pytest.raises(ConfigError, match="not found"):
        SpoofDetector.from_pretrained(tmp_path / "missing")
    HubertModel(HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                             conv_dim=(8,) * 7, num_conv_pos_embedding_groups=4)).save_pretrained(tmp_path / "hubert")
    with pytest.raises(ConfigError, match="'hubert' checkpoint, not wav2vec2"):
        SpoofDetector.from_pretrained(tmp_path / "hubert")
    with pytest.raises(ConfigError, match="comes from the checkpoint"):
        SpoofDetector.from_pretrained(tmp_path / "w2v", hidden_size=64)
    with pytest.raises(ConfigError, match="comes from the checkpoint"):
        SpoofDetector.from_pretrained(tmp_path / "w2v", first_conv_kernel=634)
    long = Wav2Vec2Model(DetectorConfig(**{**TINY.__dict__, "first_conv_kernel": 634}).wav2vec2_config())
    long.save_pretrained(tmp_path / "long")
    centred = SpoofDetector.from_pretrained(tmp_path / "long", centre_frames=True, conformer_dim=16, num_head_tokens=2,
                                            conformer_heads=2, conformer_ffn_dim=32, depthwise_kernel_size=5)
    assert centred.config.first_conv_kernel == 634 and centred.receptive_field == 1024
    assert centred.frame_count(3200) == 10 and centred.embeddings(torch.randn(1, 3200) * 0.1).shape == (1, 10, 32)


def test_epochs_rank_by_val_eer_then_val_loss_and_nan_last():
    eer = [0.2, 0.1, 0.1, math.nan, 0.0]
    loss = [0.5, 0.9, 0.4, 0.1, 0.7]
    assert rank_epochs(eer, loss, 3) == [4, 2, 1]
    assert rank_epochs(eer, loss, 10) == [4, 2, 1, 0, 3]


def test_averaging_means_float_tensors_and_takes_integer_buffers_from_the_best():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    avg = average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 7
    shared = torch.randn(513, generator=torch.Generator().manual_seed(0)) * 3  # a plain mean moves some in the last bit
    assert torch.equal(average_state_dicts([{"m": shared.clone()} for _ in range(5)])["m"], shared)


def toy_split(n: int, seed: int, samples: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Label 0: a quiet sine (random pitch, phase, level); label 1: louder white noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    t = torch.arange(samples) / 16000
    pitch = 200 + 600 * torch.rand(n, 1, generator=g)
    sine = torch.sin(2 * math.pi * pitch * t + 6.28 * torch.rand(n, 1, generator=g))
    noise = torch.randn(n, samples, generator=g)
    u = torch.rand(n, 1, generator=g)
    spoof = labels[:, None] == 1
    return torch.where(spoof, (0.2 + 0.2 * u) * noise, (0.02 + 0.04 * u) * sine), labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two identical 2-epoch runs on separable toy data, recording every epoch's kept state."""
    train, val = toy_split(32, 0), toy_split(16, 1)
    config = DetectorTrainConfig(num_epochs=2, lr=3e-3, batch_size=4, device="cpu", seed=3)
    runs = []
    for run in range(2):
        states = []
        original = training_module._cpu_state

        def recording(model, states=states):
            states.append(original(model))
            return states[-1]

        training_module._cpu_state = recording
        try:
            model = tiny_detector(seed=5)
            history = train_detector(model, train, val, config, tmp_path_factory.mktemp(f"run{run}"))
        finally:
            training_module._cpu_state = original
        runs.append((model, history, states))
    return runs, val


def test_augmentation_noise_is_drawn_within_the_configured_snr_range():
    clean = torch.sin(torch.arange(32000) / 7.0).repeat(64, 1)
    config = DetectorTrainConfig(gain_db=0.0, shift_seconds=0.0, noise_snr_db=(30.0, 40.0))
    noisy = augment_batch(clean, config, torch.Generator().manual_seed(0))
    noise = noisy - clean
    snr = 10 * torch.log10(clean.pow(2).mean(dim=1) / noise.pow(2).mean(dim=1))
    assert snr.min() > 29.8 and snr.max() < 40.2 and snr.max() - snr.min() > 5  # spread over the range
    for bad in [(40.0, 30.0), (30.0,), (float("nan"), 30.0), (False, True)]:
        with pytest.raises(ConfigError, match="noise_snr_db"):
            DetectorTrainConfig(noise_snr_db=bad)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_moves_a_tone_by_the_factor_and_keeps_the_length(factor):
    t = torch.arange(32000) / 16000
    tone = torch.sin(2 * math.pi * 400 * t)
    fast = speed_perturb(tone, factor)
    assert fast.shape == tone.shape
    spectrum = torch.fft.rfft(fast[:16000] * torch.hann_window(16000)).abs()
    assert float(spectrum.argmax()) == pytest.approx(400 * factor, abs=1.0)  # 1 Hz bins
    assert torch.equal(speed_perturb(tone, 1.0), tone)


def test_speed_factors_are_validated_and_one_leaves_the_batch_unresampled():
    for bad in [(), (0.3,), ("fast",), (True,), (1.004,), (float("nan"),)]:
        with pytest.raises(ConfigError, match="speed_factors"):
            DetectorTrainConfig(speed_factors=bad)
    x = torch.randn(6, 8000)
    plain = DetectorTrainConfig(gain_db=0.0, shift_seconds=0.0, noise_snr_db=(200.0, 200.0))
    assert torch.allclose(augment_batch(x, plain, torch.Generator().manual_seed(1)), x, atol=1e-6)
    faster = DetectorTrainConfig(gain_db=0.0, shift_seconds=0.0, noise_snr_db=(200.0, 200.0), speed_factors=(1.25,))
    assert faster.speed_factors == (1.25,)
    assert torch.allclose(augment_batch(x, faster, torch.Generator().manual_seed(1)), speed_perturb(x, 1.25), atol=1e-6)


def test_the_encoder_can_learn_at_its_own_rate(tmp_path):
    for bad in (0.0, float("inf"), True):
        with pytest.raises(ConfigError, match="encoder_lr"):
            DetectorTrainConfig(encoder_lr=bad)
    with pytest.raises(ConfigError, match="lr=nan"):
        DetectorTrainConfig(lr=float("nan"))
    train, val = toy_split(16, 0), toy_split(8, 1)
    model = tiny_detector(seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = DetectorTrainConfig(num_epochs=1, lr=3e-3, encoder_lr=1e-12, batch_size=4, device="cpu", seed=3,
                                 keep_best=1)
    train_detector(model, train, val, config, tmp_path)
    moved = {k: float((v - before[k]).abs().max()) for k, v in model.state_dict().items() if v.is_floating_point()}
    encoder = [m for k, m in moved.items() if k.startswith("encoder.")]
    head = [m for k, m in moved.items() if not k.startswith("encoder.")]
    assert encoder and max(encoder) < 1e-7  # the encoder's weights stay put at a rate of 1e-12
    assert max(head) > 1e-3  # while the head trains at 3e-3


def test_two_epochs_separate_loud_noise_from_quiet_tones(trained):
    (model, history, _), _ = trained[0]
    assert len(history.train_loss) == len(history.val_eer) == 2
    assert history.final_val_eer <= 0.1 and min(history.val_eer) <= 0.1


def test_same_seed_gives_the_same_weights_on_cpu(trained):
    (a, _, _), (b, _, _) = trained[0]
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), key


def test_checkpoint_holds_the_average_of_the_best_epochs_and_loads_back(trained):
    (model, history, states), val = trained[0][0], trained[1]
    assert history.checkpoint_path.endswith("avg_5_best.pth")
    state, meta = load_checkpoint(history.checkpoint_path)
    assert meta["averaged_epochs"] == history.averaged_epochs and sorted(history.averaged_epochs) == [1, 2]
    assert "only 2 epochs ran" in meta["note"] and len(meta["averaged_val_eer"]) == 2
    best_first = [states[e - 1] for e in history.averaged_epochs]
    for key, value in state.items():
        if value.is_floating_point():
            assert torch.allclose(value, (best_first[0][key] + best_first[1][key]) / 2, atol=1e-6), key
        else:
            assert torch.equal(value, best_first[0][key]), key
    loaded = load_detector(history.checkpoint_path)
    assert not loaded.training
    assert torch.allclose(loaded(val[0][:4]), model(val[0][:4]), atol=1e-5)


def test_checkpoints_of_other_architectures_are_refused(tmp_path, trained):
    hubert = HubertClassifier(HubertClassifierConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=16,
                                                     conv_channels=8, num_samples=4000))
    save_checkpoint(tmp_path / "hubert.pt", hubert, hubert.describe())
    with pytest.raises(ConfigError, match=r"hubert.pt holds a 'hubert' model, not a spoof detector"):
        load_detector(tmp_path / "hubert.pt")
    path = trained[0][0][1].checkpoint_path
    with pytest.raises(ConfigError, match=r"avg_5_best.pth does not fit the spoof detector: .*shape mismatches"):
        load_detector(path, DetectorConfig(**{**TINY.__dict__, "conformer_ffn_dim": 48}))
    save_checkpoint(tmp_path / "bare.pt", tiny_detector())
    with pytest.raises(ConfigError, match="records no architecture"):
        load_detector(tmp_path / "bare.pt")
    assert isinstance(load_detector(tmp_path / "bare.pt", TINY), SpoofDetector)


def test_a_centred_long_field_detector_loads_back_as_itself_and_older_records_mean_the_defaults(tmp_path, caplog):
    model = tiny_detector(first_conv_kernel=634, centre_frames=True)
    save_checkpoint(tmp_path / "long.pth", model, model.describe())
    loaded = load_detector(tmp_path / "long.pth")
    assert loaded.config == model.config and loaded.frame_padding == model.frame_padding == (352, 352)
    x = torch.randn(2, 4800) * 0.1
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    plain = tiny_detector()
    meta = plain.describe()
    for key in ("first_conv_kernel", "centre_frames", "filterbank_init"):  # checkpoints from before these fields
        del meta["detector"][key]
    save_checkpoint(tmp_path / "old.pth", plain, meta)
    old = load_detector(tmp_path / "old.pth")
    assert old.config == plain.config and old.receptive_field == 400 and old.frame_padding == (0, 0)
    with caplog.at_level("WARNING", logger="audioxai.models.detector"):
        uncentred = load_detector(tmp_path / "long.pth", DetectorConfig(**{**model.config.__dict__, "centre_frames": False}))
    assert uncentred.frame_padding == (0, 0) and "trained with centre_frames=True" in caplog.text


def test_the_spectral_input_starts_at_zero_and_reads_a_centred_log_spectrum_per_frame():
    plain, spectral = tiny_detector(), tiny_detector(spectral_window=1024)
    assert plain.spectral is None and spectral.spectral.projection.weight.shape == (16, 513)
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():  # zero-initialised: the same detector as without it until it trains
        assert torch.equal(plain(x), spectral(x))
        logs = spectral.spectral.log_spectra(x, spectral.frame_count(8000))
    # reference: frame k's 1024-sample Hann window centred on sample 199 + 320 k (the 400-sample field's centre)
    hann = torch.hann_window(1024, dtype=torch.float64)
    padded = torch.nn.functional.pad(x.double(), (512, 1024))
    reference = torch.stack([torch.fft.rfft(padded[:, 199 + 320 * k: 199 + 320 * k + 1024] * hann).abs().clamp_min(1e-5).log()
                             for k in range(spectral.frame_count(8000))], dim=1)
    reference = reference - reference.mean(dim=1, keepdim=True)
    assert logs.shape == (2, 24, 513) and torch.allclose(logs.double(), reference, atol=2e-3)
    tone = 1e-3 * x[:1].clone()
    tone[0, 3000:6000] += torch.sin(2 * math.pi * 1000 * torch.arange(3000) / 16000)  # a 1 kHz burst, frames 9 to 18
    assert spectral.spectral.log_spectra(tone, 24)[0, 12].argmax() == 64  # bin 1000 / (16000 / 1024)
    # the utterance mean per bin cancels a global gain (as group norm does)
    assert (spectral.spectral.log_spectra(x, 24) - spectral.spectral.log_spectra(4 * x, 24)).abs().max() < 1e-3
    with torch.no_grad():  # once trained, it reaches the features, the logits and both embedding layers
        torch.nn.init.normal_(spectral.spectral.projection.weight, std=0.1)
        layers, base = spectral.layer_embeddings(x), plain.layer_embeddings(x)
        assert (spectral(x) - plain(x)).abs().max() > 1e-4
        assert all((layers[k] - base[k]).abs().max() > 1e-3 for k in layers)
        assert spectral(torch.randn(1, 400)).shape == (1, 2)  # one frame still works
    grad_x = x.clone().requires_grad_(True)
    spectral(grad_x).sum().backward()  # eval mode, as the explainers take it
    assert spectral.spectral.projection.weight.grad.abs().sum() > 0 and grad_x.grad.abs().sum() > 0
    for bad in (True, 5, 319, -1, 1.5, "1024"):
        with pytest.raises(ConfigError, match="spectral_window"):
            DetectorConfig(spectral_window=bad)


@pytest.mark.parametrize("changes", [{}, {"centre_frames": True}, {"first_conv_kernel": 634, "centre_frames": True}])
def test_each_spectral_window_is_centred_on_its_frames_receptive_field(changes):
    detector = tiny_detector(spectral_window=640, **changes)
    samples = 8000
    centres = detector.frame_centres(samples)  # in samples of the unpadded waveform
    k = 10
    for offset, inside in ((-319, True), (319, True), (-321, False), (321, False)):  # the window is 640 samples
        x = torch.zeros(1, samples)
        x[0, int(round(float(centres[k]) + offset))] = 1.0
        padded = torch.nn.functional.pad(x, detector.frame_padding)  # what the encoder (and the hook) reads
        spectra = detector.spectral.log_spectra(padded, detector.frame_count(samples))
        # a frame that sees only zeros sits at the floor; the per-bin mean shifts every frame alike
        assert bool((spectra[0, k] > spectra[0, k + 5]).all()) == inside, (changes, offset)


def test_a_spectral_detector_loads_back_as_itself_and_older_records_have_none(tmp_path):
    model = tiny_detector(spectral_window=640)
    torch.nn.init.normal_(model.spectral.projection.weight, std=0.1)
    save_checkpoint(tmp_path / "spectral.pth", model, model.describe())
    loaded = load_detector(tmp_path / "spectral.pth")
    x = torch.randn(2, 4800) * 0.1
    with torch.no_grad():
        assert loaded.config.spectral_window == 640 and torch.allclose(loaded(x), model(x), atol=1e-6)
    plain = tiny_detector()
    meta = plain.describe()
    del meta["detector"]["spectral_window"]  # checkpoints from before the field
    save_checkpoint(tmp_path / "old.pth", plain, meta)
    assert load_detector(tmp_path / "old.pth").spectral is None
    meta = model.describe()
    del meta["detector"]["spectral_norm"]  # spectral checkpoints from before the norm was a choice
    save_checkpoint(tmp_path / "old_spectral.pth", model, meta)
    older = load_detector(tmp_path / "old_spectral.pth")
    assert older.config.spectral_norm == "utterance" and older.spectral.fitted
    with torch.no_grad():
        assert torch.allclose(older(x), model(x), atol=1e-6)
    with pytest.raises(ConfigError, match="does not fit the spoof detector"):
        load_detector(tmp_path / "old.pth", DetectorConfig(**{**TINY.__dict__, "spectral_window": 640}))


def test_the_dataset_norm_standardises_each_bin_with_the_training_frames_statistics():
    detector = tiny_detector(spectral_window=640, spectral_norm="dataset")
    spectral = detector.spectral
    g = torch.Generator().manual_seed(4)
    train = torch.randn(5, 4800, generator=g) * torch.linspace(0.05, 0.5, 5)[:, None]
    x = torch.randn(2, 4800, generator=g) * 0.1
    assert not spectral.fitted
    with pytest.raises(ConfigError, match="fit_spectral_norm"):
        detector(x)
    assert detector.fit_spectral_norm(train, batch_size=2) and spectral.fitted
    frames = detector.frame_count(4800)
    assert int(spectral.fitted_frames) == 5 * frames
    # float64 reference: every frame's Hann-windowed log magnitude, pooled over the training clips
    hann = torch.hann_window(640, dtype=torch.float64)
    padded = torch.nn.functional.pad(train.double(), (320, 320))
    start = (detector.receptive_field - 1) // 2
    ref = torch.stack([torch.fft.rfft(padded[:, start + 320 * k:start + 320 * k + 640] * hann).abs().clamp_min(1e-5).log()
                       for k in range(frames)], dim=1).reshape(-1, 321)
    assert torch.allclose(spectral.bin_mean.double(), ref.mean(0), atol=1e-4)
    assert torch.allclose(spectral.bin_std.double(), ref.std(0).clamp_min(1e-3), atol=1e-4)
    z = spectral.log_spectra(train, frames).reshape(-1, 321)
    assert z.mean(0).abs().max() < 1e-3 and (z.std(0) - 1).abs().max() < 1e-3
    # unlike the utterance norm, a frame's input depends on its own window only, and a gain shows
    changed = x.clone()
    changed[:, 3200:] = 0.0  # frames whose windows end before sample 3200 must not move
    early = [k for k in range(frames) if start + 320 * k + 320 <= 3200]
    assert len(early) >= 3
    assert torch.allclose(spectral.log_spectra(changed, frames)[:, early], spectral.log_spectra(x, frames)[:, early])
    utterance = tiny_detector(spectral_window=640).spectral
    assert not torch.allclose(utterance.log_spectra(changed, frames)[:, early], utterance.log_spectra(x, frames)[:, early])
    shift = spectral.log_spectra(4 * x, frames) - spectral.log_spectra(x, frames)
    assert torch.allclose(shift, math.log(4) / spectral.bin_std.expand_as(shift), atol=1e-3)
    assert not tiny_detector(spectral_window=640).fit_spectral_norm(train) and not tiny_detector().fit_spectral_norm(train)
    with pytest.raises(ConfigError, match="only 'dataset'"):
        utterance.fit(train, frames)
    with pytest.raises(ConfigError, match="spectral_norm"):
        DetectorConfig(spectral_norm="clip")


def test_training_fits_the_dataset_norm_first_and_the_checkpoint_keeps_it(tmp_path):
    train, val = toy_split(16, 0), toy_split(8, 1)
    model = tiny_detector(seed=5, spectral_window=640, spectral_norm="dataset")
    config = DetectorTrainConfig(num_epochs=3, lr=3e-3, batch_size=4, device="cpu", seed=3, keep_best=3)
    history = train_detector(model, train, val, config, tmp_path)
    reference = tiny_detector(spectral_window=640, spectral_norm="dataset")
    reference.fit_spectral_norm(train[0])  # from the clean clips, not the augmented batches
    assert torch.equal(model.spectral.bin_mean, reference.spectral.bin_mean)
    assert torch.equal(model.spectral.bin_std, reference.spectral.bin_std)
    loaded = load_detector(history.checkpoint_path)
    assert loaded.config.spectral_norm == "dataset" and loaded.spectral.fitted
    assert torch.equal(loaded.spectral.bin_mean, reference.spectral.bin_mean)  # averaging keeps shared values exact
    assert int(loaded.spectral.fitted_frames) == 16 * model.frame_count(4000)
    x = val[0][:3]
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.cpu().eval()(x), atol=1e-5)
    # a detector built with the utterance norm does not take these weights, and the message says which norm
    with pytest.raises(ConfigError, match="trained with spectral_norm='dataset'"):
        load_detector(history.checkpoint_path, DetectorConfig(**{**TINY.__dict__, "spectral_window": 640}))
    fresh = tiny_detector(spectral_window=640, spectral_norm="dataset")
    assert not fresh.spectral.fitted
    fresh.load_state_dict(loaded.state_dict())  # loading the statistics marks them fitted
    assert fresh.spectral.fitted


def test_the_dataset_norm_is_fitted_on_the_windows_the_encoder_reads_under_centre_frames():
    detector = tiny_detector(spectral_window=1024, spectral_norm="dataset", centre_frames=True, first_conv_kernel=634)
    assert detector.frame_padding[0] > 0
    g = torch.Generator().manual_seed(1)
    clips = torch.randn(4, 6400, generator=g) * torch.tensor([0.02, 0.1, 0.3, 0.05])[:, None]
    clips[:, :1600] *= torch.linspace(0, 1, 1600)  # a fade-in, so the padded ends differ from the middle
    detector.fit_spectral_norm(clips)
    seen = []
    hook = detector.encoder.feature_extractor.register_forward_hook(
        lambda module, args, output: seen.append(detector.spectral.log_spectra(args[0], output.shape[-1])))
    try:
        with torch.no_grad():
            detector(clips)
    finally:
        hook.remove()
    z = seen[0].reshape(-1, 513)
    assert len(seen[0][0]) == detector.frame_count(6400) == 20
    assert z.mean(0).abs().max() < 1e-4 and (z.std(0) - 1).abs().max() < 1e-4


def test_freeze_turns_off_gradients_and_training():
    model = freeze(tiny_detector().train())
    assert not model.training and not any(p.requires_grad for p in model.parameters())
