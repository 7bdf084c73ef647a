"""Specification of ReptileClassifier (Nichol et al., 2018)."""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from torch import nn

from skmeta import EpisodeSampler, ReptileClassifier
from skmeta.fewshot.reptile import ReptileNet, ReptileNetwork
from skmeta.model_selection import evaluate_episodes

FAST = dict(
    max_epochs=2,
    episodes_per_epoch=6,
    meta_batch_size=3,
    k_shot=2,
    n_query=2,
    n_inner_steps_test=10,
    embedding_dim=16,
    backbone_params={"hidden_dims": (32,)},
    random_state=0,
)


@pytest.fixture(scope="module")
def fitted(digits):
    return ReptileClassifier(**FAST).fit(digits.X_base, digits.y_base)


def _state(clf):
    return {k: v.clone() for k, v in clf.module_.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def _net(meta_step_size, inner_optimizer="adam"):
    torch.manual_seed(0)
    module = ReptileNetwork(
        nn.Sequential(nn.Linear(3, 4), nn.Tanh()), 4, 2, 3, 0.1, inner_optimizer, None
    ).double()
    net = ReptileNet(
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
    # Full-batch inner steps: what each task's inner loop gives, by itself.
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


def test_meta_step_size_is_annealed_linearly(fitted):
    lrs = [b["event_lr"] for e in fitted.history_ for b in e["batches"]]
    # 2 epochs of ceil(6 / 3) = 2 meta-updates: epsilon 1, 3/4, 1/2, 1/4.
    np.testing.assert_allclose(lrs, [1.0, 0.75, 0.5, 0.25])


def test_adapt_keeps_the_meta_weights_and_is_deterministic(fitted, digits):
    clf = copy.deepcopy(fitted)
    before = _state(clf)
    clf.adapt(digits.X_novel[:25], digits.y_novel[:25])
    first = {n: p.clone() for n, p in clf.adapted_params_.items()}
    clf.predict(digits.X_novel)
    evaluate_episodes(clf, digits.X_novel, digits.y_novel, n_episodes=3)
    _assert_same_state(_state(clf), before)
    clf.adapt(digits.X_novel[:25], digits.y_novel[:25])
    for n, p in clf.adapted_params_.items():
        torch.testing.assert_close(p, first[n], rtol=0, atol=0)
    assert not torch.equal(first["head.weight"], clf.module_.params()["head.weight"])


@pytest.mark.parametrize("n_way", [5, 3])
def test_episode_accuracies_equal_adapting_a_copy_per_episode(fitted, digits, n_way):
    kw = dict(n_way=n_way, k_shot=1, n_query=3, n_episodes=3, random_state=3)
    before = _state(fitted)
    scores = evaluate_episodes(fitted, digits.X_novel, digits.y_novel, **kw)
    _assert_same_state(_state(fitted), before)
    slow = []
    for support, query in EpisodeSampler(n_way, 1, 3, 3, 3).split(y=digits.y_novel):
        clf = copy.deepcopy(fitted).adapt(
            digits.X_novel[support], digits.y_novel[support]
        )
        slow.append(clf.score(digits.X_novel[query], digits.y_novel[query]))
    np.testing.assert_allclose(scores.accuracies, slow, atol=1e-6)


def test_pickle_clone_and_seed(fitted, digits):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        restored.predict_proba(digits.X_novel), fitted.predict_proba(digits.X_novel)
    )
    again = clone(fitted).fit(digits.X_base, digits.y_base)
    _assert_same_state(_state(again), _state(fitted))
    other = clone(fitted).set_params(random_state=1).fit(digits.X_base, digits.y_base)
    assert not torch.equal(
        other.module_.params()["head.weight"], fitted.module_.params()["head.weight"]
    )
    assert fitted.transform(digits.X_novel[:3]).shape == (3, 16)


def test_errors(fitted, digits):
    with pytest.raises(NotFittedError):
        ReptileClassifier().predict(digits.X_novel)
    with pytest.raises(ValueError, match="features"):
        copy.deepcopy(fitted).adapt(digits.X_novel[:, :10], digits.y_novel)
    with pytest.raises(ValueError, match="n_way=7"):
        ReptileClassifier(n_way=7).fit(digits.X_base, digits.y_base)
    for bad in (
        dict(inner_optimizer="rmsprop"),
        dict(meta_step_size=0),
        dict(inner_batch_size=0),
        dict(n_inner_steps_test=-1),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ReptileClassifier(**bad).fit(digits.X_base, digits.y_base)


def test_skorch_callbacks_and_progress_bar(digits, capsys):
    from skorch.callbacks import Callback

    class Count(Callback):
        def initialize(self):
            self.batches = 0
            return self

        def on_batch_end(self, net, **kwargs):
            self.batches += 1

    count = Count()
    ReptileClassifier(**dict(FAST, verbose=1, callbacks=[count])).fit(
        digits.X_base, digits.y_base
    )
    assert count.batches == 4  # 2 epochs of 2 meta-updates
    assert "train_loss" in capsys.readouterr().out
