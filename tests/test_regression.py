"""Specification of the few-shot regressors: MAML's (Finn et al., 2017, 5.1) and
Reptile's (Nichol et al., 2018).
"""

import copy

import numpy as np
import pytest
import torch
from helpers import assert_same_weights, meta_gradients_by_hand, weights
from sklearn.base import clone, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from skmeta import MAMLRegressor, ReptileRegressor
from skmeta.fewshot import REGRESSORS
from skmeta.fewshot._gradient_based import GradientNetwork, sgd_steps
from skmeta.fewshot._regression import _TaskStream
from skmeta.fewshot.maml import MAMLNetwork
from skmeta.fewshot.reptile import ReptileNetwork
from skmeta.persistence import load, save


def sinusoids(n_tasks, n_samples, seed):
    """Finn et al.'s tasks: a sin(x - phase), a in [0.1, 5], phase in [0, π]."""
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.1, 5, n_tasks)
    phase = rng.uniform(0, np.pi, n_tasks)
    X = rng.uniform(-5, 5, (n_tasks, n_samples, 1)).astype(np.float32)
    y = amplitude[:, None] * np.sin(X[..., 0] - phase[:, None])
    groups = np.repeat(np.arange(n_tasks), n_samples)
    return X.reshape(-1, 1), y.ravel(), groups


def assert_adapt_is_sgd_on_a_copy(reg, X, y, n_steps, lr):
    """``reg.adapt(X, y)`` holds ``n_steps`` full-batch SGD steps of step size
    ``lr`` from the meta-learned weights, and leaves those weights alone."""
    theta = weights(reg.module_)
    start = {
        n: p.detach().clone().requires_grad_(True)
        for n, p in reg.module_.params().items()
    }
    reg.adapt(X, y)
    x, t = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32))
    expected = sgd_steps(reg.module_, start, x, t, n_steps, lr)
    for name, tensor in expected.items():
        torch.testing.assert_close(reg.adapted_params_[name], tensor.detach())
    assert_same_weights(reg.module_, theta)


FAST = dict(max_epochs=1, episodes_per_epoch=20, meta_batch_size=10, random_state=0)


@pytest.fixture(scope="module")
def tasks():
    return sinusoids(40, 20, seed=0)


@pytest.fixture(scope="module")
def fitted(tasks):
    return MAMLRegressor(**FAST).fit(*tasks)


@pytest.fixture(scope="module", params=list(REGRESSORS))
def each_fitted(request, tasks):
    """Every registered regressor, briefly meta-trained on the sinusoids."""
    return REGRESSORS[request.param](**FAST).fit(*tasks)


# scikit-learn's checks, every regressor with its defaults but a short training
# and a smaller inner step: three checks fit X around 100, on which the mean
# squared error's gradients are about 100 times larger than on standardised
# data, and the default inner step (0.01) overshoots until fit stops with its
# divergence error (which names the learning rates). fit(X, y) without groups
# takes (X, y) as one task.
@parametrize_with_checks(
    [
        cls(max_epochs=2, episodes_per_epoch=5, inner_lr=1e-4, random_state=0)
        for cls in REGRESSORS.values()
    ]
)
def test_sklearn_compatible_regressor(estimator, check):
    check(estimator)


# The network and its inner loop.


def test_one_inner_step_on_the_squared_error_is_theta_minus_alpha_grad_by_hand():
    # Linear model f(x) = w.x + b: L = mean (f(x) - y)^2, so with r = f(x) - y,
    # dL/dw = 2/n sum r x and dL/db = 2/n sum r.
    torch.manual_seed(0)
    net = GradientNetwork(nn.Identity(), 3, 1, regression=True).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, generator=g, dtype=torch.float64)
    theta = net.params()
    w, b = theta["head.weight"], theta["head.bias"]
    r = x @ w[0] + b - y
    alpha = 0.1
    adapted = sgd_steps(net, theta, x, y, 1, alpha)
    torch.testing.assert_close(adapted["head.weight"], w - alpha * 2 / 5 * r @ x)
    torch.testing.assert_close(adapted["head.bias"], b - alpha * 2 / 5 * r.sum())


