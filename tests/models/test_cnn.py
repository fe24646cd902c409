import torch

from audioxai.models.cnn import DigitCNN


def test_any_square_input_gives_logits_and_the_last_block_is_convolutional():
    model = DigitCNN(input_mean=3.0, input_std=2.0).eval()
    for size in (8, 28, 64, 128):
        assert model(torch.rand(2, 1, size, size)).shape == (2, 10)
    assert isinstance(model.features[-1][0], torch.nn.Conv2d)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 4
    assert float(model.input_mean) == 3.0 and "input_std" in model.state_dict()


def test_first_pool_keeps_the_last_map_small_at_every_resolution():
    from audioxai.models.cnn import first_pool_for
    assert [first_pool_for(s) for s in (28, 32, 64, 128)] == [2, 2, 4, 8]
    for size in (28, 32, 64, 128):
        model = DigitCNN(first_pool=first_pool_for(size)).eval()
        last = model.features(torch.rand(1, 1, size, size))
        assert last.shape[-1] in (3, 4) and last.shape[-2] == last.shape[-1]
    import pytest
    with pytest.raises(ValueError, match="at least 8x8"):
        first_pool_for(4)
