import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from audioxai.errors import ConfigError
from audioxai.models.training import TrainConfig, evaluate, fit, predict
from audioxai.runtime import seed_everything


def _loaders(seed=0, n=400):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x[:300], y[:300]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[300:], y[300:]), batch_size=50)
    return train, val


def _train(seed, **overrides):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    train, val = _loaders(seed)
    history = fit(model, train, val, TrainConfig(**{"num_epochs": 15, "lr": 0.05, **overrides}), progress=False)
    return model, history, val


def test_learns_a_separable_task_and_keeps_the_best_epoch():
    model, history, val = _train(0)
    assert evaluate(model, val)["accuracy"] > 0.95
    assert len(history.val_loss) >= history.best_epoch + 1
    assert evaluate(model, val)["loss"] == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)
    assert predict(model, val).shape == (100, 2)


def test_early_stopping_stops_after_patience_without_improvement():
    _, history, _ = _train(0, lr=0.0, patience=2)
    assert history.stopped_early and history.best_epoch == 0 and len(history.train_loss) == 3


def test_same_seed_same_weights_other_seed_other_weights():
    a, _, _ = _train(7, num_epochs=3)
    b, _, _ = _train(7, num_epochs=3)
    c, _, _ = _train(8, num_epochs=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_bad_train_config_is_named():
    with pytest.raises(ConfigError, match="monitor"):
        TrainConfig(monitor="accuracy")
