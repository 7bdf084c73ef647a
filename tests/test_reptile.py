"""Specification of ReptileClassifier (Nichol et al., 2018)."""

import copy

import numpy as np
import pytest
import torch
from helpers import SMALL_MLP, assert_errors_are_named, assert_same_weights, weights
from torch import nn

from skmeta import ReptileClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.fewshot._gradient_based import adam_state, optimizer_steps
from skmeta.fewshot.reptile import ReptileNetwork, _ReptileMetaNet
from skmeta.model_selection import evaluate_episodes

TRAINING = dict(max_epochs=2, episodes_per_epoch=6, meta_batch_size=3, random_state=0)
FAST = dict(TRAINING, k_shot=2, n_query=2, n_inner_steps_test=10, **SMALL_MLP)


@pytest.fixture(scope="module")
def fitted(digits):
    return ReptileClassifier(**FAST).fit(digits.X_base, digits.y_base)


def _net(meta_step_size, inner_optimizer="adam"):
    torch.manual_seed(0)
    module = ReptileNetwork(
        nn.Sequential(nn.Linear(3, 4), nn.Tanh()), 4, 2, 3, 0.1, inner_optimizer, None
    ).double()
    net = _ReptileMetaNet(
        module=module,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=meta_step_size,
        batch_size=None,
        train_split=None,
    ).initialize()
    return net, module


def _meta_batch(n_tasks):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_tasks, 8, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, -1, -1, -1, -1]).repeat(n_tasks, 1)
    y_query = torch.tensor([0, 1, 1, 0]).repeat(n_tasks)
    return {"x": x, "y": y}, y_query


def _trained_copies(module, X, y_query):
    # Full-batch inner steps: what each task's inner loop gives, one task after
    # another, on a copy (the module's running Adam state must stay as it is).
    module = copy.deepcopy(module)
    theta = module.params()
    out = []
    for t in range(len(X["x"])):
        labels = torch.cat([X["y"][t][:4], y_query[4 * t : 4 * t + 4]])
        out.append(module.train_on(theta, X["x"][t], labels)[0])
    return out


@pytest.mark.parametrize("inner_optimizer", ["adam", "sgd"])
def test_meta_step_with_epsilon_one_gives_the_adapted_weights(inner_optimizer):
    net, module = _net(1.0, inner_optimizer)
    batch = _meta_batch(1)
    (expected,) = _trained_copies(module, *batch)
    net.train_step(batch)
    for n, p in module.params().items():
        torch.testing.assert_close(p.detach(), expected[n])


def test_meta_step_moves_epsilon_of_the_way_to_the_mean_of_the_tasks():
    net, module = _net(0.25)
    batch = _meta_batch(3)
    theta = {n: p.detach().clone() for n, p in module.params().items()}
    copies = _trained_copies(module, *batch)
    net.train_step(batch)
    for n, p in module.params().items():
        mean = sum(c[n] for c in copies) / 3
        torch.testing.assert_close(p.detach(), theta[n] + 0.25 * (mean - theta[n]))


def test_inner_sgd_step_is_theta_minus_lr_grad():
    _, module = _net(1.0, "sgd")
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1])
    theta = module.params()
    loss = nn.functional.cross_entropy(module.logits(theta, x), y)
    grads = torch.autograd.grad(loss, list(theta.values()))
    adapted, _ = module.train_on(theta, x, y, n_steps=1)
    for (n, p), g in zip(theta.items(), grads, strict=True):
        torch.testing.assert_close(adapted[n], p.detach() - 0.1 * g)


