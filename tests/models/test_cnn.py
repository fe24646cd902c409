import torch

from audioxai.models.cnn import DigitCNN


def test_any_square_input_gives_logits_and_the_last_block_is_convolutional():
    model = DigitCNN(input_mean=3.0, input_std=2.0).eval()
    for size in (8, 28, 64, 128):
        assert model(torch.rand(2, 1, size, size)).shape == (2, 10)
    assert isinstance(model.features[-1][0], torch.nn.Conv2d)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 4
    assert float(model.input_mean) == 3.0 and "input_std" in model.state_dict()
