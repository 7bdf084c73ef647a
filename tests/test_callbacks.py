"""Specification of skmeta.callbacks.TimeLimit."""

import time

import numpy as np
import pytest

from skmeta import PrototypicalClassifier, TripletEmbedder, callbacks
from skmeta.callbacks import TimeLimit

FAST = dict(episodes_per_epoch=10, random_state=0)


class _Clock:
    """A stand-in for time.monotonic that advances one second a reading."""

    def __init__(self):
        self.now = -1.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_the_step_that_crosses_the_limit_is_the_last(digits, monkeypatch):
    # Readings: 0 at the start, then 1, 2, 3 after steps 1, 2, 3: the limit of
    # 3 s is reached after the third step, in the middle of the first epoch.
    monkeypatch.setattr(callbacks.time, "monotonic", _Clock())
    clf = PrototypicalClassifier(max_epochs=50, callbacks=[TimeLimit(3)], **FAST)
    clf.fit(digits.X_base, digits.y_base)
    assert clf.stop_reason_ == "time_limit"
    assert clf.n_steps_ == 3
    assert len(clf.history_) == 1
    # The epoch cut short gets its train_loss, the mean over its steps.
    losses = clf.history_[-1, "batches", :, "train_loss"]
    assert len(losses) == 3
    assert clf.history_[:, "train_loss"] == pytest.approx([np.mean(losses)])
    assert clf.history_[-1, "dur"] > 0
    assert clf.callbacks[0].expired_


def test_a_limit_reached_during_validation_ends_training_at_epoch_end(
    digits, monkeypatch
):
    # The 10 steps of epoch 1 end at reading 10, below the limit of 12 s;
    # validation then takes 5 s, so the limit has passed at the epoch's end.
    clock = _Clock()
    monkeypatch.setattr(callbacks.time, "monotonic", clock)
    real_score = PrototypicalClassifier.score_episodes

    def slow_validation(self, *args, **kwargs):
        clock.now += 5
        return real_score(self, *args, **kwargs)

    monkeypatch.setattr(PrototypicalClassifier, "score_episodes", slow_validation)
    clf = PrototypicalClassifier(
        max_epochs=50, validation_fraction=0.4, callbacks=[TimeLimit(12)], **FAST
    )
    clf.fit(digits.X_base, digits.y_base)
    assert clf.stop_reason_ == "time_limit"
    assert clf.n_steps_ == 10  # one whole epoch, with its validation scores
    assert len(clf.history_) == 1 and "valid_loss" in clf.history_[-1]


def test_a_real_time_limit_ends_a_long_fit(digits):
    start = time.monotonic()
    model = TripletEmbedder(max_epochs=10**6, callbacks=[TimeLimit(0.5)])
    model.fit(digits.X_base, digits.y_base)
    assert time.monotonic() - start >= 0.5
    assert model.stop_reason_ == "time_limit"
    assert 0 < model.n_steps_ < 10**6 * model.batches_per_epoch
    assert model.n_steps_ == sum(len(e["batches"]) for e in model.history_)
    assert len(model.history_[:, "train_loss"]) == len(model.history_)


def test_no_limit_reached_leaves_the_run_to_max_epochs(digits):
    clf = PrototypicalClassifier(max_epochs=2, callbacks=[TimeLimit(3600)], **FAST)
    clf.fit(digits.X_base, digits.y_base)
    assert clf.stop_reason_ == "max_epochs"
    assert clf.n_steps_ == 20
    assert not clf.callbacks[0].expired_


@pytest.mark.parametrize("seconds", [0, -1.5, float("nan"), "60", True, None])
def test_seconds_must_be_a_positive_number(digits, seconds):
    clf = PrototypicalClassifier(max_epochs=1, callbacks=[TimeLimit(seconds)])
    with pytest.raises(ValueError, match="seconds must be a positive number"):
        clf.fit(digits.X_base, digits.y_base)
