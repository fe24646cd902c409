import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.explain.gradients import EXPLAINERS, get_explainer, integrated_gradients, resolve_baseline, saliency
from audioxai.models.cnn import DigitCNN


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DigitCNN(num_classes=4, channels=(4, 8, 8, 8)).eval()


def test_every_explainer_returns_the_input_shape(model):
    x, y = torch.rand(3, 1, 16, 16), torch.tensor([0, 1, 3])
    for name, fn in EXPLAINERS.items():
        a = fn(model, x, y, baseline=0.0)
        assert a.shape == x.shape and torch.isfinite(a).all() and not a.requires_grad, name


def test_integrated_gradients_is_complete(model):
    """Sum of IG attributions = f(x) - f(baseline) for the target logit (Sundararajan et al. axiom)."""
    x, y = torch.rand(2, 1, 16, 16), torch.tensor([2, 1])
    floor = resolve_baseline(x, "min")
    a = integrated_gradients(model, x, y, baseline="min", n_steps=200)
    with torch.no_grad():
        gap = model(x).gather(1, y[:, None]).squeeze(1) - model(floor).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(a.flatten(1).sum(1), gap, rtol=0.02, atol=1e-3)


def test_saliency_is_the_absolute_gradient(model):
    x, y = torch.rand(1, 1, 16, 16, requires_grad=True), torch.tensor([3])
    model(x)[0, 3].backward()
    assert torch.allclose(saliency(model, x, y), x.grad.abs())


def test_baselines_and_names_are_checked():
    x = torch.tensor([[[[1.0, -2.0]]], [[[5.0, 3.0]]]])
    assert resolve_baseline(x, "min").flatten(1).tolist() == [[-2.0, -2.0], [3.0, 3.0]]
    with pytest.raises(ConfigError, match="baseline='max'"):
        resolve_baseline(x, "max")
    with pytest.raises(ConfigError, match="unknown explainer 'lime'"):
        get_explainer("lime")


def test_integrated_gradients_in_memory_bounded_chunks_equals_one_pass(model):
    from audioxai.explain.gradients import ig_internal_batch_size
    x, y = torch.rand(6, 1, 16, 16), torch.arange(6) % 4
    assert ig_internal_batch_size(x, 10) == 60  # small inputs: the whole path at once
    assert ig_internal_batch_size(torch.rand(256, 1, 128, 128), 50) == 512  # 12,800 rows would not fit
    assert ig_internal_batch_size(x, 10, max_elements=1) == 10  # never fewer rows than steps
    whole = integrated_gradients(model, x, y, n_steps=10, internal_batch_size=60)
    chunked = integrated_gradients(model, x, y, n_steps=10, internal_batch_size=7)
    assert torch.allclose(whole, chunked, atol=1e-6, rtol=1e-5)
