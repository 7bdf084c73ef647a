"""The training contract every torch-backed estimator shares (skmeta._base).

Validation on held-out classes, early stopping, skorch's own callbacks, why
and when training stopped, and what a user sees while it runs.
"""

import inspect
import math
import sys
import warnings

import numpy as np
import pytest
import sklearn
import torch
from helpers import assert_same_weights, short, short_estimators
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupKFold, cross_validate
from skorch.callbacks import Callback, Checkpoint, EarlyStopping

from skmeta import (
    EpisodeSampler,
    MAMLClassifier,
    PrototypicalClassifier,
    ReptileClassifier,
    TripletEmbedder,
)
from skmeta._arrays import _MemmapBatches
from skmeta.fewshot._episodic import _EpisodeStream
from skmeta.model_selection import evaluate_episodes

ESTIMATORS = short_estimators()
every_estimator = pytest.mark.parametrize(
    "estimator", ESTIMATORS, ids=lambda e: type(e).__name__
)

N_CLASSES = 12


@pytest.fixture(scope="module")
def tagged():
    """12 classes of 12 samples whose feature 0 is the class index / 100."""
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(N_CLASSES), 12)
    X = rng.normal(size=(len(y), 8)).astype(np.float32)
    X[:, 1:] += rng.normal(scale=3, size=(N_CLASSES, 7)).astype(np.float32)[y]
    X[:, 0] = (y / 100).astype(np.float32)
    return X, y


class _SeenClasses(Callback):
    """Records the classes (feature 0 x 100) of every training input."""

    def initialize(self):
        self.classes = set()
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        x = batch[0]["x"] if isinstance(batch[0], dict) else batch[0]
        tags = x.reshape(-1, x.shape[-1])[:, 0] * 100
        self.classes |= set(np.rint(tags.numpy()).astype(int).tolist())


@every_estimator
def test_validation_holds_out_whole_classes_never_trained_on(estimator, tagged):
    X, y = tagged
    seen = _SeenClasses()
    model = clone(estimator).set_params(validation_fraction=0.25, callbacks=[seen])
    model.fit(X, y)
    held_out = set(y[model._held_out(y, None)].tolist())
    assert len(held_out) == math.ceil(0.25 * N_CLASSES)
    assert seen.classes and not seen.classes & held_out
    # Each epoch records the held-out scores, skorch-style, with best flags.
    history = model.history_
    assert len(history[:, "valid_loss"]) == len(history[:, "valid_acc"]) == 2
    assert all(np.isfinite(history[:, "valid_loss"]))
    assert history[0, "valid_loss_best"] and history[0, "valid_acc_best"]


def test_valid_acc_is_evaluate_episodes_on_the_held_out_classes(tagged):
    X, y = tagged
    clf = PrototypicalClassifier(
        max_epochs=1, episodes_per_epoch=5, validation_fraction=0.25, random_state=0
    ).fit(X, y)
    held_out = clf._held_out(y, None)
    scores = evaluate_episodes(
        clf,
        X[held_out],
        y[held_out],
        n_way=3,
        k_shot=1,
        n_query=11,  # n_query=None: as many as the classes of 12 samples allow
        n_episodes=clf.n_validation_episodes,
        random_state=clf._seed(),
    )
    assert clf.history_[-1, "valid_acc"] == pytest.approx(scores.mean)


N_USERS = 6


@pytest.fixture(scope="module")
def users():
    """6 users (groups) who each liked 6 items and disliked 6; feature 0 is
    the user index / 100, and every user likes a different direction."""
    rng = np.random.RandomState(0)
    groups = np.repeat(np.arange(N_USERS), 12)
    y = np.tile(np.repeat([0, 1], 6), N_USERS)
    X = rng.normal(size=(len(y), 8)).astype(np.float32)
    taste = rng.normal(scale=3, size=(N_USERS, 7)).astype(np.float32)
    X[:, 1:] += np.where(y[:, None] == 1, taste[groups], -taste[groups])
    X[:, 0] = (groups / 100).astype(np.float32)
    return X, y, groups