def _task(n=5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return x, torch.tensor([0, 1, 0, 1, 1][:n])


def _grads(module, theta, x, y):
    loss = nn.functional.cross_entropy(module.logits(theta, x), y)
    grads = torch.autograd.grad(loss, list(theta.values()))
    return dict(zip(theta, grads, strict=True))


def test_inner_adam_equals_torch_adam_with_beta1_zero():
    _, module = _net(1.0)
    x, y = _task()
    theta = module.params()
    ours, _ = optimizer_steps(module, theta, x, y, 4, 0.1)
    copy_ = {n: p.detach().clone().requires_grad_(True) for n, p in theta.items()}
    opt = torch.optim.Adam(copy_.values(), lr=0.1, betas=(0.0, 0.999))
    for _ in range(4):
        opt.zero_grad()
        nn.functional.cross_entropy(module.logits(copy_, x), y).backward()
        opt.step()
    for n in theta:
        torch.testing.assert_close(ours[n], copy_[n].detach())


def test_inner_adam_continues_the_running_state_by_hand():
    # One step from a running state t = 4, v = 0.5 (Adam with beta1 = 0):
    # v' = b2 v + (1 - b2) g^2, theta' = theta - lr g / (sqrt(v' / (1 - b2^5)) + eps)
    _, module = _net(1.0)
    module.inner_step.fill_(4)
    for v in module.inner_exp_avg_sq.as_dict().values():
        v.fill_(0.5)
    x, y = _task()
    theta = module.params()
    g = _grads(module, theta, x, y)
    adapted, _ = module.train_on(theta, x, y, n_steps=1)
    assert int(module.inner_step) == 5
    for n, v in module.inner_exp_avg_sq.as_dict().items():
        expected_v = 0.999 * 0.5 + 0.001 * g[n] ** 2
        torch.testing.assert_close(v, expected_v)
        step = 0.1 * g[n] / ((expected_v / (1 - 0.999**5)).sqrt() + 1e-8)
        torch.testing.assert_close(adapted[n], theta[n].detach() - step)


def test_meta_training_runs_one_adam_state_through_its_tasks():
    net, module = _net(0.5)
    net.train_step(_meta_batch(3))
    assert int(module.inner_step) == 3 * 3  # 3 tasks of n_inner_steps=3
    assert all(v.gt(0).any() for v in module.inner_exp_avg_sq.as_dict().values())


def test_reset_inner_optimizer_gives_each_task_a_fresh_state():
    net, module = _net(0.5)
    module.reset_inner_optimizer = True
    for v in module.inner_exp_avg_sq.as_dict().values():
        v.fill_(0.5)  # ignored
    x, y = _task()
    theta = module.params()
    fresh, _ = optimizer_steps(module, theta, x, y, 3, 0.1, state=adam_state(theta))
    adapted, _ = module.train_on(theta, x, y)
    for n in theta:
        torch.testing.assert_close(adapted[n], fresh[n])
    net.train_step(_meta_batch(2))
    assert int(module.inner_step) == 0
    state = module.inner_state()
    assert all(v.eq(0).all() for v in state["exp_avg_sq"].values())


def test_zero_head_adapts_from_a_new_second_moment_for_the_head(fitted):
    module = fitted.module_
    running = module.inner_exp_avg_sq.as_dict()
    assert int(module.inner_step) == 2 * 6 * 5  # epochs x tasks x inner steps
    same = module.inner_state(module.n_way)
    for n, v in running.items():
        torch.testing.assert_close(same["exp_avg_sq"][n], v, rtol=0, atol=0)
    state = module.inner_state(3)
    assert int(state["step"]) == int(module.inner_step)
    for n, v in state["exp_avg_sq"].items():
        if n.startswith("head."):
            assert v.shape == (3, 16)[: v.dim()] and not v.any()
        else:
            torch.testing.assert_close(v, running[n], rtol=0, atol=0)
    state["exp_avg_sq"]["backbone.layers.0.weight"].add_(1)  # a copy
    assert not torch.equal(
        state["exp_avg_sq"]["backbone.layers.0.weight"],
        running["backbone.layers.0.weight"],
    )


def test_zero_heads_first_adam_step_by_hand(fitted):
    # v = 0 and the running t: v' = (1 - b2) g^2, so the step is
    # lr g / (sqrt((1 - b2) g^2 / (1 - b2^(t+1))) + eps), about lr / sqrt(1 - b2).
    module = fitted.module_
    state = module.inner_state(3)
    t = int(state["step"]) + 1
    params = fitted._initial_params(3)
    x = torch.eye(64)[:6]
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    g = _grads(module, params, x, y)["head.weight"]
    adapted, _ = module.train_on(params, x, y, n_steps=1, state=state)
    v = 0.001 * g**2
    step = 0.001 * g / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    torch.testing.assert_close(adapted["head.weight"], -step)


def test_meta_step_size_is_annealed_linearly(fitted):
    lrs = [b["event_lr"] for e in fitted.history_ for b in e["batches"]]
    # 2 epochs of ceil(6 / 3) = 2 meta-updates: epsilon 1, 3/4, 1/2, 1/4.
    np.testing.assert_allclose(lrs, [1.0, 0.75, 0.5, 0.25])


def test_adapt_keeps_the_meta_weights_and_is_deterministic(fitted, digits):
    clf = copy.deepcopy(fitted)
    before = weights(clf.module_)
    clf.adapt(digits.X_novel[:25], digits.y_novel[:25])
    first = {n: p.clone() for n, p in clf.adapted_params_.items()}
    clf.predict(digits.X_novel)
    evaluate_episodes(clf, digits.X_novel, digits.y_novel, n_episodes=3)
    assert_same_weights(clf.module_, before)
    clf.adapt(digits.X_novel[:25], digits.y_novel[:25])
    for n, p in clf.adapted_params_.items():
        torch.testing.assert_close(p, first[n], rtol=0, atol=0)
    assert not torch.equal(first["head.weight"], clf.module_.params()["head.weight"])


def test_errors(fitted, digits):
    bad = dict(meta_step_size=0, inner_batch_size=0, n_inner_steps_test=0)
    assert_errors_are_named(fitted, digits, {**bad, "inner_optimizer": "rmsprop"})
    # Set after fit, 0 steps is refused where it would be used.
    clf = copy.deepcopy(fitted).set_params(n_inner_steps_test=0)
    with pytest.raises(ValueError, match="n_inner_steps_test"):
        clf.adapt(digits.X_novel[:30], digits.y_novel[:30])


def test_meta_training_beats_the_untrained_model_on_novel_omniglot_classes():
    data = load_omniglot_minimal()

    def accuracy(max_epochs):
        clf = ReptileClassifier(
            max_epochs=max_epochs,
            episodes_per_epoch=100,
            n_inner_steps_test=10,
            random_state=0,
        ).fit(data.X_base, data.y_base)
        return evaluate_episodes(
            clf, data.X_novel, data.y_novel, n_query=5, n_episodes=40, random_state=0
        ).mean

    # Measured: 51.1% untrained, 59.8% after 100 tasks (20 meta-updates).
    assert accuracy(1) > accuracy(0) + 0.04
