"""Specification of MAMLClassifier (Finn et al., 2017)."""

import copy
import math

import numpy as np
import pytest
import torch
from helpers import (
    SMALL_MLP,
    assert_errors_are_named,
    assert_same_weights,
    meta_gradients_by_hand,
    weights,
)
from torch import nn

from skmeta import MAMLClassifier
from skmeta.fewshot._gradient_based import GradientNetwork, sgd_steps
from skmeta.fewshot.maml import MAMLNetwork
from skmeta.model_selection import evaluate_episodes

TRAINING = dict(max_epochs=2, episodes_per_epoch=8, meta_batch_size=4, random_state=0)
FAST = dict(TRAINING, inner_lr=0.1, **SMALL_MLP)


@pytest.fixture(scope="module")
def fitted(digits):
    return MAMLClassifier(**FAST).fit(digits.X_base, digits.y_base)


def _tiny_task(seed=0, n_in=3, n_way=2):
    g = torch.Generator().manual_seed(seed)
    x_s = torch.randn(4, n_in, generator=g, dtype=torch.float64)
    x_q = torch.randn(6, n_in, generator=g, dtype=torch.float64)
    y_s = torch.tensor([0, 0, 1, 1])
    y_q = torch.tensor([0, 1, 0, 1, 1, 0])
    return x_s, y_s, x_q, y_q


def test_one_inner_step_is_theta_minus_alpha_grad_by_hand():
    # Linear model z = W x + b: the cross-entropy gradient is
    # dL/dz = (softmax(z) - onehot(y)) / n, so dL/dW = dz^T x, dL/db = sum dz.
    torch.manual_seed(0)
    net = GradientNetwork(nn.Identity(), 3, 2).double()
    x, y, _, _ = _tiny_task()
    theta = net.params()
    W, b = theta["head.weight"], theta["head.bias"]
    dz = (torch.softmax(x @ W.T + b, 1) - nn.functional.one_hot(y, 2)) / len(x)
    alpha = 0.3
    adapted = sgd_steps(net, theta, x, y, 1, alpha)
    torch.testing.assert_close(adapted["head.weight"], W - alpha * dz.T @ x)
    torch.testing.assert_close(adapted["head.bias"], b - alpha * dz.sum(0))
    # The meta-learned tensors themselves are untouched.
    assert adapted["head.weight"] is not W


def _flat_meta_gradients(first_order, backbone_factory, alpha=0.5):
    torch.manual_seed(0)
    net = MAMLNetwork(backbone_factory(), 4, 2, 1, alpha, first_order).double()
    x_s, y_s, x_q, y_q = _tiny_task()
    x = torch.cat([x_s, x_q])[None]
    y = torch.cat([y_s, torch.full((len(y_q),), -1)])[None]
    loss = nn.functional.cross_entropy(net(x, y), y_q)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in net.params().values()])

    second, first = meta_gradients_by_hand(
        net,
        lambda params: nn.functional.cross_entropy(net.logits(params, x_s), y_s),
        lambda params: nn.functional.cross_entropy(net.logits(params, x_q), y_q),
        alpha,
    )
    return grads, second, first


def _tanh_backbone():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh())


def test_second_order_meta_gradient_is_the_hessian_corrected_one():
    second, expected_second, expected_first = _flat_meta_gradients(
        False, _tanh_backbone
    )
    first, _, _ = _flat_meta_gradients(True, _tanh_backbone)
    torch.testing.assert_close(second, expected_second)
    torch.testing.assert_close(first, expected_first)
    # The Hessian term is not negligible on this model: the two differ.
    assert (second - first).abs().max() > 1e-3


def _meta_gradients(first_order, backbone, x_s, y_s, x_q, y_q, alpha=0.5):
    torch.manual_seed(0)
    net = MAMLNetwork(backbone(), 4, 2, 1, alpha, first_order).double()
    x = torch.cat([x_s, x_q])[None]
    y = torch.cat([y_s, torch.full((len(y_q),), -1)])[None]
    nn.functional.cross_entropy(net(x, y), y_q).backward()
    return {n: p.grad for n, p in net.params().items()}


