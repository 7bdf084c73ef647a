"""The one skorch set-up that trains every estimator's module."""

import contextlib
import ctypes
import signal
import sys
import threading
import time
import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, PrintLog, ProgressBar

from . import distributed
from ._batchnorm import RunningStatsWarmup
from ._precision import with_precision
from ._validation import NonFiniteEmbeddingsError
from .callbacks import (
    TimeLimit,
    _EarlyStoppingFromStart,
    _EpochLog,
    _HeldOutValidation,
    _StopOnDivergence,
)
from .text import TextBackbone

__all__ = ["OPTIMIZERS", "reuse_freed_memory"]

#: Optimizers by name, for the ``optimizer`` parameter of the estimators.
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def reuse_freed_memory(threshold=1 << 30):
    """Keep freed memory of up to ``threshold`` bytes a block for reuse (glibc).

    Each training step allocates activation buffers, and on large images
    they are large (hundreds of MB for an episode of 84x84 images). glibc's
    ``malloc`` serves such blocks with ``mmap`` and gives them back to the
    kernel when freed, so every step maps them again and touches every page
    anew: on 84x84 RGB episodes, a third of the CPU time went to the kernel
    (``benchmarks/fit_speed.py``). Raising the ``mmap`` threshold and the heap's
    trim threshold (``mallopt``, as the environment variables
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` would before
    start-up) keeps those blocks in the heap: system time drops, and the
    process keeps about twice the memory. The ``skmeta`` command calls it;
    a script calls it once, before training. It changes the whole process's
    allocator, which is why a library call never does it by itself.

    Parameters
    ----------
    threshold : int, default=1 << 30
        Blocks up to this many bytes come from the heap and stay there when
        freed; the heap is trimmed only past twice this much free memory.

    Returns
    -------
    bool
        Whether the setting took effect: False where the C library is not
        glibc (macOS, musl, Windows), where nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, int(threshold))) and bool(
        mallopt(m_trim_threshold, 2 * int(threshold))
    )


def optimizer_arguments(module, optimizer, optimizer_params=None, backbone_lr=None):
    """The skorch net's optimizer arguments for an estimator's optimizer parameters.

    Parameters
    ----------
    module : torch.nn.Module
        The network to train; with ``backbone_lr``, its submodule
        ``backbone`` gets that learning rate.
    optimizer : str or torch.optim.Optimizer subclass
        A name of :data:`OPTIMIZERS`, or the class.
    optimizer_params : dict or None, default=None
        Extra arguments of the optimizer (``weight_decay``...).
    backbone_lr : float or None, default=None
        The backbone's learning rate (a parameter group of skorch's
        ``optimizer__param_groups``); 0 freezes it: its parameters get
        ``requires_grad=False``.

    Returns
    -------
    dict
        ``optimizer`` and ``optimizer__<name>`` arguments of a skorch net.

    Raises
    ------
    TypeError
        If ``optimizer`` is neither a name nor a ``torch.optim.Optimizer``
        subclass.
    ValueError
        If ``backbone_lr`` is given and ``module`` has no ``backbone``.
    """
    if isinstance(optimizer, str):
        optimizer = OPTIMIZERS[optimizer]
    if not (
        isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)
    ):
        raise TypeError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} or a "
            f"torch.optim.Optimizer subclass; got {optimizer!r}."
        )
    arguments = {"optimizer": optimizer}
    for name, value in (optimizer_params or {}).items():
        arguments[f"optimizer__{name}"] = value
    if backbone_lr is None:
        return arguments
    backbone = getattr(module, "backbone", None)
    if not isinstance(backbone, torch.nn.Module):
        raise ValueError(
            f"backbone_lr={backbone_lr} needs a network with a backbone; "
            f"{type(module).__name__} has none."
        )
    if backbone_lr == 0:
        backbone.requires_grad_(False)
    else:
        arguments["optimizer__param_groups"] = [("backbone.*", {"lr": backbone_lr})]
    return arguments


def train_module(
    estimator, module, data, *, steps_per_epoch, inputs=None, validation=None, **net
):
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
    inputs : torch.Tensor or None
        The training inputs that ``data`` draws from; their largest
        magnitude lets a divergence error say when the inputs' scale is the
        likely cause (not for a module with a text backbone: its inputs are
        token ids).
    validation : callable or None
        Maps the module in training to ``(valid_loss, valid_acc)`` on the
        held-out classes; called after every epoch.
    **net
        Arguments of the skorch net: ``net_class`` (default
        ``skorch.NeuralNet``), ``criterion``, ``lr``, ``callbacks`` (the
        method's own, e.g. a schedule), and any other. The optimizer's come
        from the estimator's ``_optimizer_arguments(module)``.

    Returns
    -------
    module : torch.nn.Module
        The trained module: with ``early_stopping``, at its best epoch.
    history : skorch.history.History
    stop_reason : str
        ``"max_epochs"``, ``"time_limit"``, ``"early_stopping"`` or
        ``"interrupted"`` (a ``KeyboardInterrupt``, with a warning).

    Notes
    -----
    Ctrl-C (SIGINT, in the main thread) ends training after the step in
    progress, so that the weights are never those of a half-done update; a
    second Ctrl-C interrupts at once.

    Under an initialised ``torch.distributed`` process group of several
    processes, training is data-parallel (see :mod:`skmeta.distributed`): each
    process trains on its share of the steps of ``data``, gradients are
    averaged, and the returned module is the same in every process.
    """
    net = {**estimator._optimizer_arguments(module), **net}
    input_scale = None
    reads_token_ids = any(isinstance(m, TextBackbone) for m in module.modules())
    if inputs is not None and inputs.numel() and not reads_token_ids:
        input_scale = float(inputs.abs().max())
    net_class = net.pop("net_class", NeuralNet)
    parallel = distributed.world_size() > 1
    # Under a process group, process 0 alone prints the log and progress bar.
    verbose = int(estimator.verbose)
    if parallel:
        net_class, data = distributed.prepare(estimator, net_class, data)
        steps_per_epoch = len(data)
        if torch.distributed.get_rank() != 0:
            verbose = 0
    net_class = with_precision(net_class, estimator.precision)
    callbacks = list(net.pop("callbacks", []))
    rates = {name: getattr(estimator, name) for name in estimator._learning_rates}
    divergence = _StopOnDivergence(rates, input_scale=input_scale)
    callbacks.append(("divergence", divergence))
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
    if verbose and sys.stderr.isatty():
        callbacks.append(
            ("progress_bar", ProgressBar(batches_per_epoch=steps_per_epoch))
        )
    user = list(estimator.callbacks or [])
    if validation is None:
        _check_monitors(user)
    interrupt = _InterruptBetweenSteps()
    net = net_class(
        module=module,
        max_epochs=estimator.max_epochs,
        batch_size=None,  # every item of the data is a whole training step
        train_split=None,  # validation holds out classes: _HeldOutValidation
        # Last: every other callback has seen the step before it ends training.
        callbacks=[*callbacks, *user, ("interrupt", interrupt)],
        callbacks__print_log=_EpochLog(),
        device=estimator.device_,
        verbose=verbose,
        **net,
    )
    succeeded = False
    try:
        with interrupt.deferring_sigint(), _frozen_layers_in_eval(module):
            try:
                net.fit(data, y=None)
            except NonFiniteEmbeddingsError:  # a loss's batch check
                divergence.diverged(net, "the embeddings became NaN or infinite")
        succeeded = True
    finally:
        if parallel:
            distributed.finish(net, succeeded)
    return net.module_, net.history_, _finish_history(net)


