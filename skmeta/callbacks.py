"""skorch callbacks of skmeta.

Pass them to any torch-backed estimator's ``callbacks`` parameter, beside
skorch's own (``EarlyStopping``, ``Checkpoint``, ``EpochScoring``...)::

    PrototypicalClassifier(callbacks=[TimeLimit(120)])
"""

import copy
import math
import sys
import time
from numbers import Real

import torch
from skorch.callbacks import Callback, EarlyStopping, PrintLog

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


class _EpochLog(PrintLog):
    """skorch's table of epochs, coloured only on a terminal.

    skorch marks each epoch's best scores with ANSI colour codes; written to
    a log file or a pipe, those are noise, so they are left out there.
    """

    def format_row(self, row, key, color):
        if not sys.stdout.isatty():
            row = {k: v for k, v in row.items() if not k.endswith("_best")}
        return super().format_row(row, key, color)


class _HeldOutValidation(Callback):
    """Score the module in training on held-out classes after each epoch.

    Records ``valid_loss`` and ``valid_acc`` in the epoch's row of the
    history, with ``valid_loss_best`` and ``valid_acc_best`` as skorch's
    scoring callbacks do, so that ``EarlyStopping``, ``Checkpoint`` and
    ``LRScheduler`` on ``valid_loss`` work with their defaults.

    Parameters
    ----------
    score : callable
        Maps the module to ``(valid_loss, valid_acc)``, two floats.
    """

    def __init__(self, score):
        self.score = score

    def on_epoch_end(self, net, **kwargs):
        loss, accuracy = self.score(net.module_)
        history = net.history
        for name, value, sign in (("valid_loss", loss, 1), ("valid_acc", accuracy, -1)):
            previous = [sign * row[name] for row in history[:-1] if name in row]
            history.record(name, value)
            history.record(f"{name}_best", not previous or sign * value < min(previous))


class _EarlyStoppingFromStart(EarlyStopping):
    """skorch's ``EarlyStopping`` on ``valid_loss``, the untrained module a candidate.

    The held-out loss of the module before training is the first score to
    beat: when no epoch beats it (meta-training on too few base classes can
    specialise the backbone away from new classes), training stops after
    ``patience`` epochs and the initial weights come back, so early stopping
    never returns a model that does worse on the held-out classes than the
    one it started from.

    Parameters
    ----------
    score : callable
        Maps the module to ``(valid_loss, valid_acc)``.
    **kwargs
        Arguments of ``skorch.callbacks.EarlyStopping``; ``monitor`` is
        ``"valid_loss"``.
    """

    def __init__(self, score, **kwargs):
        super().__init__(**kwargs)
        self.score = score

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        initial_loss, _ = self.score(net.module_)
        self.dynamic_threshold_ = self._calc_new_threshold(initial_loss)
        self.best_model_weights_ = copy.deepcopy(net.module_.state_dict())


