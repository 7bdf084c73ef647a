"""Mixed precision (skmeta._precision): every estimator's ``precision`` option."""

import copy

import numpy as np
import pytest
import torch
from helpers import EMBEDDERS, FEW_SHOT, short
from skorch import NeuralNet
from skorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from skmeta import (
    MAMLClassifier,
    MatchingClassifier,
    PrototypicalClassifier,
    RelationClassifier,
    ReptileClassifier,
    TransferClassifier,
)
from skmeta._precision import with_precision
from skmeta.model_selection import evaluate_episodes


class _Recorder(nn.Module):
    """An MLP backbone that records whether each forward pass ran in autocast."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.layer = nn.Linear(in_features, out_features)
        self.seen = []

    def forward(self, x):
        on = torch.is_autocast_enabled("cpu")
        self.seen.append(torch.get_autocast_dtype("cpu") if on else torch.float32)
        return self.layer(x)


@pytest.mark.parametrize("cls", FEW_SHOT + EMBEDDERS, ids=lambda c: c.__name__)
def test_bfloat16_runs_forward_passes_in_autocast_and_returns_float32(cls, digits):
    extra = {"embedding_dim": 8} if cls in EMBEDDERS else {}
    model = short(cls, backbone=_Recorder, precision="bfloat16", **extra)
    model.fit(digits.X_base, digits.y_base)
    backbone = next(m for m in model.module_.modules() if isinstance(m, _Recorder))
    # Every training step in autocast (the float32 passes: the two probes that
    # build the network, of X's channels and of the embedding's size).
    assert backbone.seen.count(torch.bfloat16) >= model.n_steps_ > 0
    assert backbone.seen.count(torch.float32) <= 2
    backbone.seen.clear()
    z = model.transform(digits.X_novel[:7])
    assert z.dtype == np.float32 and np.isfinite(z).all()
    if hasattr(model, "predict_proba"):
        model.adapt(digits.X_novel[:40], digits.y_novel[:40])
        proba = model.predict_proba(digits.X_novel[40:47])
        assert proba.dtype == np.float32
        np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert set(backbone.seen) == {torch.bfloat16}  # inference: all of it


def _recording(method, seen):
    """``method``, appending to ``seen`` whether autocast is on at each call."""

    def record(self, *args):
        seen.append(torch.is_autocast_enabled("cpu"))
        return method(self, *args)

    return record


@pytest.mark.parametrize(
    "cls",
    [
        PrototypicalClassifier,
        MatchingClassifier,
        RelationClassifier,
        TransferClassifier,
    ],
    ids=lambda c: c.__name__,
)
def test_bfloat16_compares_with_the_support_set_in_autocast(cls, digits, monkeypatch):
    # The head (distances, attention, relation module, logistic regression's
    # features) runs in the training precision at predict and in episodes.
    seen = []
    for name in ("_support_scorer", "_episode_logits"):
        monkeypatch.setattr(cls, name, _recording(getattr(cls, name), seen))
    model = short(cls, precision="bfloat16").fit(digits.X_base, digits.y_base)
    seen.clear()
    model.adapt(digits.X_novel[:40], digits.y_novel[:40]).predict(digits.X_novel[:5])
    assert seen == [True]
    evaluate_episodes(model, digits.X_novel, digits.y_novel, n_episodes=2)
    assert seen == [True] * 3


def test_float32_runs_no_autocast(digits):
    model = short(PrototypicalClassifier, backbone=_Recorder)
    model.fit(digits.X_base, digits.y_base).transform(digits.X_novel[:3])
    assert set(model.module_.backbone.seen) == {torch.float32}


def test_bfloat16_training_reaches_the_accuracy_of_float32(digits):
    # 90 episodes on digits: 5-way 1-shot accuracy on the novel digits within
    # 2 points (measured: 51.48 vs 51.51 %).
    scores = {}
    for precision in ("float32", "bfloat16"):
        model = PrototypicalClassifier(
            max_epochs=3, episodes_per_epoch=30, precision=precision, random_state=0
        ).fit(digits.X_base, digits.y_base)
        scores[precision] = evaluate_episodes(
            model, digits.X_novel, digits.y_novel, n_episodes=200, random_state=0
        ).mean
    assert scores["float32"] > 0.45  # it learnt: chance is 0.2
    assert abs(scores["bfloat16"] - scores["float32"]) < 0.02


def test_float16_trains_through_a_gradient_scaler():
    # A regression in float16: the scaler scales the loss, steps and updates.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]
    net = with_precision(NeuralNet, "float16")(
        nn.Linear(4, 1),
        criterion=nn.MSELoss,
        lr=0.05,
        max_epochs=20,
        batch_size=16,
        train_split=None,
        verbose=0,
    ).fit(X, y)
    assert net.grad_scaler_ is not None and net.grad_scaler_.get_scale() > 1
    losses = net.history[:, "train_loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.1 * losses[0]
    assert net.module_.weight.dtype == torch.float32


class _FirstGradients(Callback):
    """Records the first finite gradients that ``on_grad_computed`` callbacks see.

    The steps before it overflowed in float16 and were skipped by the
    scaler, which halved its scale: the weights are still the initial ones.
    """

    def on_grad_computed(self, net, named_parameters, **kwargs):
        grads = {n: p.grad.clone() for n, p in named_parameters}
        finite = all(g.isfinite().all() for g in grads.values())
        if finite and not hasattr(self, "gradients_"):
            self.gradients_ = grads


def test_float16_callbacks_see_the_true_gradients_not_the_scaled_ones():
    # Gradient clipping and the like must see unscaled values (the scaler's
    # factor starts at 65536).
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.normal(size=(32, 1)).astype(np.float32)
    module, record = nn.Linear(4, 1), _FirstGradients()
    initial = copy.deepcopy(module)
    with_precision(NeuralNet, "float16")(
        module,
        criterion=nn.MSELoss,
        max_epochs=10,
        batch_size=32,
        train_split=None,
        callbacks=[record],
        verbose=0,
    ).fit(X, y)
    F.mse_loss(initial(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    for name, parameter in initial.named_parameters():
        torch.testing.assert_close(
            record.gradients_[name], parameter.grad, rtol=1e-2, atol=1e-3
        )


class _Scale(Callback):
    def on_train_end(self, net, **kwargs):
        self.scale_ = net.grad_scaler_.get_scale()


def test_an_estimator_trains_and_predicts_in_float16(digits):
    scale = _Scale()
    model = short(PrototypicalClassifier, precision="float16", callbacks=[scale])
    model.fit(digits.X_base, digits.y_base)
    assert scale.scale_ > 1  # trained through the scaler
    assert np.isfinite(model.history_[:, "train_loss"]).all()
    model.adapt(digits.X_novel[:40], digits.y_novel[:40])
    proba = model.predict_proba(digits.X_novel[40:47])
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)


@pytest.mark.parametrize("cls", [MAMLClassifier, ReptileClassifier])
def test_maml_and_reptile_refuse_float16_naming_the_parameter(cls, digits):
    with pytest.raises(ValueError, match="'precision' parameter"):
        short(cls, precision="float16").fit(digits.X_base, digits.y_base)
