import json
import logging
import math

import pytest
import torch
import torchaudio
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Model

from audioxai.errors import AudioInputError, ConfigError
from audioxai.models.asr import (VOCAB, ASRConfig, CTCRecognizer, build_ctc_model, decode_ids, encode_transcript,
                                 gabor_filterbank)
from audioxai.models.ctc_scores import confidence, forced_alignment, word_column, word_log_prob_fn

TINY = ASRConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
                 num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)
HF_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]  # wav2vec2-base-960h's order


def tiny_recognizer(seed: int = 0) -> CTCRecognizer:
    torch.manual_seed(seed)
    return CTCRecognizer.from_config(TINY).eval()


@pytest.fixture(scope="module")
def recognizer():
    return tiny_recognizer()


def speechlike(num_samples: int = 16000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / 16000
    return 0.3 * torch.sin(2 * math.pi * 220 * t) * torch.sin(2 * math.pi * 3 * t) + 0.05 * torch.randn(num_samples, generator=g)


def path_log_probs(path: list[int], vocab_size: int = len(VOCAB), peak: float = 0.9) -> torch.Tensor:
    """(T, V) log-posteriors putting ``peak`` on the token of each frame, the rest spread evenly."""
    probs = torch.full((len(path), vocab_size), (1 - peak) / (vocab_size - 1))
    probs[torch.arange(len(path)), torch.tensor(path)] = peak
    return probs.log()


def ids(text: str) -> list[int]:
    return [VOCAB.index(c) for c in text]


def test_vocabulary_encoding_and_decoding():
    assert VOCAB[:3] == ("<pad>", "|", "'") and VOCAB[3] == "a" and VOCAB[-1] == "z" and len(VOCAB) == 29
    assert encode_transcript("Set  BLUE") == ids("set|blue")
    assert decode_ids(ids("set|blue")) == "set blue"
    # greedy CTC: collapse repeats, drop blanks; a blank separates a real double letter
    frames = [0, 21, 21, 0, 7, 7, 7, 0, 7, 0, 0, 1, 1, 4, 4, 0]  # s=21, e=7, |=1, b=4
    assert decode_ids(frames, ctc=True) == "see b"
    with pytest.raises(ConfigError, match="character '7'"):
        encode_transcript("set 7")
    assert encode_transcript("") == []


def test_config_builds_a_ctc_model_with_the_character_vocabulary():
    model = build_ctc_model(TINY)
    cfg = model.config
    assert (cfg.vocab_size, cfg.pad_token_id, cfg.ctc_loss_reduction, cfg.ctc_zero_infinity) == (29, 0, "mean", True)
    assert model.lm_head.out_features == 29
    bank = gabor_filterbank(16, 80)
    assert torch.allclose(bank.norm(dim=1), torch.ones(16), atol=1e-5)
    assert abs(float(bank[0] @ bank[1])) < 0.05  # a cosine and a sine of one band are nearly orthogonal
    assert torch.equal(model.wav2vec2.feature_extractor.conv_layers[0].conv.weight[:, 0], bank)
    with pytest.raises(ConfigError, match="one entry per layer"):
        ASRConfig(conv_dim=(8, 8), conv_kernel=(10,), conv_stride=(5,))


def test_geometry_and_log_probs(recognizer):
    # kernels (80, 8, 4), strides (10, 8, 4): 1 + 79 + 7 * 10 + 3 * 80 samples, 320-sample hop
    assert recognizer.receptive_field == 390 and recognizer.hop_length == 320
    assert recognizer.frame_seconds == pytest.approx(0.02) and recognizer.sample_rate == 16000
    x = torch.stack([speechlike(8000, 0), speechlike(8000, 1)])
    lp = recognizer.log_probs(x)
    assert lp.shape == (2, recognizer.frame_count(8000), 29) == (2, 24, 29)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 24), atol=1e-5)
    texts = recognizer.transcribe(x)
    assert texts == recognizer.greedy_decode(lp) and len(texts) == 2
    assert all(set(t) <= set("abcdefghijklmnopqrstuvwxyz' ") for t in texts)