def test_first_and_second_order_agree_where_the_hessian_term_vanishes():
    # Zero support inputs and a bias-free backbone: the support logits are the
    # head's bias alone, so the support loss has no curvature in the backbone
    # and head weights. There the Hessian term -a H_s g_q vanishes and both
    # meta-gradients agree; on the bias it does not.
    x_s, y_s, x_q, y_q = _tiny_task()
    x_s = torch.zeros_like(x_s)
    grads = [
        _meta_gradients(
            fo,
            lambda: nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh()),
            x_s,
            y_s,
            x_q,
            y_q,
        )
        for fo in (False, True)
    ]
    for name in ("backbone.0.weight", "head.weight"):
        torch.testing.assert_close(grads[0][name], grads[1][name])
    assert (grads[0]["head.bias"] - grads[1]["head.bias"]).abs().max() > 1e-4


def test_meta_batch_is_the_mean_over_tasks(fitted):
    net = copy.deepcopy(fitted.module_)
    x = torch.randn(2, 10, 64)
    y = torch.tensor([[0, 1, 2, 3, 4] + [-1] * 5] * 2)
    y_q = torch.arange(5).repeat(2)
    batch_loss = nn.functional.cross_entropy(net(x, y), y_q)
    per_task = [
        nn.functional.cross_entropy(net(x[i : i + 1], y[i : i + 1]), y_q[:5])
        for i in range(2)
    ]
    torch.testing.assert_close(batch_loss, sum(per_task) / 2)


def test_history_has_one_step_per_meta_batch(fitted):
    assert len(fitted.history_) == FAST["max_epochs"]
    n_steps = math.ceil(FAST["episodes_per_epoch"] / FAST["meta_batch_size"])
    assert len(fitted.history_[-1, "batches"]) == n_steps


def test_adapt_fine_tunes_a_copy_and_keeps_the_meta_weights(fitted, digits):
    clf = copy.deepcopy(fitted)
    before = weights(clf.module_)
    X_s, y_s = digits.X_novel[:25], digits.y_novel[:25]
    clf.adapt(X_s, y_s)
    clf.predict(digits.X_novel)
    evaluate_episodes(clf, digits.X_novel, digits.y_novel, n_episodes=3)
    assert_same_weights(clf.module_, before)
    np.testing.assert_array_equal(clf.classes_, np.unique(y_s))
    # The adapted weights are n_inner_steps_test SGD steps from theta.
    x = torch.from_numpy(X_s)
    y = torch.from_numpy(np.searchsorted(clf.classes_, y_s))
    theta = {n: p.detach().requires_grad_() for n, p in clf.module_.params().items()}
    expected = sgd_steps(clf.module_, theta, x, y, clf.n_inner_steps_test, 0.1)
    for n, p in clf.adapted_params_.items():
        torch.testing.assert_close(p, expected[n].detach())


def test_support_with_another_number_of_classes_gets_a_zero_head(fitted, digits):
    # From a zero head the first step moves the head alone (the backbone's
    # gradient goes through the head's weights): with uniform probabilities,
    # dL/dlogits = (1/3 - onehot(y)) / n, so the step adds
    # W = alpha (onehot - 1/3)^T z / n and b = alpha * mean(onehot - 1/3).
    clf = copy.deepcopy(fitted).set_params(n_inner_steps_test=1)
    mask = np.isin(digits.y_novel, np.unique(digits.y_novel)[:3])
    X_s, y_s = digits.X_novel[mask][:30], digits.y_novel[mask][:30]
    clf.adapt(X_s, y_s)
    assert clf.adapted_params_["head.weight"].shape == (3, 16)
    with torch.no_grad():
        z = clf.module_.embed(torch.from_numpy(X_s))
    onehot = nn.functional.one_hot(torch.from_numpy(np.searchsorted(clf.classes_, y_s)))
    residual = onehot.float() - 1 / 3
    alpha = FAST["inner_lr"]
    torch.testing.assert_close(
        clf.adapted_params_["head.weight"], alpha * residual.T @ z / len(z)
    )
    torch.testing.assert_close(
        clf.adapted_params_["head.bias"], alpha * residual.mean(0)
    )
    theta = clf.module_.params()
    for name, p in clf.adapted_params_.items():
        if name.startswith("backbone"):
            torch.testing.assert_close(p, theta[name])
    assert set(clf.predict(digits.X_novel)) <= set(np.unique(y_s))


