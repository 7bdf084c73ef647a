"""The one training run of every estimator (skmeta.training): interruptions,
divergence, and the history a cut-short run leaves."""

import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import short_estimators
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skmeta import (
    MatchingClassifier,
    PrototypicalClassifier,
    TransferClassifier,
    TripletEmbedder,
)
from skmeta.callbacks import TimeLimit
from skmeta.model_selection import ClassKFold, EpisodicScorer
from skmeta.training import reuse_freed_memory

ESTIMATORS = short_estimators()


class _InterruptedForward(torch.nn.Module):
    """An MLP whose ``forward`` raises KeyboardInterrupt on its ``at``-th training call.

    Ctrl-C lands inside a step, before its loss exists, and not in a callback.
    """

    def __init__(self, n_features, at=3):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 8)
        self.at, self.calls = at, 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
        return self.linear(x)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_an_interrupt_inside_a_step_keeps_the_last_complete_step(estimator, digits):
    X, y = digits.X_base, digits.y_base
    model = clone(estimator).set_params(
        backbone=_InterruptedForward(X.shape[1]), max_epochs=5, random_state=0
    )
    with pytest.warns(UserWarning, match="interrupted"):
        model.fit(X, y)
    assert model.stop_reason_ == "interrupted"
    # The interrupted step made no update and left no row without a loss.
    assert all("train_loss" in b for epoch in model.history_ for b in epoch["batches"])
    assert model.n_steps_ == sum(len(e["batches"]) for e in model.history_)
    assert len(model.history_) <= 1  # in its first epoch (or first step)
    # A usable estimator.
    assert np.isfinite(model.transform(X[:3])).all()


def test_an_interrupt_in_a_step_leaves_the_weights_of_the_steps_before(digits):
    X, y = digits.X_base, digits.y_base
    params = dict(max_epochs=1, episodes_per_epoch=10, random_state=0)
    torch.manual_seed(0)
    backbone = _InterruptedForward(X.shape[1], at=3)
    with pytest.warns(UserWarning, match="after 2 complete steps"):
        cut = PrototypicalClassifier(backbone=backbone, **params).fit(X, y)
    # The same two episodes, run to the end of an epoch of two.
    torch.manual_seed(0)
    whole = PrototypicalClassifier(
        backbone=_InterruptedForward(X.shape[1], at=-1),
        **{**params, "episodes_per_epoch": 2},
    ).fit(X, y)
    for name, value in whole.module_.state_dict().items():
        torch.testing.assert_close(cut.module_.state_dict()[name], value)