def test_padded_batches_with_lengths_match_single_utterances(recognizer):
    a, b = speechlike(8000, 0), speechlike(5000, 1)
    batch = torch.zeros(2, 8000)
    batch[0], batch[1, :5000] = a, b
    lp = recognizer.log_probs(batch, torch.tensor([8000, 5000]))
    alone = recognizer.log_probs(b[None])
    frames = recognizer.frame_count(5000)
    # layer-norm front-end + attention mask: the padded row's valid frames barely change
    assert torch.allclose(lp[1, : frames - 1], alone[0, : frames - 1], atol=1e-3)
    assert recognizer.transcribe(batch, torch.tensor([8000, 5000]))[0] == recognizer.transcribe(a[None])[0]


def test_prepare_checks_and_resamples(recognizer, caplog):
    with pytest.raises(AudioInputError, match="empty"):
        recognizer.prepare(torch.zeros(0), 16000)
    with pytest.raises(AudioInputError, match="NaN"):
        recognizer.prepare(torch.tensor([0.0, float("nan")] * 400), 16000)
    with pytest.raises(AudioInputError, match="2 channels"):
        recognizer.prepare(torch.zeros(2, 1000), 16000)
    with pytest.raises(AudioInputError, match=r"at least 390 samples \(0\.0244 s"):
        recognizer.prepare(torch.zeros(300), 16000)
    with caplog.at_level(logging.INFO, logger="audioxai.models.asr"):
        out = recognizer.prepare(speechlike(4000), 8000)
    assert out.shape == (8000,) and out.dtype == torch.float32
    assert "resampling to the recogniser's 16000 Hz" in caplog.text
    with pytest.raises(AudioInputError, match="at least 390 samples"):
        recognizer.prepare(torch.zeros(150), 8000)  # 300 samples once at 16 kHz


def test_save_and_load_round_trip(recognizer, tmp_path):
    folder = tmp_path / "asr"
    recognizer.save_pretrained(folder)
    recognizer.save_pretrained(folder)  # overwriting an existing folder works
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "vocab.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asr"]  # no temporary folders left behind
    loaded = CTCRecognizer.from_pretrained(folder)
    assert loaded.vocab == VOCAB and loaded.blank_id == 0 and loaded.normalize is False
    x = speechlike(8000)[None]
    assert torch.allclose(loaded.log_probs(x), recognizer.log_probs(x), atol=1e-6)


def test_any_hugging_face_ctc_folder_loads_with_its_vocab(tmp_path):
    torch.manual_seed(1)
    config = Wav2Vec2Config(vocab_size=len(HF_VOCAB), pad_token_id=0, hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16), conv_kernel=(10, 3),
                            conv_stride=(5, 2), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(HF_VOCAB)}))
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 16000, "do_normalize": True}))
    rec = CTCRecognizer.from_pretrained(tmp_path / "hf")
    assert rec.vocab == tuple(HF_VOCAB) and rec.blank_id == 0 and rec.normalize
    assert rec.receptive_field == 10 + 2 * 5 and rec.hop_length == 10
    assert rec.encode("set a") == [HF_VOCAB.index(c) for c in "SET|A"]
    assert decode_ids([1, 12, 5, 4, 3, 4, 7], rec.vocab) == "se a"  # <s> and <unk> vanish, upper -> lower
    x = speechlike(4000)[None]
    standardised = (x - x.mean()) / (x.var(unbiased=False) + 1e-7).sqrt()
    with torch.no_grad():
        expected = model(standardised).logits.log_softmax(-1)
    assert torch.allclose(rec.log_probs(x), expected, atol=1e-5)


def test_checkpoints_without_a_ctc_head_are_refused(tmp_path):
    torch.manual_seed(0)
    base = Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64, conv_dim=(16,), conv_kernel=(10,), conv_stride=(5,),
                                        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4))
    base.save_pretrained(tmp_path / "encoder")
    with pytest.raises(ConfigError, match=r"encoder holds a checkpoint without a CTC head"):
        CTCRecognizer.from_pretrained(tmp_path / "encoder")
    config = json.loads((tmp_path / "encoder" / "config.json").read_text())
    del config["architectures"]  # no architectures: the missing lm_head weights give it away
    (tmp_path / "encoder" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="without a CTC head"):
        CTCRecognizer.from_pretrained(tmp_path / "encoder")
    with pytest.raises(ConfigError, match="nowhere not found"):
        CTCRecognizer.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty has no config.json"):
        CTCRecognizer.from_pretrained(tmp_path / "empty")