class _TaskGroups(Callback):
    """Records the users (feature 0 x 100) of each training task."""

    def initialize(self):
        self.tasks = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        x = batch[0]["x"]
        tasks = x if x.ndim == 3 else x[None]  # MAML and Reptile: meta-batches
        for task in tasks:
            tags = np.rint(task[:, 0].numpy() * 100).astype(int)
            self.tasks.append(set(tags.tolist()))


GROUPED = [e for e in ESTIMATORS if "groups" in inspect.signature(e.fit).parameters]


@pytest.mark.parametrize("estimator", GROUPED, ids=lambda e: type(e).__name__)
def test_with_groups_each_task_is_one_group_and_validation_holds_out_groups(
    estimator, users
):
    X, y, groups = users
    tasks = _TaskGroups()
    model = clone(estimator).set_params(
        n_way=None, validation_fraction=0.3, callbacks=[tasks]
    )
    model.fit(X, y, groups=groups)
    held_out = set(groups[model._held_out(y, groups)].tolist())
    assert len(held_out) == 2  # ceil(0.3 * 6)
    assert tasks.tasks and all(len(task) == 1 for task in tasks.tasks)
    assert not set.union(*tasks.tasks) & held_out
    # Both classes in every episode (n_way=None: the 2 classes each user has).
    assert model.n_way_ == 2
    assert np.isfinite(model.history_[:, "valid_loss"]).all()
    # fit is atomic with groups too: one that fails in training leaves the
    # model as it was.
    before = model.predict_proba(X)
    with pytest.raises(RuntimeError, match="injected"):
        model.set_params(callbacks=[_FailAt(1)]).fit(X, y, groups=groups[::-1])
    np.testing.assert_array_equal(model.predict_proba(X), before)


def test_with_groups_validation_episodes_are_as_wide_as_held_out_groups_allow():
    # Training users rated items of 4 classes, the held-out ones of 2:
    # validation runs 2-way episodes, not the training 4-way ones.
    rng = np.random.RandomState(0)
    groups = np.repeat(np.arange(6), 16)
    model = short(
        PrototypicalClassifier, n_way=4, k_shot=1, n_query=1, validation_fraction=0.3
    )
    held_out = model._held_out(None, groups)
    y = np.tile(np.repeat(np.arange(4), 4), 6)
    y[held_out] %= 2
    X = rng.normal(size=(len(y), 5)).astype(np.float32) + y[:, None]
    model.fit(X, y, groups=groups)
    assert model.n_way_ == 4 and np.isfinite(model.history_[:, "valid_loss"]).all()
    y[held_out] = 0  # one class in each held-out group: no validation episode
    with pytest.raises(ValueError, match=r"only 1 \(in any one held-out group\)"):
        model.fit(X, y, groups=groups)


def test_groups_reach_fit_through_metadata_routing(users):
    X, y, groups = users
    model = short(PrototypicalClassifier, n_way=2, callbacks=[_TaskGroups()])
    with sklearn.config_context(enable_metadata_routing=True):
        fitted = cross_validate(
            model.set_fit_request(groups=True),
            X,
            y,
            cv=GroupKFold(n_splits=3),
            params={"groups": groups},
            return_estimator=True,
            error_score="raise",
            scoring=lambda estimator, X, y: 0.0,  # the fits are what is tested
        )["estimator"]
    for estimator in fitted:
        tasks = estimator.callbacks[0].tasks
        assert tasks and all(len(task) == 1 for task in tasks)