_CHILD = textwrap.dedent(
    """
    import time, warnings
    from skorch.callbacks import Callback
    from skmeta import PrototypicalClassifier
    from skmeta.datasets import load_digits_fewshot

    class Announce(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training:
                print("step", flush=True)
                time.sleep(0.02)

    d = load_digits_fewshot()
    clf = PrototypicalClassifier(
        max_epochs=1000, episodes_per_epoch=10, callbacks=[Announce()], random_state=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(d.X_base, d.y_base)
    print("stop_reason", clf.stop_reason_, clf.n_steps_, flush=True)
    print("warned", any("interrupted" in str(w.message) for w in caught), flush=True)
    print("accuracy", clf.score(d.X_base, d.y_base), flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_a_real_sigint_ends_fit_after_the_step_and_keeps_the_model():
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert child.stdout.readline().strip() == "step"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    reason, steps = lines["stop_reason"].split()
    assert reason == "interrupted" and 1 <= int(steps) < 10_000
    assert lines["warned"] == "True"
    assert 0.2 < float(lines["accuracy"]) <= 1.0
    assert "Traceback" not in err


class _StopDuringEpoch(Callback):
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_batch_end(self, net, training=False, **kwargs):
        row = net.history[-1]
        if (
            training
            and len(net.history) == self.epoch
            and len(row["batches"]) == (self.step)
        ):
            raise KeyboardInterrupt


def test_a_cut_short_epoch_has_a_full_history_row(digits):
    clf = PrototypicalClassifier(
        max_epochs=3,
        episodes_per_epoch=4,
        validation_fraction=0.4,
        callbacks=[_StopDuringEpoch(epoch=2, step=2)],
        random_state=0,
    )
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(digits.X_base, digits.y_base)
    history = clf.history_
    # One entry per epoch in every column, NaN where validation had no time.
    assert len(history[:, "valid_loss"]) == len(history[:, "epoch"]) == 2
    assert math.isnan(history[-1, "valid_loss"]) and math.isnan(
        history[-1, "valid_acc"]
    )
    assert np.isfinite(history[0, "valid_loss"])
    assert history[-1, "train_loss"] == pytest.approx(
        np.mean([b["train_loss"] for b in history[-1, "batches"]])
    )


@pytest.mark.parametrize(
    "estimator",
    [
        TripletEmbedder(lr=1e3, embedding_dim=8, max_epochs=2, batches_per_epoch=20),
        MatchingClassifier(lr=1e3, max_epochs=2, episodes_per_epoch=20),
    ],
    ids=lambda e: type(e).__name__,
)
def test_weights_that_grow_a_thousandfold_are_a_divergence(estimator, digits):
    # Issue 25: bounded losses (a margin, a cosine) stayed finite at lr=1e3
    # while the weights reached 1e4, and the models were degraded silently.
    with pytest.raises(ValueError, match=r"grew from .* Lower the learning rate"):
        clone(estimator).set_params(random_state=0).fit(digits.X_base, digits.y_base)


def test_divergence_on_huge_inputs_names_their_scale(digits):
    with pytest.raises(ValueError, match=r"inputs reach 1e\+30 .*StandardScaler"):
        PrototypicalClassifier(max_epochs=1, episodes_per_epoch=5).fit(
            digits.X_base * 1e30, digits.y_base
        )


def _backbone_state(estimator):
    return {k: v.clone() for k, v in estimator.module_.backbone.state_dict().items()}


def test_backbone_lr_zero_freezes_the_backbone_and_its_batch_norm(tiny_images):
    X, y = tiny_images
    params = dict(max_epochs=2, train_batch_size=8, random_state=0)
    untrained = TransferClassifier(**{**params, "max_epochs": 0}).fit(X, y)
    frozen = TransferClassifier(**params, backbone_lr=0).fit(X, y)
    before, after = _backbone_state(untrained), _backbone_state(frozen)
    assert any("running_mean" in name for name in after)
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    # The head trained.
    head = frozen.module_.classifier.weight
    assert not torch.equal(head, untrained.module_.classifier.weight)


def test_layers_a_user_froze_keep_their_batch_norm_statistics(digits):
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU()
    )
    backbone[:2].requires_grad_(False)
    backbone.append(torch.nn.Linear(16, 8))
    clf = PrototypicalClassifier(backbone=backbone, max_epochs=1, random_state=0)
    clf.fit(digits.X_base, digits.y_base)
    bn = clf.module_.backbone[1]
    torch.testing.assert_close(bn.running_mean, torch.zeros(16))
    torch.testing.assert_close(bn.running_var, torch.ones(16))
    assert not torch.equal(clf.module_.backbone[3].weight, backbone[3].weight)


def test_backbone_lr_is_the_step_size_of_the_backbone_alone(tiny_images):
    # Adam's first step moves each weight with a gradient by its learning rate.
    X, y = tiny_images
    params = dict(train_batch_size=len(X), max_epochs=1, random_state=0)
    untrained = TransferClassifier(**{**params, "max_epochs": 0}).fit(X, y)
    tuned = TransferClassifier(**params, lr=1e-2, backbone_lr=1e-5).fit(X, y)
    moved = {
        name: (value - untrained.module_.state_dict()[name]).abs().max().item()
        for name, value in tuned.module_.state_dict().items()
        if name.endswith("weight")
    }
    backbone = [v for k, v in moved.items() if k.startswith("backbone.")]
    head = [v for k, v in moved.items() if k.startswith("classifier.")]
    assert 0 < max(backbone) <= 1.01e-5
    assert max(head) == pytest.approx(1e-2, rel=1e-2)


def test_optimizer_weight_decay_and_backbone_lr_are_searchable(digits):
    search = GridSearchCV(
        PrototypicalClassifier(max_epochs=1, episodes_per_epoch=3, random_state=0),
        {"optimizer__weight_decay": [0.0, 1e-2], "backbone_lr": [None, 1e-4]},
        cv=ClassKFold(2),
        scoring=EpisodicScorer(n_way=2, n_episodes=5),
        error_score="raise",
    ).fit(digits.X_base, digits.y_base, groups=None)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert best.optimizer_params is None or "weight_decay" in best.optimizer_params
    assert set(search.best_params_) == {"optimizer__weight_decay", "backbone_lr"}


def test_an_optimizer_is_named_or_a_torch_optimizer_class(digits):
    X, y = digits.X_base, digits.y_base
    with pytest.raises(ValueError, match="optimizer"):
        PrototypicalClassifier(optimizer="adamax", max_epochs=1).fit(X, y)
    clf = PrototypicalClassifier(
        optimizer=torch.optim.SGD, max_epochs=1, episodes_per_epoch=2, random_state=0
    ).set_params(optimizer__momentum=0.9)
    assert clf.optimizer_params == {"momentum": 0.9}
    assert clf.fit(X, y).get_params()["optimizer__momentum"] == 0.9


def test_reuse_freed_memory_sets_glibc_thresholds_in_its_process():
    # Process-wide: in a child, not in the test's own process.
    code = (
        "from skmeta.training import reuse_freed_memory\n"
        "print(reuse_freed_memory(1 << 28))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert out == expected


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    import ctypes

    def no_glibc(name):
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert reuse_freed_memory() is False


def test_the_learning_curve_example_works_under_a_time_limit(digits):
    # examples/plot_learning_curves.py plots these columns against "epoch":
    # an epoch that the time limit cuts short has an entry in each (NaN for
    # the validation it had no time for).
    clf = PrototypicalClassifier(
        max_epochs=5,
        episodes_per_epoch=50,
        validation_fraction=0.4,
        callbacks=[TimeLimit(1e-9)],  # expires at the first step
        random_state=0,
    ).fit(digits.X_base, digits.y_base)
    assert clf.stop_reason_ == "time_limit"
    history = clf.history_
    epochs = history[:, "epoch"]
    for column in ("train_loss", "valid_loss", "valid_acc", "dur"):
        assert len(history[:, column]) == len(epochs) == 1
    assert math.isnan(history[-1, "valid_loss"]) and clf.n_steps_ == 1