def test_maml_meta_gradient_on_the_squared_error_is_the_hessian_corrected_one():
    torch.manual_seed(0)
    alpha = 0.3
    backbone = nn.Sequential(nn.Linear(2, 4), nn.Tanh())
    net = MAMLNetwork(backbone, 4, 1, 1, alpha, False, regression=True).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 7, 2, generator=g, dtype=torch.float64)
    y_all = torch.randn(7, generator=g, dtype=torch.float64)
    y = torch.cat([y_all[:3], torch.full((4,), float("nan"), dtype=torch.float64)])
    nn.functional.mse_loss(net(x, y[None]), y_all[3:]).backward()
    got = torch.cat([p.grad.flatten() for p in net.params().values()])

    def loss(params, rows):
        return ((net.logits(params, x[0, rows])[:, 0] - y_all[rows]) ** 2).mean()

    support, query = slice(0, 3), slice(3, 7)
    second, _ = meta_gradients_by_hand(
        net, lambda p: loss(p, support), lambda p: loss(p, query), alpha
    )
    torch.testing.assert_close(got, second)


def test_the_default_network_is_finn_et_al_1_40_40_1_relu(fitted):
    layers = [
        m
        for m in fitted.module_.learner.modules()
        if isinstance(m, nn.Linear | nn.ReLU)
    ]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    shapes = [(m.in_features, m.out_features) for m in layers[::2]]
    assert shapes == [(1, 40), (40, 40), (40, 1)]


# Tasks.


def test_each_training_task_is_drawn_within_one_group_its_query_targets_hidden():
    # The feature of each row is its index, so a task's rows can be traced.
    groups = np.repeat(np.arange(4), [6, 9, 3, 7])
    X = torch.arange(25, dtype=torch.float32)[:, None]
    y = X[:, 0] * 10
    tasks = [np.flatnonzero(groups == g) for g in (0, 1, 3)]  # group 2 too small
    stream = _TaskStream(X, y, tasks, 2, 3, 50, np.random.default_rng(0))
    seen = set()
    for item, query_targets in stream:
        rows = item["x"][:, 0].long().numpy()
        assert len(set(rows)) == 5 and len(set(groups[rows])) == 1
        seen.add(groups[rows[0]])
        torch.testing.assert_close(item["y"][:2], y[rows[:2]])
        assert torch.isnan(item["y"][2:]).all()
        torch.testing.assert_close(query_targets, y[rows[2:]])
    assert seen == {0, 1, 3}


def test_without_groups_the_whole_data_is_one_task(tasks):
    X, y, _ = tasks
    reg = MAMLRegressor(k_shot=3, n_query=4, max_epochs=0).fit(X[:20], y[:20])
    assert reg.n_tasks_ == 1
    with pytest.raises(
        ValueError, match=r"k_shot \+ n_query = 7.*\(X, y\) has 6.*groups"
    ):
        MAMLRegressor(k_shot=3, n_query=4).fit(X[:6], y[:6])


def test_n_query_none_is_k_shot_or_what_the_largest_task_allows(tasks):
    X, y, groups = tasks  # tasks of 20 samples
    reg = MAMLRegressor(k_shot=5, max_epochs=0)
    assert reg.fit(X, y, groups).n_query_ == 5
    assert reg.set_params(k_shot=16).fit(X, y, groups).n_query_ == 4
    with pytest.raises(
        ValueError, match="k_shot \\+ n_query = 21.*largest group has 20"
    ):
        reg.set_params(k_shot=20).fit(X, y, groups)


def test_groups_too_small_for_a_task_are_never_drawn(tasks):
    X, y, groups = tasks
    keep = (groups >= 10) | (np.arange(len(groups)) % 20 < 4)  # 30 whole tasks
    reg = MAMLRegressor(k_shot=5, max_epochs=0).fit(X[keep], y[keep], groups[keep])
    assert reg.n_tasks_ == 30


def test_bad_targets_and_groups_are_errors_naming_them(tasks):
    X, y, groups = tasks
    reg = MAMLRegressor(max_epochs=0)
    with pytest.raises(ValueError, match="groups"):
        reg.fit(X, y, groups[:-1])
    with pytest.raises(
        ValueError, match="y must be finite within the range of float32"
    ):
        reg.fit(X, y * 1e39)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        reg.fit(X, np.where(np.arange(len(y)) == 3, np.nan, y))
    reg.fit(X, y, groups)
    with pytest.raises(ValueError, match="y_support must hold real numbers"):
        reg.adapt(X[:5], ["a", "b", "c", "d", "e"])
    with pytest.raises(ValueError, match="y_support must be finite"):
        reg.adapt(X[:2], [0.0, np.inf])


# Adaptation and prediction.


def test_adapt_is_n_inner_steps_test_sgd_steps_on_a_copy_of_theta(fitted, tasks):
    X, y, _ = tasks
    reg = copy.deepcopy(fitted)
    assert_adapt_is_sgd_on_a_copy(
        reg, X[:5], y[:5], reg.n_inner_steps_test, reg.inner_lr
    )
    again = copy.deepcopy(fitted).adapt(X[:5], y[:5])
    np.testing.assert_array_equal(again.predict(X[5:20]), reg.predict(X[5:20]))