def test_fine_tuning_takes_at_least_one_step(fitted, digits):
    # Without a step the support labels never reach a prediction: the zero
    # head gave probabilities 1/3 and every query classes_[0].
    with pytest.raises(ValueError, match="n_inner_steps_test"):
        MAMLClassifier(n_inner_steps_test=0, **FAST).fit(digits.X_base, digits.y_base)
    clf = copy.deepcopy(fitted).set_params(n_inner_steps_test=0)
    X_s, y_s = digits.X_novel[:30], digits.y_novel[:30]
    for use in (
        lambda: clf.predict(X_s),  # fit's support set, fine-tuned on first use
        lambda: clf.adapt(X_s, y_s),
        lambda: evaluate_episodes(clf, X_s, y_s, n_way=3, n_query=2, n_episodes=1),
    ):
        with pytest.raises(ValueError, match="n_inner_steps_test"):
            use()


def _batch_norm_maml(digits):
    backbone = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU())
    clf = MAMLClassifier(
        backbone=backbone, embedding_dim=8, max_epochs=0, batch_size=4, **_ADAPT
    )
    return clf.fit(digits.X_base, digits.y_base).adapt(
        digits.X_novel[:20], digits.y_novel[:20]
    )


_ADAPT = dict(inner_lr=0.1, random_state=0)


def test_batch_statistics_are_those_of_the_samples_predicted_together(digits):
    clf = _batch_norm_maml(digits)
    X = digits.X_novel[20:29]

    def alone(rows):  # the probabilities of these rows in one forward pass
        with torch.no_grad():
            logits = clf.module_.logits(clf.adapted_params_, torch.from_numpy(rows))
        return logits.softmax(1).numpy()

    # No padding: 3 rows are normalised with their own statistics.
    np.testing.assert_allclose(clf.predict_proba(X[:3]), alone(X[:3]), atol=1e-6)
    # 9 rows in chunks of at most 4: 3 + 3 + 3, no sample left alone.
    np.testing.assert_allclose(
        clf.predict_proba(X),
        np.concatenate([alone(X[:3]), alone(X[3:6]), alone(X[6:])]),
        atol=1e-6,
    )
    # One sample alone would get the same output whatever it is.
    with pytest.raises(ValueError, match="at least 2 samples together"):
        clf.predict(X[:1])


def test_first_order_trains(digits):
    clf = MAMLClassifier(first_order=True, **FAST).fit(digits.X_base, digits.y_base)
    assert np.isfinite(clf.history_[:, "train_loss"]).all()


def test_conv4_batch_norm_uses_batch_statistics(tiny_images):
    X, y = tiny_images
    episodes = dict(n_way=4, k_shot=1, n_query=1, max_epochs=1, episodes_per_epoch=2)
    conv4 = dict(embedding_dim=8, backbone_params={"hidden_channels": 8}, augment=None)
    clf = MAMLClassifier(meta_batch_size=2, random_state=0, **episodes, **conv4)
    clf.fit(X, y)
    bns = [m for m in clf.module_.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.running_mean is None for m in bns)
    assert clf.predict(X).shape == (40,)


def test_errors(fitted, digits):
    bad = dict(inner_lr=0, meta_batch_size=0, n_inner_steps=0, n_inner_steps_test=0)
    assert_errors_are_named(fitted, digits, {**bad, "first_order": "yes"})