@pytest.fixture(scope="module")
def misleading():
    """Base classes that teach the opposite of what the held-out ones need.

    Classes 0-7 differ in features 0-3 and vary widely in features 4-7,
    which meta-training therefore learns to ignore; classes 8-11 differ only
    in features 4-7. The held-out loss rises as training goes on: the digits
    effect, made certain.
    """
    rng = np.random.RandomState(1)
    y = np.repeat(np.arange(N_CLASSES), 20)
    X = rng.normal(scale=0.3, size=(len(y), 8)).astype(np.float32)
    train = y < 8
    X[train, :4] += rng.normal(scale=3, size=(8, 4)).astype(np.float32)[y[train]]
    X[train, 4:] += rng.normal(scale=3, size=(train.sum(), 4)).astype(np.float32)
    X[~train, 4:] += rng.normal(scale=3, size=(4, 4)).astype(np.float32)[y[~train] - 8]
    return X, y


HELD_OUT = [8, 9, 10, 11]  # the classes of ``misleading`` that validate


@pytest.fixture
def hold_out_8_to_11(monkeypatch):
    monkeypatch.setattr(
        PrototypicalClassifier,
        "_held_out",
        lambda self, y, groups: np.isin(y, HELD_OUT),
    )


def test_early_stopping_stops_when_the_held_out_loss_rises(
    misleading, hold_out_8_to_11
):
    X, y = misleading
    params = dict(max_epochs=40, episodes_per_epoch=5, n_way=5, random_state=0)
    clf = PrototypicalClassifier(early_stopping=True, n_iter_no_change=3, **params).fit(
        X, y
    )
    losses = clf.history_[:, "valid_loss"]
    assert clf.stop_reason_ == "early_stopping"
    assert len(losses) == 3 and losses == sorted(losses)  # rising, 3 epochs
    # No epoch beat the untrained module on the held-out classes: its weights
    # come back, and the model does no worse there than where it started.
    untrained = PrototypicalClassifier(**dict(params, max_epochs=0)).fit(X, y)
    for name, value in untrained.module_.state_dict().items():
        torch.testing.assert_close(clf.module_.state_dict()[name], value)


class _Weights(Callback):
    """The module's weights at the end of every epoch."""

    def initialize(self):
        self.epochs = []
        return self

    def on_epoch_end(self, net, **kwargs):
        state = net.module_.state_dict()
        self.epochs.append({k: v.clone() for k, v in state.items()})


def test_early_stopping_keeps_the_weights_of_the_best_epoch(digits, monkeypatch):
    # Held-out losses scripted: the untrained module's, then one per epoch.
    scripted = iter([1.0, 0.8, 0.5, 0.7, 0.9, 0.6, 0.1])
    monkeypatch.setattr(
        PrototypicalClassifier,
        "score_episodes",
        lambda self, X, y, sampler, groups=None: (
            np.array([next(scripted)]),
            np.array([0.5]),
        ),
    )
    weights = _Weights()
    clf = PrototypicalClassifier(
        max_epochs=20,
        episodes_per_epoch=5,
        early_stopping=True,
        n_iter_no_change=3,
        callbacks=[weights],
        random_state=0,
    ).fit(digits.X_base, digits.y_base)
    assert clf.history_[:, "valid_loss"] == [0.8, 0.5, 0.7, 0.9, 0.6]
    assert clf.history_[:, "valid_loss_best"] == [True, True, False, False, False]
    assert clf.stop_reason_ == "early_stopping"
    for name, value in weights.epochs[1].items():  # epoch 2, the best
        torch.testing.assert_close(clf.module_.state_dict()[name], value)


def test_skorch_checkpoint_reloads_into_an_estimator_that_predicts_the_same(
    tmp_path, digits
):
    checkpoint = Checkpoint(dirname=tmp_path, f_optimizer=None, f_criterion=None)
    clf = PrototypicalClassifier(
        max_epochs=6,
        episodes_per_epoch=5,
        validation_fraction=0.4,
        callbacks=[EarlyStopping(patience=2, load_best=True), checkpoint],
        random_state=0,
    ).fit(digits.X_base, digits.y_base)
    assert (tmp_path / "params.pt").exists() and (tmp_path / "history.json").exists()
    # A new estimator of the same architecture, untrained, with the weights of
    # the best epoch from the file: the same predictions on novel classes.
    reloaded = clone(clf).set_params(max_epochs=0, callbacks=None)
    reloaded.fit(digits.X_base, digits.y_base)
    reloaded.module_.load_state_dict(torch.load(tmp_path / "params.pt"))
    support = np.concatenate([np.flatnonzero(digits.y_novel == c)[:5] for c in (5, 7)])
    for model in (clf, reloaded):
        model.adapt(digits.X_novel[support], digits.y_novel[support])
    np.testing.assert_array_equal(
        reloaded.predict_proba(digits.X_novel), clf.predict_proba(digits.X_novel)
    )


