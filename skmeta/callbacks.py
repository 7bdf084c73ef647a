"""skorch callbacks of skmeta.

Pass them to any torch-backed estimator's ``callbacks`` parameter, beside
skorch's own (``EarlyStopping``, ``Checkpoint``, ``EpochScoring``...)::

    PrototypicalClassifier(callbacks=[TimeLimit(120)])
"""

import time
from numbers import Real

from skorch.callbacks import Callback

__all__ = ["TimeLimit"]


class TimeLimit(Callback):
    """Stop training once a wall-clock time limit has passed.

    The time is checked after every training step (an episode, a meta-batch
    of tasks, or a batch): the step that crosses the limit completes, then
    training ends, as skorch's ``EarlyStopping`` ends it. The estimator keeps
    the weights it has (or, with early stopping, the best ones) and records
    why and when it stopped: ``stop_reason_ == "time_limit"`` and
    ``n_steps_``, the steps run. The epoch cut short keeps its batches in
    ``history_`` and gets its ``train_loss``, the mean over those batches.

    A time limit is not a fixed amount of work: the same limit trains twice
    as many episodes on a machine twice as fast. Give ``max_epochs`` (the
    amount of work) where results must be reproduced across machines.

    Parameters
    ----------
    seconds : float
        The limit, in seconds of wall-clock time from the start of training
        (skorch's ``on_train_begin``), validation passes included. Positive.

    Attributes
    ----------
    start_ : float or None
        ``time.monotonic()`` at the start of the last training run.
    expired_ : bool
        Whether the limit ended the last training run.

    Raises
    ------
    ValueError
        At the start of training, if ``seconds`` is not a positive number.

    Examples
    --------
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.callbacks import TimeLimit
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> clf = PrototypicalClassifier(max_epochs=1000, callbacks=[TimeLimit(2)])
    >>> clf = clf.fit(data.X_base, data.y_base)  # about 2 seconds
    >>> clf.stop_reason_
    'time_limit'
    """

    def __init__(self, seconds):
        self.seconds = seconds

    def initialize(self):
        if (
            isinstance(self.seconds, bool)
            or not isinstance(self.seconds, Real)
            or not self.seconds > 0
        ):
            raise ValueError(
                "TimeLimit's seconds must be a positive number of seconds; "
                f"got {self.seconds!r}."
            )
        self.start_ = None
        self.expired_ = False
        return self

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.monotonic()
        self.expired_ = False

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self._check()

    def on_epoch_end(self, net, **kwargs):
        self._check()  # after the epoch's validation pass

    def _check(self):
        if time.monotonic() - self.start_ >= self.seconds:
            self.expired_ = True
            # skorch's way to end fit from a callback, as EarlyStopping does.
            raise KeyboardInterrupt