class _StopOnDivergence(Callback):
    """Raise at the training step where training diverged or collapsed.

    Checked after every step, so the error names the step and the learning
    rates to lower, instead of a model that predicts NaN, or one class for
    everything, without a word. Training has diverged when the loss or a
    weight is not finite, when the loss exceeds ``max_loss`` (no loss of
    skmeta reaches it while training goes well: cross-entropy starts near
    log(n_way), the metric losses near their margins or scales; MAML at
    lr=1e3 reached 4e24, Reptile at inner_lr=1e3 6e12, both finite, with
    chance accuracy), or when the largest magnitude of a parameter tensor
    has grown more than ``max_growth`` times past its initial one (or past
    1, if that was smaller): a bounded loss (a margin, a cosine) can hide a
    divergence that the weights show (Triplet and ArcFace at lr=1e3 reached
    weights of 1e4 against 0.13 at a flat loss). It has collapsed when the
    network gives exactly the same output for every row of a step whose
    inputs differ (dead units, as a far too large learning rate leaves them),
    for ``patience`` steps in a row, or for every step after the first (two
    at least; the first step's outputs come before any update) of a training
    shorter than that. A step that returns no outputs (Reptile's meta-update,
    whose inner steps it does not keep) is checked for divergence only.

    Parameters
    ----------
    learning_rates : dict of str to float
        The estimator's step-size parameters, for the message.
    patience : int, default=10
        Steps of identical outputs that make a collapse.
    max_loss : float, default=1e6
        A training loss above it has exploded.
    max_growth : float, default=1e3
        A parameter whose largest magnitude grew by more has diverged.
    input_scale : float or None, default=None
        The largest magnitude in the training inputs; above
        ``_LARGE_INPUT``, the message names the inputs' scale as the likely
        cause and suggests standardizing them.
    """

    #: Inputs larger than this in magnitude are named in a divergence error.
    _LARGE_INPUT = 1e3

    def __init__(
        self,
        learning_rates,
        patience=10,
        max_loss=1e6,
        max_growth=1e3,
        input_scale=None,
    ):
        self.learning_rates = learning_rates
        self.patience = patience
        self.max_loss = max_loss
        self.max_growth = max_growth
        self.input_scale = input_scale

    def on_train_begin(self, net, **kwargs):
        self.steps_ = self.constant_steps_ = 0
        self._start(net.module_)

    def _start(self, module):
        """Record the initial magnitudes of ``module``'s tensors, and their limits.

        Parameters may grow ``max_growth`` times past their initial largest
        magnitude (or past 1); buffers (running statistics) follow the data
        and are only checked for being finite.
        """
        self.names_, self.initial_ = self._magnitudes(module)
        parameters = {name for name, _ in module.named_parameters()}
        growth = [
            math.inf if n not in parameters else self.max_growth for n in self.names_
        ]
        growth = torch.tensor(growth, device=self.initial_.device)
        self.limits_ = growth * self.initial_.clamp(min=1.0)

    @staticmethod
    def _magnitudes(module):
        """Names and largest magnitudes of the floating tensors of ``module``."""
        named = [
            (n, t)
            for n, t in module.state_dict().items()
            if t.is_floating_point() and t.numel()
        ]
        if not named:
            return [], torch.zeros(0)
        # One reduction per tensor; NaN propagates through max.
        top = torch.stack([t.detach().abs().max().float() for _, t in named])
        return [n for n, _ in named], top

    def on_batch_end(
        self, net, batch=None, training=False, loss=None, y_pred=None, **kwargs
    ):
        if not training:
            return
        what = None
        loss = None if loss is None else torch.as_tensor(loss).detach()
        # One synchronisation: the largest magnitude is NaN or inf if any is.
        top = None if loss is None else float(loss.abs().max())
        if top is not None and not math.isfinite(top):
            what = f"the training loss is {float(loss.sum())}"
        elif top is not None and top > self.max_loss:
            what = (
                f"the training loss is {top:.3g}, above {self.max_loss:.0e} "
                "(it exploded)"
            )
        else:
            what = self._weights_diverged(net.module_)
        if what is not None:
            self.diverged(net, what)
        constant = _same_rows(y_pred) and not _same_rows(_inputs(batch))
        self.steps_ += 1
        self.constant_steps_ = self.constant_steps_ + 1 if constant else 0
        if self.constant_steps_ >= self.patience:
            self.diverged(net, self._collapsed())

    def _weights_diverged(self, module):
        """What diverged in the weights of ``module``, or None."""
        names, top = self._magnitudes(module)
        if names != self.names_:  # the module changed its tensors: a new start
            self._start(module)
            return None
        bad = ~top.isfinite() | (top > self.limits_)
        if not bad.any():  # one synchronisation per step
            return None
        i = int(bad.nonzero()[0])
        if not math.isfinite(float(top[i])):
            return f"the weights {names[i]!r} are not finite"
        return (
            f"the weights {names[i]!r} grew from a largest magnitude of "
            f"{float(self.initial_[i]):.3g} to {float(top[i]):.3g} (more than "
            f"{self.max_growth:.0e} times)"
        )

    def on_train_end(self, net, **kwargs):
        if 2 <= self.constant_steps_ >= self.steps_ - 1:
            self.diverged(net, self._collapsed())

    def _collapsed(self):
        return (
            "the network has given the same output for every sample of the "
            f"last {self.constant_steps_} steps (it collapsed)"
        )

    def diverged(self, net, what):
        """Raise the divergence error of ``net``'s run: ``what`` went wrong."""
        step = sum(len(epoch["batches"]) for epoch in net.history)
        rates = ", ".join(f"{k}={v!r}" for k, v in self.learning_rates.items())
        remedy = f"Lower the learning rate ({rates})"
        scale = self.input_scale
        if scale is not None and not scale <= self._LARGE_INPUT:
            remedy = (
                f"The training inputs reach {scale:.3g} in magnitude, the likely "
                "cause: standardize X first (sklearn.preprocessing.StandardScaler "
                "in a Pipeline; images scaled to [0, 1]). Otherwise, l" + remedy[1:]
            )
        raise ValueError(
            f"Training diverged at step {step} (epoch {len(net.history)}): "
            f"{what}. {remedy}. The estimator is left as it was before fit."
        )


def _inputs(batch):
    """The input tensor of a training step (an episode's ``x``, or a batch)."""
    if batch is None:
        return None
    x = batch[0]
    return x.get("x") if isinstance(x, dict) else x


def _same_rows(values):
    """Whether ``values`` is a tensor of at least 2 rows, all exactly equal."""
    if not torch.is_tensor(values) or values.ndim == 0 or len(values) < 2:
        return False
    values = values.detach()
    return bool((values == values[:1]).all())