def test_forced_alignment_finds_each_words_frames():
    # frames: _ s e e _ t | | _ b l u e _
    path = [0, *ids("see"), 0, *ids("t||"), 0, *ids("blue"), 0]
    words = forced_alignment(path_log_probs(path), "set blue")
    assert [w.word for w in words] == ["set", "blue"]
    assert (words[0].frame_start, words[0].frame_end) == (1, 6) and words[0].frames.tolist() == [1, 2, 3, 5]
    assert words[0].tokens.tolist() == ids("seet")
    assert (words[1].frame_start, words[1].frame_end) == (9, 13) and words[1].tokens.tolist() == ids("blue")
    assert words[1].seconds(0.02) == pytest.approx((0.18, 0.26))
    assert forced_alignment(path_log_probs(path), "") == []
    with pytest.raises(AudioInputError, match="needs at least 9 frames"):
        forced_alignment(path_log_probs(path[:5]), "see too")  # 7 letters + '|' + a blank between the e's


def test_value_function_scores_words_along_the_fixed_alignment(recognizer):
    x = speechlike(12000)
    fn, words = word_log_prob_fn(recognizer, x, "set blue")
    assert [w.word for w in words] == ["set", "blue"]
    with torch.no_grad():
        values = fn(x[None])
        lp = recognizer.log_probs(x[None])[0]
    assert values.shape == (1, 3)
    for k, w in enumerate(words):
        assert values[0, k] == pytest.approx(float(lp[w.frames, w.tokens].sum()), abs=1e-4)
    # log p(y|x) sums over every alignment, so it lies between the best alignment's score and 0
    _, scores = torchaudio.functional.forced_align(lp[None], torch.tensor([encode_transcript("set blue")]), blank=0)
    assert float(scores.sum()) < float(values[0, 2]) <= 0.0
    assert word_column(words, 1) == 1
    with pytest.raises(ConfigError, match="word index 2 is past the transcript: it has 2 words"):
        word_column(words, 2)


def test_value_function_is_batched_consistent_and_differentiable(recognizer):
    x = speechlike(12000)
    fn, words = word_log_prob_fn(recognizer, x)  # the greedy hypothesis by default
    assert " ".join(w.word for w in words) == recognizer.transcribe(x[None])[0]
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(8, 12000, generator=g) > 0.3).float()
    batch = x[None] * masks
    with torch.no_grad():
        together = fn(batch)
        one_by_one = torch.cat([fn(row[None]) for row in batch])
    assert together.shape == (8, len(words) + 1)
    assert torch.allclose(together, one_by_one, atol=1e-4, rtol=1e-5)
    inputs = batch[:2].clone().requires_grad_(True)
    fn(inputs)[:, -1].sum().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0
    with pytest.raises(AudioInputError, match="built for 12000-sample"):
        fn(torch.zeros(1, 8000))


def test_empty_hypothesis_leaves_only_the_utterance_column(recognizer):
    fn, words = word_log_prob_fn(recognizer, speechlike(8000), "")
    assert words == []
    with torch.no_grad():
        values = fn(speechlike(8000)[None])
        lp = recognizer.log_probs(speechlike(8000)[None])[0]
    assert values.shape == (1, 1) and values[0, 0] == pytest.approx(float(lp[:, 0].sum()), abs=1e-4)  # all blanks
    with pytest.raises(ConfigError, match="it has 0 words"):
        word_column(words, 0)


def test_confidence_is_the_mean_top_posterior():
    assert confidence(path_log_probs([3, 4, 5], peak=0.9)) == pytest.approx(0.9)
    assert confidence(torch.full((1, 4, 29), -math.log(29))) == pytest.approx(1 / 29)