@pytest.mark.parametrize(
    "callback", [EarlyStopping(), Checkpoint()], ids=["EarlyStopping", "Checkpoint"]
)
def test_validation_callbacks_without_validation_say_what_to_set(callback, digits):
    clf = PrototypicalClassifier(max_epochs=1, callbacks=[callback])
    with pytest.raises(ValueError, match=r"monitors 'valid_loss.*validation_fraction"):
        clf.fit(digits.X_base, digits.y_base)


def test_early_stopping_alone_holds_out_a_tenth_of_the_classes(tagged):
    X, y = tagged
    seen = _SeenClasses()
    PrototypicalClassifier(
        max_epochs=1, early_stopping=True, callbacks=[seen], random_state=0
    ).fit(X, y)
    assert len(seen.classes) == N_CLASSES - 2  # ceil(0.1 * 12) = 2 held out


def test_validation_that_leaves_fewer_than_two_classes_raises(digits):
    clf = PrototypicalClassifier(max_epochs=1, validation_fraction=0.8)
    with pytest.raises(ValueError, match=r"validation_fraction=0.8 holds out 4 of"):
        clf.fit(digits.X_base, digits.y_base)


def test_a_keyboard_interrupt_warns_and_records_how_far_training_got(digits):
    class CtrlC(Callback):
        def on_batch_end(self, net, **kwargs):
            if len(net.history[-1]["batches"]) == 3:
                raise KeyboardInterrupt

    clf = PrototypicalClassifier(
        max_epochs=5, episodes_per_epoch=10, callbacks=[CtrlC()], random_state=0
    )
    with pytest.warns(
        UserWarning, match="interrupted .* after 3 complete steps in epoch 1"
    ):
        clf.fit(digits.X_base, digits.y_base)
    assert clf.stop_reason_ == "interrupted"
    assert clf.n_steps_ == 3
    assert len(clf.history_[:, "train_loss"]) == 1


@every_estimator
def test_running_out_of_epochs_is_recorded(estimator, tagged):
    X, y = tagged
    model = clone(estimator).fit(X, y)
    assert model.stop_reason_ == "max_epochs"
    per_epoch = len(model.history_[0, "batches"])
    assert (
        model.n_steps_
        == 2 * per_epoch
        == sum(len(epoch["batches"]) for epoch in model.history_)
    )


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log file"])
def test_a_progress_bar_and_colours_on_a_terminal_only(
    terminal, digits, capsys, monkeypatch
):
    for stream in (sys.stdout, sys.stderr):
        monkeypatch.setattr(stream, "isatty", lambda: terminal)
    model = short(PrototypicalClassifier, verbose=1, validation_fraction=0.4)
    model.set_params(episodes_per_epoch=10).fit(digits.X_base, digits.y_base)
    captured = capsys.readouterr()
    assert "train_loss" in captured.out and "valid_acc" in captured.out  # epoch log
    assert ("/10 [" in captured.err) == terminal  # tqdm's bar over 10 episodes
    assert ("\x1b[" in captured.out) == terminal  # skorch's colour of best scores
    if not terminal:
        assert "\r" not in captured.out + captured.err


class _NaNAfter(torch.nn.Module):
    """A linear embedding whose output turns NaN from the n-th training call."""

    def __init__(self, n_features, n=3):
        super().__init__()
        self.linear, self.n, self.calls = torch.nn.Linear(n_features, 8), n, 0

    def forward(self, x):
        x = x.reshape(len(x), -1)
        if self.training:
            self.calls += 1
        z = self.linear(x)
        return z * float("nan") if self.training and self.calls >= self.n else z