def test_predict_gives_floats_and_score_is_their_r2(each_fitted, tasks):
    X, y, _ = tasks
    assert is_regressor(each_fitted)
    prediction = each_fitted.predict(X[:30])
    assert prediction.shape == (30,) and prediction.dtype == np.float32
    np.testing.assert_allclose(
        each_fitted.score(X[:30], y[:30]), r2_score(y[:30], prediction)
    )


#: Short meta-training that helps on new sinusoids, at larger outer steps than
#: the defaults: MAML's 40 outer steps (the paper runs 70,000), Reptile's 100
#: tasks, one a meta-update (the authors' demonstration runs 30,000).
LEARNS = {
    "maml": dict(episodes_per_epoch=400, lr=0.01),
    "reptile": dict(episodes_per_epoch=100, meta_step_size=1.0),
}


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_meta_training_beats_the_untrained_model_on_new_sinusoids(name, tasks):
    X, y, groups = tasks
    X_new, y_new, groups_new = sinusoids(20, 20, seed=1)

    def mse_after_adapting(max_epochs):
        reg = REGRESSORS[name](**{**FAST, **LEARNS[name], "max_epochs": max_epochs})
        reg.fit(X, y, groups)
        errors = []
        for task in range(20):
            rows = groups_new == task
            reg.adapt(X_new[rows][:5], y_new[rows][:5])
            errors.append(
                np.mean((reg.predict(X_new[rows][5:]) - y_new[rows][5:]) ** 2)
            )
        return np.mean(errors)

    untrained, trained = mse_after_adapting(0), mse_after_adapting(1)
    # measured: MAML 3.70 untrained, 3.08 trained; Reptile 7.94, 3.90
    assert trained < 0.9 * untrained, (untrained, trained)


@pytest.mark.parametrize("cls", list(REGRESSORS.values()))
def test_unfitted_use_raises_not_fitted(cls, tasks):
    X, y, _ = tasks
    for method in ("predict", "transform"):
        with pytest.raises(NotFittedError):
            getattr(cls(), method)(X)
    with pytest.raises(NotFittedError):
        cls().adapt(X[:5], y[:5])


def test_save_and_load_keep_the_adapted_predictions(each_fitted, tasks, tmp_path):
    X, y, _ = tasks
    model = copy.deepcopy(each_fitted).adapt(X[:5], y[:5])
    restored = load(save(model, tmp_path / "regressor.skmeta"))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert_same_weights(restored.module_, weights(model.module_))
    assert clone(restored).get_params() == clone(model).get_params()


# Reptile's regressor.


def test_reptile_regressor_meta_update_moves_theta_towards_the_trained_copy(tasks):
    # One task (groups=None) of all 12 rows, full batches: the inner loop is
    # 3 plain SGD steps on the mean squared error of the 12 rows whatever
    # their order, and one meta-update is θ + ε (θ̃ - θ) (Nichol et al., 2018,
    # Algorithm 1).
    X, y, _ = tasks
    X, y = X[:12], y[:12].astype(np.float32)
    task = dict(k_shot=6, n_query=6, meta_batch_size=1, episodes_per_epoch=1)
    inner_loop = dict(n_inner_steps=3, inner_lr=0.05, inner_batch_size=None)
    meta_update = dict(meta_step_size=0.5, meta_step_size_final=0.5, random_state=0)
    params = {**task, **inner_loop, **meta_update}
    before = ReptileRegressor(max_epochs=0, **params).fit(X, y)
    after = ReptileRegressor(max_epochs=1, **params).fit(X, y)
    theta = {
        n: p.detach().clone().requires_grad_(True)
        for n, p in before.module_.params().items()
    }
    trained = sgd_steps(
        before.module_, theta, torch.from_numpy(X), torch.from_numpy(y), 3, 0.05
    )
    for name, p in after.module_.params().items():
        expected = theta[name] + 0.5 * (trained[name] - theta[name])
        torch.testing.assert_close(p.detach(), expected.detach())


def test_reptile_regressor_adapts_by_inner_optimizer_steps_on_a_copy(tasks):
    X, y, groups = tasks
    reg = ReptileRegressor(
        **FAST, inner_batch_size=None, n_inner_steps_test=7, inner_lr=0.03
    ).fit(X, y, groups)
    assert isinstance(reg.module_, ReptileNetwork) and reg.module_.regression
    assert_adapt_is_sgd_on_a_copy(reg, X[:5], y[:5], 7, 0.03)  # SGD, full batch
