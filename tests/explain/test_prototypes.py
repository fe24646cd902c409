"""Stage 2 of chapter 3: the importance network and prototypes on frozen embeddings."""

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.explain import prototypes as P


def _toy(n=48, frames=20, dim=8, seed=0):
    """Embeddings where spoof utterances carry a 'spoof direction' on a known run of frames."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, frames, dim, generator=g) * 0.3
    emb[..., 0] += 1.0  # shared speech direction
    labels = torch.arange(n) % 2
    truth = torch.zeros(n, frames, dtype=torch.bool)
    for i in range(n):
        if labels[i] == 1:
            start = int(torch.randint(0, frames - 6, (1,), generator=g))
            truth[i, start:start + 6] = True
    emb[truth, 1] += 1.5
    valid = torch.ones(n, frames, dtype=torch.bool)
    valid[:, -2:] = False
    return emb, labels, valid, truth


def _cfg(mode="ema", **model):
    return P.load_stage2_config(model={"prototype_mode": mode, "importance_hidden_dim": 16, **model},
                                training={"num_epochs": 25, "batch_size": 16, "lr": 5e-3, "patience": 25,
                                          "device": "cpu"})


def test_defaults_are_the_design_notes():
    cfg = P.load_stage2_config()
    m = cfg.model
    assert (m.temperature, m.lambda_bonafide_reg, m.lambda_temporal_smooth, m.lambda_sparsity) == (0.07, 0.1, 0.1, 0.01)
    assert (m.importance_hidden_dim, m.prototype_mode, m.ema_momentum, m.ema_init) == (256, "ema", 0.99, "class_means")
    assert m.ema_target == "class_means"


def test_bad_keys_values_and_types_are_refused_by_name():
    with pytest.raises(ConfigError, match="temprature"):
        P.load_stage2_config(model={"temprature": 0.1})
    with pytest.raises(ConfigError, match="prototype_mode"):
        P.load_stage2_config(model={"prototype_mode": "kmeans"})
    with pytest.raises(ConfigError, match="lambda_sparsity"):
        P.load_stage2_config(model={"lambda_sparsity": "a lot"})


@pytest.mark.parametrize("mode", P.PROTOTYPE_MODES)
def test_each_mode_learns_to_find_the_spoofed_frames_without_collapsing(mode):
    emb, labels, valid, truth = _toy()
    val = _toy(seed=1)
    explainer, history = P.train_stage2((emb, labels, valid), val[:3], _cfg(mode))
    with torch.no_grad():
        w = explainer(val[0])
    spoof = val[1] == 1
    inside, outside = w[spoof][val[3][spoof]].mean(), w[spoof][~val[3][spoof] & val[2][spoof]].mean()
    assert inside > outside + 0.3, (mode, float(inside), float(outside))
    assert w[~spoof].mean() < w[spoof][val[3][spoof]].mean()  # bona fide low
    assert 0.0 < w.mean() < 1.0 and history.best_epoch >= 1
    assert history.val_loss[history.best_epoch - 1] == min(history.val_loss)


def test_modes_treat_prototypes_as_documented():
    emb, labels, valid, _ = _toy()
    means = P._class_means(emb, labels, valid)
    fixed, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg("fixed"))
    assert torch.equal(fixed.prototypes.prototypes, means)  # never changes
    assert not fixed.prototypes.prototypes.requires_grad
    learn, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg("learnable"))
    assert isinstance(learn.prototypes.prototypes, torch.nn.Parameter)
    assert not torch.allclose(learn.prototypes.prototypes, means)  # trained by backprop
    ema, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg("ema"))
    assert not ema.prototypes.prototypes.requires_grad and bool(ema.prototypes.initialised)
    # the default EMA moves towards each batch's class means, so it stays at the global means it started from
    # (every batch mean is an unbiased sample of them), yet it did move
    assert not torch.equal(ema.prototypes.prototypes, means)
    assert torch.allclose(ema.prototypes.prototypes, means, atol=0.05)
    # the importance target: the spoof prototype follows the important (spoof-direction) frames instead
    weighted, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg("ema", ema_target="importance"))
    assert weighted.prototypes.prototypes[1, 1] > means[1, 1] + 0.1
    assert torch.allclose(weighted.prototypes.prototypes[0], ema.prototypes.prototypes[0], atol=0.05)


def test_ema_targets_the_plain_or_the_importance_weighted_spoof_mean():
    start = torch.eye(4)[2:]
    emb = torch.tensor([[[1.0, 0, 0, 0], [1.0, 0, 0, 0]], [[0, 1.0, 0, 0], [1.0, 0, 0, 0]]])
    labels, valid = torch.tensor([0, 1]), torch.ones(2, 2, dtype=torch.bool)
    w = torch.tensor([[0.5, 0.5], [0.75, 0.25]])
    plain = P.PrototypeManager(4, "ema", momentum=0.9)
    plain.initialise(start)
    plain.update(emb, labels, w, valid)  # spoof frames' plain mean (0.5, 0.5, 0, 0); w is ignored
    assert torch.allclose(plain.prototypes[1], 0.9 * start[1] + 0.1 * torch.tensor([0.5, 0.5, 0, 0]))
    weighted = P.PrototypeManager(4, "ema", momentum=0.9, ema_target="importance")
    weighted.initialise(start)
    weighted.update(emb, labels, w, valid)  # weighted by w: (0.75, 0.25) / 1
    assert torch.allclose(weighted.prototypes[1], 0.9 * start[1] + 0.1 * torch.tensor([0.25, 0.75, 0, 0]))
    for manager in (plain, weighted):  # bona fide: the plain mean of bona fide frames either way
        assert torch.allclose(manager.prototypes[0], 0.9 * start[0] + 0.1 * torch.tensor([1.0, 0, 0, 0]))
    with pytest.raises(ConfigError, match="ema_target"):
        P.load_stage2_config(model={"ema_target": "weighted"})
    with pytest.raises(ConfigError, match="ema_target"):
        P.PrototypeManager(4, "ema", ema_target="median")


def test_ema_update_moves_by_one_minus_momentum():
    manager = P.PrototypeManager(4, "ema", momentum=0.9, ema_init="batch")
    emb = torch.tensor([[[1.0, 0, 0, 0]], [[0, 1.0, 0, 0]]])
    labels, valid, w = torch.tensor([0, 1]), torch.ones(2, 1, dtype=torch.bool), torch.ones(2, 1)
    manager.update(emb, labels, w, valid)  # first batch: taken as is
    assert torch.equal(manager.prototypes, torch.eye(4)[:2])
    manager.update(torch.tensor([[[0, 0, 1.0, 0]], [[0, 0, 0, 1.0]]]), labels, w, valid)
    assert torch.allclose(manager.prototypes[0], torch.tensor([0.9, 0, 0.1, 0]))
    assert torch.allclose(manager.prototypes[1], torch.tensor([0, 0.9, 0, 0.1]))


def test_ema_can_start_from_the_global_class_means_and_then_moves_by_one_minus_momentum():
    manager = P.PrototypeManager(4, "ema", momentum=0.9)  # the default start: the global class means
    start = torch.eye(4)[2:]
    manager.initialise(start)
    assert torch.equal(manager.prototypes, start) and bool(manager.initialised)
    emb = torch.tensor([[[1.0, 0, 0, 0]], [[0, 1.0, 0, 0]]])
    manager.update(emb, torch.tensor([0, 1]), torch.ones(2, 1), torch.ones(2, 1, dtype=torch.bool))
    assert torch.allclose(manager.prototypes, 0.9 * start + 0.1 * torch.eye(4)[:2])  # not the first batch as is
    batch_start = P.PrototypeManager(4, "ema", ema_init="batch")
    batch_start.initialise(start)  # the batch start waits for the first batch
    assert not bool(batch_start.initialised) and not batch_start.prototypes.any()
    emb, labels, valid, _ = _toy()
    ema, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid),
                            _cfg("ema", ema_init="class_means", ema_target="importance"))
    assert ema.prototypes.ema_init == "class_means"
    assert ema.prototypes.prototypes[1, 1] > P._class_means(emb, labels, valid)[1, 1]  # follows important frames
    with pytest.raises(ConfigError, match="ema_init"):
        P.load_stage2_config(model={"ema_init": "random"})
    with pytest.raises(ConfigError, match="ema_init"):
        P.PrototypeManager(4, "ema", ema_init="zeros")


def test_the_loss_cannot_be_minimised_by_all_zero_or_all_one_importance():
    emb, labels, valid, truth = _toy()
    cfg = _cfg().model
    manager = P.PrototypeManager(emb.shape[-1], "fixed")
    manager.initialise(P._class_means(emb, labels, valid))
    logits = manager.logits(emb, cfg.temperature)
    oracle = truth.float()  # 1 on the spoofed frames, 0 elsewhere
    loss = lambda w: P.stage2_loss(w, logits, labels, valid, cfg)["total"].item()  # noqa: E731
    assert loss(oracle) < loss(torch.zeros_like(oracle)) and loss(oracle) < loss(torch.ones_like(oracle))


def test_nondegenerate_share_counts_frames_strictly_inside():
    w = torch.tensor([[0.0, 0.05, 0.5, 0.96, 0.7]])
    assert P.nondegenerate_share(w) == pytest.approx(2 / 5)
    assert P.nondegenerate_share(w, torch.tensor([[True, True, True, False, False]])) == pytest.approx(1 / 3)


def test_same_seed_same_explainer():
    emb, labels, valid, _ = _toy()
    a, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg())
    b, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_uninformative_embeddings_give_intermediate_importance_not_a_collapse():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(48, 20, 8, generator=g)  # the same distribution for both classes: no evidence
    labels, valid = torch.arange(48) % 2, torch.ones(48, 20, dtype=torch.bool)
    # with only the spoof half of the multiple-instance term, spoof utterances keep some important frames
    explainer, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg("ema", lambda_mil_bonafide=0.0))
    with torch.no_grad():
        w = explainer(emb)
    top = w.topk(2, dim=1).values.mean(dim=1)
    assert top[labels == 1].mean() > 0.5  # spoof utterances keep some important frames: no collapse to 0
    assert w.mean() < 0.6 and w[labels == 0].mean() < w[labels == 1].mean() + 0.1  # and no collapse to 1


@pytest.mark.parametrize("mode", P.PROTOTYPE_MODES)
def test_at_the_default_weights_the_floor_keeps_uninformative_importance_off_zero(mode):
    g = torch.Generator().manual_seed(3)
    clips = torch.randn(24, 20, 8, generator=g)
    emb = torch.cat([clips, clips])  # every clip once as bona fide, once as spoof: nothing can separate them
    labels, valid = torch.arange(48) // 24, torch.ones(48, 20, dtype=torch.bool)
    cfg = _cfg(mode)
    assert cfg.model.lambda_mil_bonafide > cfg.model.lambda_mil  # the defaults under which w used to collapse
    collapsed, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), _cfg(mode, lambda_mil_floor=0.0))
    floored, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), cfg)
    with torch.no_grad():
        top = {name: ex(emb).topk(2, dim=1).values.mean(dim=1) for name, ex in
               (("collapsed", collapsed), ("floored", floored))}
    assert top["collapsed"].max() < 0.1  # without the floor: every frame near 0
    spoof_top = top["floored"][labels == 1].mean()
    assert 0.4 < spoof_top < 0.9  # with it: held near the floor (0.5), neither 0 nor 1
    with torch.no_grad():
        assert 0.05 < floored(emb).mean() < 0.7


def test_the_floor_is_zero_above_mil_floor_and_linear_below():
    cfg = _cfg().model
    logits = torch.zeros(2, 10, 2)
    labels, valid = torch.tensor([0, 1]), torch.ones(2, 10, dtype=torch.bool)
    w = torch.zeros(2, 10)
    w[1, 0] = 0.6  # the spoof utterance's top tenth (1 frame of 10) at 0.6: above the floor 0.5
    assert P.stage2_loss(w, logits, labels, valid, cfg)["mil_floor"] == 0.0
    w[1, 0] = 0.2
    terms = P.stage2_loss(w, logits, labels, valid, cfg)
    assert terms["mil_floor"] == pytest.approx(0.3)
    no_floor = P.stage2_loss(w, logits, labels, valid, P.load_stage2_config(model={"lambda_mil_floor": 0.0}).model)
    assert float(terms["total"] - no_floor["total"]) == pytest.approx(cfg.lambda_mil_floor * 0.3)
    assert P.stage2_loss(w, logits, torch.tensor([0, 0]), valid, cfg)["mil_floor"] == 0.0  # no spoof utterance
    with pytest.raises(ConfigError, match="mil_floor"):
        P.load_stage2_config(model={"mil_floor": 1.5})
    with pytest.raises(ConfigError, match="lambda_mil_floor"):
        P.load_stage2_config(model={"lambda_mil_floor": -1.0})


def test_the_bonafide_half_of_the_multiple_instance_term_penalises_important_bonafide_frames():
    cfg = _cfg().model
    logits = torch.zeros(2, 10, 2)
    labels, valid = torch.tensor([0, 1]), torch.ones(2, 10, dtype=torch.bool)
    w = torch.zeros(2, 10)
    assert P.stage2_loss(w, logits, labels, valid, cfg)["mil_bonafide"] == pytest.approx(0.0)
    w[0, 0] = 1.0  # one bona fide frame at 1: the top tenth (1 frame of 10) has mean 1
    terms = P.stage2_loss(w, logits, labels, valid, cfg)
    assert terms["mil_bonafide"] == pytest.approx(1.0)
    base = P.stage2_loss(torch.zeros(2, 10), logits, labels, valid, cfg)["total"]
    assert float(terms["total"] - base) > cfg.lambda_mil_bonafide  # plus the mean and smoothness terms


def _two_layer_toy(n=48, frames=20, seed=0):
    """A local layer (8 wide) holding the spoofed frames' direction and a context layer (4 wide) that
    marks the whole spoof utterance, as a transformer's output would."""
    emb, labels, valid, truth = _toy(n, frames, 8, seed)
    g = torch.Generator().manual_seed(seed + 100)
    context = torch.randn(n, frames, 4, generator=g) * 0.3
    context[labels == 1, :, 0] += 1.0
    return torch.cat([emb, context], dim=-1), labels, valid, truth


