import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from audioxai.config import load_config
from audioxai.errors import ConfigError, DatasetError
from audioxai.models.training import TrainConfig, TrainHistory, accuracy, evaluate, fit, predict
from audioxai.runtime import seed_everything


def _data(n=400, flip_val=False):
    """A linearly separable two-class task in 2-D; 300 training and 100 validation points."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    val_y = 1 - y[300:] if flip_val else y[300:]
    return TensorDataset(x[:300], y[:300]), TensorDataset(x[300:], val_y)


def _model(seed=0):
    seed_everything(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def _train(seed=0, model=None, flip_val=False, **overrides):
    model = model if model is not None else _model(seed)
    train, val = _data(flip_val=flip_val)
    config = TrainConfig(**{"num_epochs": 6, "lr": 0.05, "batch_size": 32, "seed": seed, **overrides})
    loaders = DataLoader(train, config.batch_size, shuffle=True), DataLoader(val, batch_size=50)
    history = fit(model, *loaders, config, device="cpu", progress=False)
    return model, history, loaders[1]


def test_learns_a_separable_task_in_a_few_epochs():
    model, history, val = _train(num_epochs=5)
    assert isinstance(history, TrainHistory)
    assert evaluate(model, val)["accuracy"] > 0.95 and max(history.val_acc) > 0.95
    assert len(history.train_loss) == len(history.val_loss) == len(history.val_acc) == history.num_epochs_run
    assert history.train_loss[-1] < history.train_loss[0]
    assert not model.training  # left in eval mode


def test_restores_the_weights_of_the_best_epoch():
    # Validation labels are flipped, so learning makes validation worse: the best epoch is the first.
    model, history, val = _train(flip_val=True, patience=10)
    assert history.best_epoch == 0 and history.val_loss[-1] > history.val_loss[0]
    assert evaluate(model, val)["loss"] == pytest.approx(history.val_loss[0], rel=1e-6)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    _, history, _ = _train(lr=0.0, patience=2, num_epochs=20)
    assert history.stopped_early and history.best_epoch == 0 and history.num_epochs_run == 3
    _, history, _ = _train(lr=0.0, patience=3, num_epochs=20, monitor="val_acc")
    assert history.stopped_early and history.best_epoch == 0 and history.num_epochs_run == 4


def test_not_stopped_early_when_the_epochs_run_out_first():
    _, history, _ = _train(lr=0.0, patience=2, num_epochs=2)
    assert not history.stopped_early and history.num_epochs_run == 2


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not():
    start = _model(0)
    a, ha, _ = _train(7, model=copy.deepcopy(start), num_epochs=2)
    b, hb, _ = _train(7, model=copy.deepcopy(start), num_epochs=2)
    c, _, _ = _train(8, model=copy.deepcopy(start), num_epochs=2)  # same start, other shuffling and dropout
    assert ha.train_loss == hb.train_loss
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_custom_loss_metric_and_gradient_clipping_are_used():
    calls = {"loss": 0, "metric": 0}

    def loss_fn(logits, targets):
        calls["loss"] += 1
        return nn.functional.cross_entropy(logits, targets)

    def metric_fn(logits, targets):
        calls["metric"] += 1
        return 0.25

    train, val = _data()
    history = fit(_model(), DataLoader(train, 100), DataLoader(val, 100), TrainConfig(num_epochs=2, grad_clip=0.1),
                  device="cpu", loss_fn=loss_fn, metric_fn=metric_fn, progress=False)
    assert history.val_acc == [0.25, 0.25] and calls["loss"] == 2 * (3 + 1) and calls["metric"] == 2 * (3 + 1)


def test_progress_bars_can_be_shown():
    train, val = _data()
    fit(_model(), DataLoader(train, 100), DataLoader(val, 100), TrainConfig(num_epochs=1), "cpu", progress=True)


def test_predict_keeps_loader_order_and_accepts_bare_input_batches():
    model = _model()
    train, _ = _data()
    x = train.tensors[0]
    logits = predict(model, DataLoader(train, batch_size=64))
    assert logits.shape == (300, 2) and logits.device.type == "cpu"
    assert torch.allclose(logits, predict(model, DataLoader(x, batch_size=7)))
    assert torch.allclose(logits, model(x), atol=1e-6)


def test_accuracy_accepts_indices_and_probabilities():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    assert accuracy(logits, torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.0, 1.0]])) == 0.75


def test_bad_batches_and_empty_loaders_are_named():
    model = _model()
    with pytest.raises(DatasetError, match=r"\(inputs, targets\)"):
        evaluate(model, DataLoader(torch.randn(4, 2), batch_size=2))
    with pytest.raises(DatasetError, match="no samples"):
        evaluate(model, [])
    with pytest.raises(DatasetError, match="no batches"):
        predict(model, [])


def test_train_config_loads_from_yaml_and_bad_values_are_named(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("num_epochs: 3\nlr: 1e-2\nmonitor: val_acc\ngrad_clip: 1\n")
    assert load_config(TrainConfig, path) == TrainConfig(num_epochs=3, lr=0.01, monitor="val_acc", grad_clip=1.0)
    with pytest.raises(ConfigError, match="patiance"):
        load_config(TrainConfig, {"patiance": 3})
    for bad, message in [({"monitor": "accuracy"}, "monitor"), ({"num_epochs": 0}, "num_epochs=0"),
                         ({"lr": -1.0}, "lr=-1.0"), ({"grad_clip": 0.0}, "grad_clip")]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad)


def test_onecycle_schedule_warms_up_and_anneals_the_learning_rate():
    seen = []

    class Spy(torch.optim.lr_scheduler.OneCycleLR):
        def step(self, *a, **k):
            super().step(*a, **k)
            seen.append(self.optimizer.param_groups[0]["lr"])

    original = torch.optim.lr_scheduler.OneCycleLR
    torch.optim.lr_scheduler.OneCycleLR = Spy
    try:
        model, history, val = _train(num_epochs=4, lr_schedule="onecycle", patience=10)
    finally:
        torch.optim.lr_scheduler.OneCycleLR = original
    peak = max(seen)
    assert abs(peak - 0.05) < 1e-3 and seen[0] < peak / 5 and seen[-1] < peak / 100
    assert evaluate(model, val)["accuracy"] > 0.9
    with pytest.raises(ConfigError, match="lr_schedule='cosine'"):
        TrainConfig(lr_schedule="cosine")
