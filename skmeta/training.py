"""The one skorch set-up that trains every estimator's module."""

import sys
import time
import warnings

import numpy as np
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping, PrintLog, ProgressBar

from ._batchnorm import RunningStatsWarmup
from ._precision import with_precision
from .callbacks import (
    TimeLimit,
    _EarlyStoppingFromStart,
    _EpochLog,
    _HeldOutValidation,
    _StopOnDivergence,
)

__all__ = ["train_module"]


def train_module(estimator, module, data, *, steps_per_epoch, validation=None, **net):
    """Train ``module`` on ``data`` with skorch; the one set-up of every estimator.

    Parameters
    ----------
    estimator : skmeta._base.TorchEstimator
        The estimator being fitted: its training parameters (``max_epochs``,
        ``precision``, ``early_stopping``, ``callbacks``, ``verbose``...) and
        ``device_``.
    module : torch.nn.Module
    data : torch.utils.data.IterableDataset
        One epoch of training steps; each item is a whole step.
    steps_per_epoch : int
        Items of ``data``, for the progress bar.
    validation : callable or None
        Maps the module in training to ``(valid_loss, valid_acc)`` on the
        held-out classes; called after every epoch.
    **net
        Arguments of the skorch net: ``net_class`` (default
        ``skorch.NeuralNet``), ``criterion``, ``optimizer``, ``lr``,
        ``callbacks`` (the method's own, e.g. a schedule), and any other.

    Returns
    -------
    module : torch.nn.Module
        The trained module: with ``early_stopping``, at its best epoch.
    history : skorch.history.History
    stop_reason : str
        ``"max_epochs"``, ``"time_limit"``, ``"early_stopping"`` or
        ``"interrupted"`` (a ``KeyboardInterrupt``, with a warning).
    """
    net_class = with_precision(net.pop("net_class", NeuralNet), estimator.precision)
    callbacks = list(net.pop("callbacks", []))
    rates = {name: getattr(estimator, name) for name in estimator._learning_rates}
    callbacks.append(("divergence", _StopOnDivergence(rates)))
    callbacks.append(("running_stats", RunningStatsWarmup()))
    if validation is not None:
        callbacks.append(("valid", _HeldOutValidation(validation)))
    if estimator.early_stopping:
        stopping = _EarlyStoppingFromStart(
            validation,
            monitor="valid_loss",
            patience=estimator.n_iter_no_change,
            threshold=0,
            load_best=True,
        )
        callbacks.append(("early_stopping", stopping))
    if estimator.verbose and sys.stderr.isatty():
        callbacks.append(
            ("progress_bar", ProgressBar(batches_per_epoch=steps_per_epoch))
        )
    user = list(estimator.callbacks or [])
    if validation is None:
        _check_monitors(user)
    net = net_class(
        module=module,
        max_epochs=estimator.max_epochs,
        batch_size=None,  # every item of the data is a whole training step
        train_split=None,  # validation holds out classes: _HeldOutValidation
        callbacks=callbacks + user,
        callbacks__print_log=_EpochLog(),
        device=estimator.device_,
        verbose=int(estimator.verbose),
        **net,
    )
    net.fit(data, y=None)
    return net.module_, net.history_, _finish_history(net)


def _check_monitors(callbacks):
    """Refuse a callback that monitors validation scores when there are none."""
    for item in callbacks:
        callback = item[1] if isinstance(item, tuple) else item
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("valid_"):
            raise ValueError(
                f"{type(callback).__name__} monitors {monitor!r}, which needs "
                "validation on held-out classes: set validation_fraction (for "
                "instance 0.1) or early_stopping=True."
            )


def _finish_history(net):
    """Why training stopped; an epoch cut short is completed in the history.

    An epoch that a time limit or an interruption ended after some of its
    steps gets its ``train_loss`` (the mean over those steps, weighted as
    skorch weights them) and ``dur``, and its row in the epoch log. A
    ``KeyboardInterrupt`` that no callback raised (Ctrl-C) warns: the model
    is only partly trained.
    """
    history = net.history_
    last = history[-1] if len(history) else {}
    cut_short = bool(last) and "dur" not in last
    if cut_short and last["batches"]:
        losses = [b["train_loss"] for b in last["batches"]]
        sizes = [b.get("train_batch_size", 1) for b in last["batches"]]
        history.record("train_loss", float(np.average(losses, weights=sizes)))
        timer = dict(net.callbacks_).get("epoch_timer")
        if timer is not None:
            history.record("dur", time.time() - timer.epoch_start_time_)
        for _, callback in net.callbacks_:
            if isinstance(callback, PrintLog):
                callback.on_epoch_end(net)
    callbacks = [cb for _, cb in net.callbacks_]
    if any(isinstance(cb, TimeLimit) and cb.expired_ for cb in callbacks):
        return "time_limit"
    if any(
        isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience for cb in callbacks
    ):
        return "early_stopping"
    n_epochs = len(history)
    if n_epochs < net.max_epochs or cut_short:
        n_steps = sum(len(epoch["batches"]) for epoch in history)
        warnings.warn(
            f"Training was interrupted (KeyboardInterrupt) after {n_steps} steps "
            f"in epoch {n_epochs} of {net.max_epochs}: the model is only partly "
            "trained. stop_reason_ is 'interrupted'.",
            UserWarning,
            stacklevel=4,
        )
        return "interrupted"
    return "max_epochs"