@pytest.mark.parametrize(
    "estimator, rates",
    [
        (short(PrototypicalClassifier), "lr=0.001"),
        (short(MAMLClassifier, n_way=3, meta_batch_size=2), "lr=0.001, inner_lr=0.4"),
        (
            short(ReptileClassifier, n_way=3, meta_batch_size=2),
            "meta_step_size=1.0, inner_lr=0.001",
        ),
        (short(TripletEmbedder), "lr=0.001"),
    ],
    ids=lambda e: type(e).__name__ if not isinstance(e, str) else "",
)
def test_divergence_raises_at_its_step_and_leaves_the_estimator_unfitted(
    estimator, rates, tagged
):
    X, y = tagged
    model = clone(estimator).set_params(backbone=_NaNAfter(X.shape[1]))
    with pytest.raises(ValueError, match=rf"diverged at step \d .*\({rates}\)"):
        model.fit(X, y)
    assert not hasattr(model, "n_features_in_") and not hasattr(model, "module_")
    with pytest.raises(NotFittedError):
        model.transform(X)


@pytest.mark.parametrize(
    "estimator, rates",
    [
        (MAMLClassifier(lr=1e3), r"lr=1000.0, inner_lr=0.4"),
        (ReptileClassifier(inner_lr=1e3), r"meta_step_size=1.0, inner_lr=1000.0"),
    ],
    ids=["MAML", "Reptile"],
)
def test_an_exploding_finite_loss_raises(estimator, rates, digits):
    # Issue 10's probes: finite losses of 4e24 and 6e12, finite weights, and
    # chance accuracy, without a word.
    model = clone(estimator).set_params(max_epochs=2, episodes_per_epoch=10)
    # The loss explodes, or first the weights grow a thousandfold.
    with pytest.raises(ValueError, match=rf"(exploded\)|grew from).*\({rates}\)"):
        model.fit(digits.X_base, digits.y_base)
    assert not hasattr(model, "module_")


