import pytest
import torch

from audioxai.data.audio import load_audio
from audioxai.data.mixing import signal_to_noise_ratio
from audioxai.data.sentences import load_sentence_corpus, sentence_corpus
from audioxai.errors import ConfigError
from audioxai.models.asr import ASRConfig, CTCRecognizer
from audioxai.models.asr_training import (ASRTrainConfig, Augmenter, evaluate_asr, length_buckets, pad_batch,
                                          train_asr)

TINY = ASRConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
                 num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)
FAST = dict(batch_size=4, lr=3e-3, noise_types=("white", "pink"), noise_bank_seconds=2.0, device="cpu")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """16 utterances by 5 voices (10 train, 2 val, 4 test), in a temporary cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        root = sentence_corpus(num_sentences=16, num_speakers=5, seed=0, progress=False)
        splits = {s: load_sentence_corpus(root, s) for s in ("train", "val")}
        # the noise bank is cached too: build it while the temporary cache is set
        Augmenter(ASRTrainConfig(**FAST), 16000, torch.Generator().manual_seed(0))
        yield splits


def fresh(seed: int = 0) -> CTCRecognizer:
    torch.manual_seed(seed)
    return CTCRecognizer.from_config(TINY)


def test_length_buckets_cover_every_index_once_and_repeat_with_the_seed():
    lengths = [5, 1, 4, 2, 3, 9, 7]
    assert length_buckets(lengths, 3) == [[1, 3, 4], [2, 0, 6], [5]]
    shuffled = length_buckets(lengths, 3, torch.Generator().manual_seed(3))
    assert sorted(i for b in shuffled for i in b) == list(range(7))
    assert shuffled == length_buckets(lengths, 3, torch.Generator().manual_seed(3))


def test_pad_batch_zero_pads_and_reports_lengths():
    batch, lengths = pad_batch([torch.ones(3), torch.ones(5)])
    assert batch.shape == (2, 5) and lengths.tolist() == [3, 5]
    assert batch[0].tolist() == [1, 1, 1, 0, 0]


def test_augmenter_mixes_noise_at_the_drawn_snr(corpus):
    config = ASRTrainConfig(**{**FAST, "noise_prob": 1.0, "gain_db": 0.0, "noise_snr_db": (10.0, 10.0)})
    x = torch.sin(torch.arange(16000) * 0.05)
    noisy = Augmenter(config, 16000, torch.Generator().manual_seed(0))(x)
    assert float(signal_to_noise_ratio(x, noisy - x)) == pytest.approx(10.0, abs=1e-3)
    again = Augmenter(config, 16000, torch.Generator().manual_seed(0))(x)
    assert torch.equal(noisy, again)
    faster = ASRTrainConfig(**{**FAST, "noise_prob": 0.0, "gain_db": 0.0, "speed_factors": (2.0,)})
    assert Augmenter(faster, 16000, torch.Generator().manual_seed(0))(x).shape == (8000,)
    for bad in [(), (0.0,), (1.004,), (float("nan"),)]:
        with pytest.raises(ConfigError, match="speed"):
            ASRTrainConfig(**{**FAST, "speed_factors": bad})


def test_training_learns_is_deterministic_and_keeps_the_best_epoch(corpus):
    config = ASRTrainConfig(num_epochs=4, **FAST)
    first, second = fresh(), fresh()
    history = train_asr(first, corpus["train"], corpus["val"], config)
    again = train_asr(second, corpus["train"], corpus["val"], config)
    assert len(history.train_loss) == len(history.val_loss) == len(history.val_wer) == 4
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.train_loss == again.train_loss and history.val_wer == again.val_wer
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert history.num_train_items == 10 and history.seconds > 0 and not first.training
    best = history.best_epoch - 1
    assert history.val_wer[best] == min(history.val_wer)
    waveforms = [load_audio(item.path)[0] for item in corpus["val"]]
    texts = [item.text for item in corpus["val"]]
    result = evaluate_asr(first, waveforms, texts)
    assert result.wer == pytest.approx(history.val_wer[best]) and result.loss == pytest.approx(history.val_loss[best])
    assert len(result.hypotheses) == len(texts)


def test_max_train_items_takes_a_seeded_subset(corpus):
    history = train_asr(fresh(), corpus["train"], corpus["val"], ASRTrainConfig(num_epochs=1, max_train_items=4, **FAST))
    assert history.num_train_items == 4 and len(history.train_loss) == 1


def test_bad_configs_and_inputs_are_refused(corpus):
    with pytest.raises(ConfigError, match="noise_types \\['rain'\\] unknown"):
        ASRTrainConfig(noise_types=("rain",))
    with pytest.raises(ConfigError, match="warmup_fraction"):
        ASRTrainConfig(warmup_fraction=1.5)
    with pytest.raises(ConfigError, match="both splits"):
        train_asr(fresh(), corpus["train"], [], ASRTrainConfig(**FAST))
    with pytest.raises(ConfigError, match="one transcript per waveform"):
        evaluate_asr(fresh(), [torch.zeros(8000)], [])