@contextlib.contextmanager
def _frozen_layers_in_eval(module):
    """Keep the batch-norm layers of frozen parts of ``module`` in eval mode.

    skorch puts the whole module in training mode at every step; a frozen
    part (a submodule with parameters, none of which requires a gradient:
    a frozen backbone, or layers a user froze) would still update its
    batch-norm running statistics. A forward pre-hook on each of its
    batch-norm layers puts the layer in eval mode before each forward pass,
    for the duration of the block.
    """
    frozen = set()
    for part in module.modules():
        parameters = list(part.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            frozen.update(
                layer
                for layer in part.modules()
                if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)
            )
    handles = [layer.register_forward_pre_hook(_eval_mode_hook) for layer in frozen]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _eval_mode_hook(layer, args):
    """Forward pre-hook: the layer runs in eval mode (its running statistics)."""
    layer.training = False


class _InterruptBetweenSteps(Callback):
    """End training after the step in progress when Ctrl-C is pressed.

    Python raises ``KeyboardInterrupt`` wherever the interpreter is when
    SIGINT arrives: in the middle of an optimizer update, a step would leave
    some weights updated and others not. While :meth:`deferring_sigint` is
    active (in the main thread), the first SIGINT only records the request
    and restores the previous handler, so a second one interrupts at once;
    the step completes, and this callback then raises ``KeyboardInterrupt``
    after it, skorch's way to end ``fit`` from a callback.
    """

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def deferring_sigint(self):
        """Defer SIGINT to the end of the step during the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def request(signum, frame):
            self.requested = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def on_batch_end(self, net, training=False, **kwargs):
        if self.requested:
            raise KeyboardInterrupt

    def on_epoch_end(self, net, **kwargs):
        if self.requested:
            raise KeyboardInterrupt


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

    A step that an interruption ended before its loss was recorded (a
    ``KeyboardInterrupt`` raised inside it: it made no update) is dropped,
    and so is an epoch left without a step. An epoch that a time limit or an
    interruption ended after some of its steps gets its ``train_loss`` (the
    mean over those steps, weighted as skorch weights them), ``dur``, NaN for
    the validation scores it had no time for (so that every column of
    ``history_`` has one entry per epoch), and its row in the epoch log. A
    ``KeyboardInterrupt`` that no time limit raised (Ctrl-C) warns: the
    model is only partly trained.
    """
    history = net.history_
    interrupted_in_step = False
    batches = history[-1]["batches"] if len(history) else []
    if batches and "train_loss" not in batches[-1]:
        del batches[-1]
        interrupted_in_step = True
    if len(history) and not history[-1]["batches"] and "dur" not in history[-1]:
        del history[-1]
        interrupted_in_step = True
    last = history[-1] if len(history) else {}
    cut_short = bool(last) and "dur" not in last
    if cut_short:
        losses = [b["train_loss"] for b in last["batches"]]
        sizes = [b.get("train_batch_size", 1) for b in last["batches"]]
        history.record("train_loss", float(np.average(losses, weights=sizes)))
        timer = dict(net.callbacks_).get("epoch_timer")
        if timer is not None:
            history.record("dur", time.time() - timer.epoch_start_time_)
        if any(isinstance(cb, _HeldOutValidation) for _, cb in net.callbacks_):
            for name in ("valid_loss", "valid_acc"):
                if name not in last:
                    history.record(name, float("nan"))
                    history.record(f"{name}_best", False)
        for _, callback in net.callbacks_:
            if isinstance(callback, ProgressBar) and hasattr(callback, "pbar_"):
                callback.pbar_.close()
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
    if n_epochs < net.max_epochs or cut_short or interrupted_in_step:
        n_steps = sum(len(epoch["batches"]) for epoch in history)
        warnings.warn(
            f"Training was interrupted (KeyboardInterrupt) after {n_steps} "
            f"complete steps in epoch {max(n_epochs, 1)} of {net.max_epochs}: the "
            "model keeps the weights of its last complete step, only partly "
            "trained. stop_reason_ is 'interrupted'.",
            UserWarning,
            stacklevel=4,
        )
        return "interrupted"
    return "max_epochs"