class _Constant(torch.nn.Module):
    """A backbone whose output is the same for every input: a dead network."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.ones(8))

    def forward(self, x):
        return self.bias.expand(len(x), -1) + 0 * x.flatten(1)[:, :1]


def test_a_collapse_to_one_output_raises_naming_the_learning_rate(digits):
    # As lr=1e3 left Relation's relation module after one step: finite losses,
    # the same scores for every pair, chance accuracy.
    model = PrototypicalClassifier(
        backbone=_Constant(), max_epochs=3, episodes_per_epoch=10
    )
    # Every step's scores are equal from the first: 10 steps make a collapse.
    with pytest.raises(ValueError, match=r"step 10 .*collapsed.*\(lr=0.001\)"):
        model.fit(digits.X_base, digits.y_base)
    assert not hasattr(model, "module_")
    # Training that ends sooner: every step after the first counts (two at least).
    with pytest.raises(ValueError, match=r"last 3 steps \(it collapsed\)"):
        model.set_params(max_epochs=1, episodes_per_epoch=3).fit(
            digits.X_base, digits.y_base
        )


class _ConstantOnCue(torch.nn.Module):
    """A linear backbone whose output turns constant once ``constant`` is set."""

    def __init__(self, in_features):
        super().__init__()
        self.layer = torch.nn.Linear(in_features, 4)
        self.constant = False

    def forward(self, x):
        out = self.layer(x)
        return out * 0 + 1 if self.constant else out


class _CueAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, net, **kwargs):
        if sum(len(e["batches"]) for e in net.history) == self.step:
            net.module_.backbone.constant = True


def test_identical_outputs_at_the_end_of_a_healthy_training_are_no_collapse():
    # Steps 1-4 healthy, steps 5 and 6 constant: fewer than patience, and not
    # a training that collapsed from its start.
    X = np.random.RandomState(0).normal(size=(40, 6)).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    model = short(
        PrototypicalClassifier,
        n_way=2,
        backbone=_ConstantOnCue(6),
        episodes_per_epoch=6,
        max_epochs=1,
        callbacks=[_CueAt(4)],
    ).fit(X, y)
    assert model.n_steps_ == 6 and model.module_.backbone.constant


def test_identical_outputs_of_identical_inputs_are_no_collapse():
    # Every sample the same: the same output for each is right, not a collapse.
    X = np.ones((12, 6), dtype=np.float32)
    y = np.repeat([0, 1], 6)
    model = short(PrototypicalClassifier, k_shot=1, n_query=2).fit(X, y)
    assert model.n_steps_ == 8


class _FailAt(Callback):
    def __init__(self, step, error=RuntimeError):
        self.step, self.error = step, error

    def on_batch_end(self, net, **kwargs):
        if sum(len(e["batches"]) for e in net.history) == self.step:
            raise self.error("injected")


@every_estimator
def test_a_failed_refit_leaves_the_previous_model_whole(estimator, tagged):
    X, y = tagged
    model = clone(estimator).fit(X, y)
    before = {k: v for k, v in vars(model).items() if k.endswith("_")}
    out = model.transform(X[:5])
    wider = np.hstack([X, X])  # another input shape, and a fault at step 2
    with pytest.raises(RuntimeError, match="injected"):
        model.set_params(callbacks=[_FailAt(2)]).fit(wider, y)
    assert {k: v for k, v in vars(model).items() if k.endswith("_")} == before
    np.testing.assert_array_equal(model.transform(X[:5]), out)


def test_an_interrupted_adapt_leaves_the_previous_support_whole(digits):
    clf = short(PrototypicalClassifier).fit(digits.X_base, digits.y_base)
    proba = clf.predict_proba(digits.X_base[:10])
    classes = clf.classes_

    def interrupted(x):
        raise KeyboardInterrupt

    clf.module_.embed, embed = interrupted, clf.module_.embed
    with pytest.raises(KeyboardInterrupt):
        clf.adapt(digits.X_novel[:30], digits.y_novel[:30])
    clf.module_.embed = embed
    assert clf.classes_ is classes
    np.testing.assert_array_equal(clf.predict_proba(digits.X_base[:10]), proba)


@every_estimator
def test_a_sample_gets_the_same_output_alone_as_in_a_batch(estimator, tagged):
    # Bit for bit: on fewer than 8 rows float32 matrix products take other
    # kernels, so inference pads a forward pass to 8 rows.
    X, y = tagged
    model = clone(estimator).fit(X, y)
    methods = [m for m in ("transform", "predict_proba") if hasattr(model, m)]
    for method in methods:
        batch = getattr(model, method)(X[:20])
        alone = np.concatenate(
            [getattr(model, method)(X[i : i + 1]) for i in range(20)]
        )
        np.testing.assert_array_equal(alone, batch, err_msg=method)


def test_no_prediction_takes_an_argmax_over_nan(digits):
    clf = short(PrototypicalClassifier).fit(digits.X_base, digits.y_base)
    with torch.no_grad():
        next(clf.module_.parameters()).fill_(float("inf"))
    for method in (clf.predict, clf.predict_proba, clf.transform):
        with pytest.raises(ValueError, match="non-finite .*lower learning rate"):
            method(digits.X_novel[:5])
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_episodes(clf, digits.X_novel, digits.y_novel, n_episodes=5)


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu", "device must be 'cpu', 'cuda'.*got 'gpu'"),
        ("nonsense", "device must be .*got 'nonsense'"),
        pytest.param(
            "mps",
            "'mps' is not available",
            marks=pytest.mark.skipif(
                torch.backends.mps.is_available(), reason="MPS is available"
            ),
        ),
        pytest.param(
            "cuda:0",
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA here"),
        ),
    ],
)
def test_a_device_that_cannot_be_used_is_named(device, message, digits):
    clf = PrototypicalClassifier(max_epochs=1, device=device)
    with pytest.raises(ValueError, match=message):
        clf.fit(digits.X_base, digits.y_base)


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            lambda y: np.array([v if v % 2 else str(v) for v in y.tolist()], object),
            "y mixes labels of the types int, str",
        ),
        (lambda y: np.where(y == 0, np.nan, y), "y contains NaN"),
        (lambda y: y + 0.5, "y must be class labels"),
    ],
    ids=["ints and strings", "NaN", "continuous"],
)
def test_labels_that_cannot_be_classes_are_named(labels, message, digits):
    y = labels(digits.y_base)
    with pytest.raises(ValueError, match=message):
        PrototypicalClassifier(max_epochs=1).fit(digits.X_base, y)


def test_samples_of_another_dimension_at_predict_are_named(digits):
    clf = short(PrototypicalClassifier).fit(digits.X_base, digits.y_base)
    with pytest.raises(ValueError, match=r"X must be 2-D, samples of shape \(64,\)"):
        clf.predict(digits.X_novel[:4].reshape(4, 8, 8))


def test_the_episode_stream_hides_the_query_labels_from_the_module():
    X = torch.arange(12.0).reshape(12, 1)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    sampler = EpisodeSampler(2, 1, 2, 3, random_state=0)
    stream = _EpisodeStream(X, y, sampler, None, torch.device("cpu"))
    for (item, y_query), (support, query) in zip(
        stream,
        EpisodeSampler(2, 1, 2, 3, random_state=0).split(y=y.numpy()),
        strict=True,
    ):
        assert item["y"].tolist() == [0, 1, -1, -1, -1, -1]
        torch.testing.assert_close(item["x"][:, 0], X[np.r_[support, query], 0])
        # The targets are the episode classes of the query rows, in order.
        episode_class = {int(c): i for i, c in enumerate(y[support])}
        assert y_query.tolist() == [episode_class[int(c)] for c in y[query]]


def test_features_computed_beforehand_need_no_training_and_no_class_size(digits):
    # One sample per class: no episode could be drawn, and none is needed.
    X, y = digits.X_base[:5], digits.y_base[:5]
    clf = PrototypicalClassifier(backbone="identity").fit(X, y)
    np.testing.assert_array_equal(clf.prototypes_, X[np.argsort(y)])
    assert clf.n_steps_ == 0 and clf.stop_reason_ == "max_epochs"
    np.testing.assert_array_equal(clf.predict(X), y)
    embedder = TripletEmbedder(backbone="identity").fit(X, y)
    norms = np.linalg.norm(embedder.transform(X), axis=1)
    np.testing.assert_allclose(norms, 1, rtol=1e-6)  # normalised input
    assert embedder.n_steps_ == 0


def test_max_epochs_zero_draws_no_episode(digits):
    X, y = digits.X_base[:10], digits.y_base[:10]  # two samples per class
    clf = PrototypicalClassifier(max_epochs=0).fit(X, y)
    assert clf.n_steps_ == 0 and clf.predict(X).shape == (10,)


@every_estimator
def test_refit_replaces_the_fitted_state_wholesale(estimator, tagged):
    # Issue 25: fit(DataFrame) then fit(ndarray) kept feature_names_in_.
    pd = pytest.importorskip("pandas")
    X, y = tagged
    model = clone(estimator).set_params(random_state=0)
    model.fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y)
    assert hasattr(model, "feature_names_in_")
    model.fit(X, y)
    assert not hasattr(model, "feature_names_in_")
    fresh = clone(model).fit(X, y)
    assert sorted(vars(model)) == sorted(vars(fresh))


def test_uint8_images_are_scaled_to_unit_range_as_totensor_does(tiny_images):
    X, y = tiny_images
    X8 = np.round(X * 255).astype(np.uint8)
    clf = PrototypicalClassifier(max_epochs=1, episodes_per_epoch=2, random_state=0)
    a = clone(clf).fit(X8, y).transform(X8)
    b = clone(clf).fit(X8 / np.float32(255), y).transform(X8 / np.float32(255))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_channels_last_images_get_the_transpose_to_use(tiny_images):
    X, y = tiny_images
    with pytest.raises(ValueError, match=r"channels-last .*X.transpose\(0, 3, 1, 2\)"):
        PrototypicalClassifier(max_epochs=0).fit(X.transpose(0, 2, 3, 1), y)


def test_no_noise_from_one_shot_support_sets_or_read_only_arrays(tagged):
    X, y = tagged
    X = X.copy()
    X.setflags(write=False)
    clf = PrototypicalClassifier(max_epochs=1, episodes_per_epoch=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
        # 1-shot, 12 classes of 12 samples: sklearn's "regression problem".
        clf.adapt(X[::12], y[::12]).predict(X)


def test_a_memmap_of_uint8_images_is_read_in_batches(tiny_images, tmp_path):
    X, y = tiny_images
    X8 = np.round(X * 255).astype(np.uint8)
    np.save(tmp_path / "X.npy", X8)
    on_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    clf = PrototypicalClassifier(
        max_epochs=1, episodes_per_epoch=2, batch_size=7, random_state=0
    ).fit(X8, y)
    np.testing.assert_array_equal(clf.transform(on_disk), clf.transform(X8))
    np.testing.assert_array_equal(clf.predict_proba(on_disk), clf.predict_proba(X8))
    sampler = EpisodeSampler(2, 1, 3, 4, random_state=0)
    np.testing.assert_array_equal(
        clf.score_episodes(on_disk, y, sampler)[1],
        clf.score_episodes(X8, y, sampler)[1],
    )
    # Each batch is checked as it is read.
    bad = X.copy()
    bad[5, 0, 0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="NaN or infinity: in 1 sample.*row.s. 5\\."):
        clf.transform(np.load(tmp_path / "bad.npy", mmap_mode="r"))
    with pytest.raises(ValueError, match="NaN or infinity: in 1 sample.*row.s. 5\\."):
        clf.fit(np.load(tmp_path / "bad.npy", mmap_mode="r"), y)  # by episodes


@pytest.mark.parametrize("validation_fraction", [None, 0.5])
def test_fit_on_a_memmap_reads_an_episode_or_a_batch_at_a_time(
    tiny_images, tmp_path, monkeypatch, validation_fraction
):
    X, y = tiny_images
    X8 = np.round(X * 255).astype(np.uint8)
    np.save(tmp_path / "X.npy", X8)
    on_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    model = short(PrototypicalClassifier, n_way=2, k_shot=1, n_query=2, batch_size=7)
    model.set_params(validation_fraction=validation_fraction)
    in_memory = clone(model).fit(X8, y)
    reads = []
    real_read = _MemmapBatches.__getitem__

    def read(self, index):
        batch = real_read(self, index)
        reads.append(len(batch))
        return batch

    monkeypatch.setattr(_MemmapBatches, "__getitem__", read)
    from_disk = clone(model).fit(on_disk, y)
    assert_same_weights(from_disk.module_, in_memory.module_.state_dict())
    assert from_disk.n_features_in_ == in_memory.n_features_in_ == 1
    assert max(reads) <= 7  # an episode of 2 x 3 images, or a batch of 7
    np.testing.assert_array_equal(
        from_disk.predict_proba(X8), in_memory.predict_proba(X8)
    )
    np.testing.assert_array_equal(
        from_disk.history_[:, "train_loss"], in_memory.history_[:, "train_loss"]
    )


def test_rotations_as_classes_on_a_memmap_say_how_to_load_it(tiny_images, tmp_path):
    X, y = tiny_images
    np.save(tmp_path / "X.npy", X)
    on_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(ValueError, match=r"rotations=True makes 4 copies.*np.asarray"):
        PrototypicalClassifier(rotations=True, max_epochs=1).fit(on_disk, y)