def test_prototypes_live_in_their_layer_and_the_network_reads_both():
    emb, labels, valid, truth = _two_layer_toy()
    cfg = _cfg("ema")
    assert P.stage2_layers(cfg.model) == ("features", "context")
    explainer, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), cfg, layer_dims=(8, 4))
    assert explainer.prototypes.prototypes.shape == (2, 8)
    assert explainer.importance_net.conv1.in_channels == 12
    other = emb.clone()
    other[..., 8:] = torch.randn(other[..., 8:].shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(explainer.similarity(emb), explainer.similarity(other))  # context: not in h(t)
        assert not torch.allclose(explainer(emb), explainer(other))  # but the importance network reads it
        w = explainer(emb)
    spoof = labels == 1
    assert w[spoof][truth[spoof]].mean() > w[spoof][~truth[spoof] & valid[spoof]].mean() + 0.3
    with pytest.raises(ConfigError, match="layer_dims"):
        P.train_stage2((emb, labels, valid), (emb, labels, valid), cfg, layer_dims=(8, 5))
    with pytest.raises(ConfigError, match="layer_dims"):
        P.PrototypeExplainer(12, cfg.model).explain(None, torch.zeros(1, 800))  # cannot split the two layers


def test_unknown_embedding_layers_are_refused_by_name():
    with pytest.raises(ConfigError, match="'layer7'"):
        P.load_stage2_config(model={"importance_layers": ["features", "layer7"]})
    with pytest.raises(ConfigError, match="'conv'"):
        P.load_stage2_config(model={"prototype_layer": "conv"})
    with pytest.raises(ConfigError, match="distinct"):
        P.load_stage2_config(model={"importance_layers": ["context", "context"]})


def test_the_multiple_instance_term_rewards_a_spoof_utterance_with_some_important_frames():
    cfg = _cfg().model
    logits = torch.zeros(2, 10, 2)  # no evidence either way
    labels, valid = torch.tensor([0, 1]), torch.ones(2, 10, dtype=torch.bool)
    none = torch.zeros(2, 10)
    some = none.clone()
    some[1, :2] = 1.0
    assert P.stage2_loss(none, logits, labels, valid, cfg)["mil"] == pytest.approx(1.0)
    assert P.stage2_loss(some, logits, labels, valid, cfg)["mil"] == pytest.approx(0.0)


def test_learnable_prototypes_train_at_their_own_rate():
    emb, labels, valid, _ = _toy()
    means = P._class_means(emb, labels, valid)

    def train(lr, prototype_lr):
        cfg = P.load_stage2_config(model={"prototype_mode": "learnable", "importance_hidden_dim": 16},
                                   training={"num_epochs": 3, "batch_size": 16, "lr": lr, "prototype_lr": prototype_lr,
                                             "patience": 3, "device": "cpu"})
        torch.manual_seed(0)
        untrained = P.PrototypeExplainer(emb.shape[-1], cfg.model).importance_net.state_dict()
        explainer, _ = P.train_stage2((emb, labels, valid), (emb, labels, valid), cfg)
        same_net = all(torch.equal(untrained[k], v) for k, v in explainer.importance_net.state_dict().items())
        return explainer.prototypes.prototypes.detach(), same_net

    protos, same_net = train(lr=0.0, prototype_lr=1e-2)
    assert same_net and not torch.allclose(protos, means)  # only the prototypes moved
    protos, same_net = train(lr=1e-2, prototype_lr=0.0)
    assert not same_net and torch.equal(protos, means)  # only the network moved
