"""Reptile (Nichol, Achiam & Schulman, 2018)."""

from numbers import Integral, Real

import torch
from skorch import NeuralNet
from skorch.callbacks import LRScheduler
from skorch.dataset import unpack_data
from torch import nn

from .._catalogue import episodic_parameters
from .._docs import META_BATCHES
from .._params import Param, changed
from .._precision import _MixedPrecisionNet, autocast
from .._sklearn import Interval, StrOptions
from ..distributed import world_size
from ._gradient_based import (
    GradientBasedClassifier,
    GradientNetwork,
    _tasks,
    adam_state,
    optimizer_steps,
)
from ._regression import TASKS, GradientBasedRegressor, regression_parameters

__all__ = ["ReptileClassifier", "ReptileNetwork", "ReptileRegressor"]


class _Moments(nn.Module):
    """Tensors by parameter name, held as buffers (device, dtype, pickling)."""

    def __init__(self, tensors):
        super().__init__()
        self.names = list(tensors)
        for name, tensor in tensors.items():
            self.register_buffer(name.replace(".", "__"), tensor)

    def as_dict(self):
        return {name: getattr(self, name.replace(".", "__")) for name in self.names}


class ReptileNetwork(GradientNetwork):
    """The torch side of :class:`ReptileClassifier` and :class:`ReptileRegressor`.

    Besides the weights ``θ`` it holds the inner Adam's running state (buffers
    ``inner_step`` and ``inner_exp_avg_sq``), which meta-training carries from
    task to task unless ``reset_inner_optimizer``.

    Parameters
    ----------
    backbone, embedding_dim, n_way
        As for :class:`~skmeta.fewshot._gradient_based.GradientNetwork`.
    n_inner_steps : int
        Inner optimizer steps per task.
    inner_lr : float
        Inner learning rate.
    inner_optimizer : {"adam", "sgd"}
        Inner optimizer (Adam with ``β1 = 0``, or plain SGD).
    inner_batch_size : int or None
        Rows per inner minibatch; ``None`` for the whole task.
    reset_inner_optimizer : bool, default=False
        Start each task's Adam from a fresh state instead of the running one.
    regression : bool, default=False
        Mean squared error as the task loss, instead of cross-entropy.
    """

    def __init__(
        self,
        backbone,
        embedding_dim,
        n_way,
        n_inner_steps,
        inner_lr,
        inner_optimizer,
        inner_batch_size,
        reset_inner_optimizer=False,
        *,
        regression=False,
    ):
        super().__init__(backbone, embedding_dim, n_way, regression=regression)
        self.n_inner_steps = n_inner_steps
        self.inner_lr = inner_lr
        self.inner_optimizer = inner_optimizer
        self.inner_batch_size = inner_batch_size
        self.reset_inner_optimizer = reset_inner_optimizer
        state = adam_state(self.params())
        self.register_buffer("inner_step", state["step"])
        self.inner_exp_avg_sq = _Moments(state["exp_avg_sq"])

    def inner_state(self, n_classes=None):
        """A copy of the inner Adam's state, to adapt from without changing it.

        A fresh state if ``reset_inner_optimizer``. For a head of
        ``n_classes`` outputs other than ``n_way`` (the zero head of
        adaptation), the head's weights are new, so their second moments
        start at Adam's initial ``v = 0``, with the running step count (the
        bias correction is shared, as in TensorFlow's Adam of the authors'
        code): the head's first steps are then large, about
        ``inner_lr / sqrt(1 - β2)``, and shrink as ``v`` grows.
        """
        v = {n: t.clone() for n, t in self.inner_exp_avg_sq.as_dict().items()}
        if n_classes is not None and n_classes != self.n_way:
            for name in ("head.weight", "head.bias"):
                v[name] = v[name].new_zeros(n_classes, *v[name].shape[1:])
        if self.reset_inner_optimizer:
            return adam_state(v)
        return {"step": self.inner_step.clone(), "exp_avg_sq": v}

    def train_on(self, params, x, y, n_steps=None, generator=None, state=None):
        """``θ̃``: a copy of ``params`` trained on (x, y); and its last loss.

        ``state`` is the inner Adam's state to continue (updated in place);
        ``None`` means the running state of meta-training (a fresh one if
        ``reset_inner_optimizer``).
        """
        if state is None and not self.reset_inner_optimizer:
            state = {
                "step": self.inner_step,
                "exp_avg_sq": self.inner_exp_avg_sq.as_dict(),
            }
        return optimizer_steps(
            self,
            params,
            x,
            y,
            self.n_inner_steps if n_steps is None else n_steps,
            self.inner_lr,
            optimizer=self.inner_optimizer,
            batch_size=self.inner_batch_size,
            generator=generator,
            state=state,
        )


class _ReptileMetaNet(_MixedPrecisionNet, NeuralNet):
    """skorch net whose step is Reptile's meta-update (batched version).

    For a meta-batch of ``T`` tasks it trains a copy ``θ̃_i`` of the weights
    on each task (all its rows: support and query, labels known), sets each
    parameter's gradient to ``θ − (1/T) Σ_i θ̃_i`` and lets the net's
    optimizer, SGD with learning rate ``ε``, take the step: ``θ ← θ +
    ε ((1/T) Σ_i θ̃_i − θ)`` (Nichol et al., 2018, Algorithm 2). skorch's
    history, callbacks (the ``ε`` schedule is an ``LRScheduler``) and
    progress bar work as usual; the recorded loss is the mean over tasks of
    the last inner minibatch's task loss (cross-entropy, or mean squared
    error for regression). The tasks are trained one after
    another, each continuing the inner Adam's running state of the module
    (as in the authors' code), unless ``reset_inner_optimizer``.
    """

    #: The meta-update sets the gradients without a backward pass: over several
    #: processes they are averaged by hand (:mod:`skmeta.distributed`).
    gradients_by_hand = True

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        X, y_query = unpack_data(batch)
        module = self.module_
        theta = module.params()
        mean = {n: torch.zeros_like(p) for n, p in theta.items()}
        losses = []
        for x_s, y_s, x_q, y_q in _tasks(module, X, y_query):
            with autocast(self.device, self.precision):
                adapted, loss = module.train_on(
                    theta, torch.cat([x_s, x_q]), torch.cat([y_s, y_q])
                )
            for n, p in adapted.items():
                mean[n] += p / len(X["x"])
            losses.append(loss)
        for n, p in theta.items():
            p.grad = p.detach() - mean[n]
        return {"loss": torch.tensor(sum(losses) / len(losses)), "y_pred": None}


class _Linear:
    """``lr_lambda`` of LambdaLR: 1 at step 0 down to ``final`` at ``n_steps``."""

    def __init__(self, final, n_steps):
        self.final, self.n_steps = final, n_steps

    def __call__(self, step):
        return 1.0 + (self.final - 1.0) * min(step, self.n_steps) / self.n_steps


#: Reptile's own parameters, with the paper's values for Omniglot (Appendix A).
REPTILE_PARAMETERS = {
    "meta_step_size": Param(
        "float",
        1.0,
        [Interval(Real, 0, None, closed="neither")],
        "``ε`` of the first meta-update.",
    ),
    "meta_step_size_final": Param(
        "float",
        0.0,
        [Interval(Real, 0, None, closed="left")],
        """``ε`` reached, linearly, at the end of training; equal to
        ``meta_step_size`` for a constant ``ε``.""",
    ),
    "inner_optimizer": Param(
        '{"adam", "sgd"}',
        "adam",
        [StrOptions({"adam", "sgd"})],
        """Optimizer of the inner loop and of adaptation; Adam has
        ``β1 = 0``.""",
    ),
    "inner_lr": Param(
        "float",
        1e-3,
        [Interval(Real, 0, None, closed="neither")],
        "Its learning rate.",
    ),
    "n_inner_steps": Param(
        "int",
        5,
        [Interval(Integral, 1, None, closed="left")],
        "Inner steps per training task.",
    ),
    "inner_batch_size": Param(
        "int or None",
        10,
        [Interval(Integral, 1, None, closed="left"), None],
        """Samples per inner minibatch, in training and at adaptation
        (at most the task's or support set's size); ``None`` for full
        batches.""",
    ),
    "n_inner_steps_test": Param(
        "int",
        50,
        [Interval(Integral, 1, None, closed="left")],
        """Steps of :meth:`adapt`, of ``fit``'s default support and of
        each evaluation episode. At least 1, as for
        :class:`~skmeta.MAMLClassifier` (see its Notes).""",
    ),
    "reset_inner_optimizer": Param(
        "bool",
        False,
        ["boolean"],
        """Give each task a fresh Adam state. By default, as in the
        authors' code, meta-training keeps one running Adam state (the
        step count and second moments ``v``) from task to task, and each
        adaptation starts from a copy of it (the meta-trained state does
        not change). With a fresh state, Adam's first step moves every
        weight by ``±inner_lr`` whatever the size of its gradient.
        Ignored by SGD.""",
    ),
    "meta_batch_size": Param(
        "int",
        5,
        [Interval(Integral, 1, None, closed="left")],
        "Tasks averaged per meta-update.",
    ),
}


class _Reptile:
    """Reptile whatever the task: its network, meta-update, ``ε`` and fine-tuning."""

    _learning_rates = ("meta_step_size", "inner_lr")

    _net_class = _ReptileMetaNet

    def _optimizer_arguments(self, module):
        # The meta-update is SGD at the meta step size: Reptile's, not a choice.
        return {"optimizer": torch.optim.SGD}

    def _build_module(self, backbone, embedding_dim):
        return ReptileNetwork(
            backbone,
            embedding_dim,
            self._head_outputs(),
            self.n_inner_steps,
            self.inner_lr,
            self.inner_optimizer,
            self.inner_batch_size,
            self.reset_inner_optimizer,
            regression=self._regression,
        )

    def _meta_lr(self):
        return self.meta_step_size

    def _schedule(self, steps_per_epoch):
        # Over N processes, each optimizer step takes N of the epoch's steps.
        n_steps = max(self.max_epochs * (steps_per_epoch // world_size()), 1)
        final = self.meta_step_size_final / self.meta_step_size
        schedule = LRScheduler(
            torch.optim.lr_scheduler.LambdaLR,
            step_every="batch",
            lr_lambda=_Linear(final, n_steps),
        )
        return [("meta_step_size", schedule)]

    def _fine_tune(self, params, x, y):
        generator = torch.Generator().manual_seed(0)
        state = self.module_.inner_state(len(params["head.bias"]))
        params, _ = self.module_.train_on(
            params,
            x,
            y,
            n_steps=self.n_inner_steps_test,
            generator=generator,
            state=state,
        )
        return params


class ReptileClassifier(_Reptile, GradientBasedClassifier):
    """Few-shot classifier of Reptile, a first-order meta-learner.

    Reptile meta-learns an initialisation ``θ`` of a whole classifier (a
    backbone and a linear head of ``n_way`` outputs) by repeatedly training
    on a task and moving ``θ`` towards the trained weights (Nichol et al.,
    2018, Algorithm 2): for each task ``τ_i`` of a meta-batch,
    ``θ̃_i = U^k_τi(θ)`` is ``n_inner_steps`` steps of ``inner_optimizer``
    from ``θ`` on the task's rows, then ``θ ← θ + ε ((1/n) Σ_i θ̃_i − θ)``
    with ``ε = meta_step_size``, annealed linearly to ``meta_step_size_final``
    over training (as in the paper). No second derivatives are needed.

    A training task is an N-way episode; the inner loop trains on all its
    ``k_shot + n_query`` samples per class (Reptile has no query loss; the
    paper's "training shots", 10 on Omniglot, is ``k_shot + n_query``).
    ``fit`` runs the meta-updates through a skorch net (:class:`_ReptileMetaNet`,
    one skorch batch per meta-batch, history, callbacks and progress bar as
    usual); the training data then serves as the support set.
    :meth:`adapt` trains a *copy* of ``θ`` on the support set for
    ``n_inner_steps_test`` steps (50 in the paper); ``θ`` never changes
    after ``fit``. Minibatches at adaptation are drawn with a fixed seed, so
    adapting twice to one support set gives the same weights.

    Defaults are the paper's Omniglot hyperparameters (Appendix A): Adam
    with ``β1 = 0`` and learning rate 1e-3 in the inner loop, 5 inner steps
    on minibatches of 10, meta-batches of 5 tasks, ``ε`` from 1 to 0, 50
    steps at test time; and, as in the authors' code, one Adam state carried
    from task to task (see ``reset_inner_optimizer``).

    {parameters}

    Attributes
    ----------
    module_ : ReptileNetwork
        The meta-learned network ``θ``, on ``device_``.
    adapted_params_ : dict of str to torch.Tensor
        The weights trained on the current support set; the head has
        ``len(classes_)`` outputs.
    history_ : skorch.History
        skorch's record of meta-training: mean inner loss and ``ε`` (as
        ``lr``) of each meta-update, epoch times.
    {training_attributes}

    See Also
    --------
    MAMLClassifier : Meta-gradient through the inner loop.

    Notes
    -----
    Batch norm, the zero head for support sets of another number of classes
    than ``n_way``, ``transform`` and why ``n_inner_steps_test`` is at least 1
    are as in :class:`~skmeta.MAMLClassifier`.

    References
    ----------
    .. [1] A. Nichol, J. Achiam, J. Schulman. "On First-Order Meta-Learning
       Algorithms". arXiv:1803.02999, 2018.
    .. [2] The authors' code, https://github.com/openai/supervised-reptile
       (``supervised_reptile/reptile.py``: ``Reptile.train_step`` restores
       only the trainable variables between tasks; ``evaluate`` restores all
       of them, the optimizer's included, after each task).

    Examples
    --------
    >>> from skmeta import ReptileClassifier
    >>> clf = ReptileClassifier(max_epochs=1, episodes_per_epoch=10, random_state=0)
    {adapt_example}
    """

    default_k_shot = 5

    _doc_values = META_BATCHES

    _parameters = episodic_parameters(
        REPTILE_PARAMETERS,
        **GradientBasedClassifier.parameter_changes(),
        k_shot={
            "type": "int or None",
            "default": None,
            "constraints": [Interval(Integral, 1, None, closed="left"), None],
            "doc": """With ``n_query``: samples per class of a training task.
            ``None`` means 5, or fewer (at least 1) where the ``n_way``-th
            largest class has fewer than ``5 + n_query`` samples.""",
        },
        n_query={
            "doc": """With ``k_shot``: samples per class of a training task (10
            in all with the defaults, the paper's training shots on Omniglot).
            ``None`` means 5, or fewer (at least 1) where the ``n_way``-th
            largest class has fewer than ``k_shot + 5`` samples; a class with
            fewer than ``k_shot + n_query`` samples is never drawn into a
            task."""
        },
        episodes_per_epoch={
            "doc": """Training tasks per epoch; they form
            ``ceil(episodes_per_epoch / meta_batch_size)`` meta-updates."""
        },
        lr=None,
        optimizer=None,
        optimizer_params=None,
    )

    def __init__(
        self,
        n_way=None,
        k_shot=None,
        n_query=None,
        *,
        episodes_per_epoch=100,
        max_epochs=25,
        meta_step_size=1.0,
        meta_step_size_final=0.0,
        inner_optimizer="adam",
        inner_lr=1e-3,
        n_inner_steps=5,
        inner_batch_size=10,
        n_inner_steps_test=50,
        reset_inner_optimizer=False,
        meta_batch_size=5,
        embedding_dim=64,
        backbone=None,
        backbone_params=None,
        rotations=False,
        flips=False,
        augment="auto",
        batch_size=256,
        device="cpu",
        precision="float32",
        random_state=None,
        verbose=0,
        callbacks=None,
        early_stopping=False,
        validation_fraction=None,
        n_iter_no_change=10,
    ):
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.max_epochs = max_epochs
        self.meta_step_size = meta_step_size
        self.meta_step_size_final = meta_step_size_final
        self.inner_optimizer = inner_optimizer
        self.inner_lr = inner_lr
        self.n_inner_steps = n_inner_steps
        self.inner_batch_size = inner_batch_size
        self.n_inner_steps_test = n_inner_steps_test
        self.reset_inner_optimizer = reset_inner_optimizer
        self.meta_batch_size = meta_batch_size
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.rotations = rotations
        self.flips = flips
        self.augment = augment
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    def fit(self, X, y, groups=None):
        """Meta-train on episodes drawn from the base classes in (X, y).

        {fit}
        """
        return super().fit(X, y, groups)


class ReptileRegressor(_Reptile, GradientBasedRegressor):
    """Few-shot regressor of Reptile, a first-order meta-learner.

    Reptile meta-learns an initialisation ``θ`` of a regression network (a
    backbone and a linear head of one output) by repeatedly training on a
    task and moving ``θ`` towards the trained weights (Nichol et al., 2018,
    Algorithm 2, and their sine-wave regression, section 5.1): for each task
    ``τ_i`` of a meta-batch, ``θ̃_i = U^k_τi(θ)`` is ``n_inner_steps`` steps
    of ``inner_optimizer`` from ``θ`` on the mean squared error of the task's
    samples, then ``θ ← θ + ε ((1/n) Σ_i θ̃_i − θ)`` with ``ε =
    meta_step_size``, annealed linearly to ``meta_step_size_final`` over
    training. No second derivatives are needed.

    Tasks are the groups of ``fit(X, y, groups)``. A training task draws
    ``k_shot + n_query`` samples of one group, and the inner loop trains on
    all of them (Reptile has no query loss). ``fit`` runs the meta-updates
    through a skorch net (one skorch batch per meta-batch, history,
    callbacks and progress bar as usual). :meth:`adapt` trains a *copy* of
    ``θ`` on a new task's samples for ``n_inner_steps_test`` steps;
    ``predict`` then gives its outputs, ``score`` its R². After ``fit``,
    until an ``adapt``, the support set is the whole training data taken as
    one task. Minibatches at adaptation are drawn with a fixed seed, so
    adapting twice to one support set gives the same weights.

    Defaults are those of the authors' sine-wave demonstration [2]_ where
    they apply: plain SGD at 0.02 in the inner loop on minibatches of 10
    (5 steps: one pass over a task of 50 points there), one task per
    meta-update, ``ε`` from 0.1 to 0, and 32 steps at adaptation (the
    paper's Figure 2). The network is :class:`MAMLRegressor`'s, Finn et
    al.'s 1-40-40-1 ReLU network (the demonstration's is 1-64-64-1 tanh).

    {parameters}

    Attributes
    ----------
    module_ : ReptileNetwork
        The meta-learned network ``θ``, on ``device_``; never changed by
        ``adapt`` or ``predict``.
    adapted_params_ : dict of str to torch.Tensor
        The weights trained on the current support set.
    history_ : skorch.History
        skorch's record of meta-training: mean inner loss (mean squared
        error of the last inner minibatch) and ``ε`` (as ``lr``) of each
        meta-update, epoch times.
    {training_attributes}

    See Also
    --------
    MAMLRegressor : Meta-gradient through the inner loop.
    ReptileClassifier : Reptile for N-way K-shot classification.

    Notes
    -----
    Without ``groups``, the whole of (X, y) is one task, ``transform``
    returns the features of ``θ``'s backbone, and batch norms use the
    statistics of the batch they are given, as for :class:`MAMLRegressor`
    (see its Notes). ``n_inner_steps_test`` is at least 1.

    References
    ----------
    .. [1] Nichol et al. (2018), the Reptile paper: see
       :class:`ReptileClassifier`.
    .. [2] J. Schulman. "reptile-sinewaves-demo.py", the code of OpenAI's
       Reptile blog post (2018),
       https://gist.github.com/joschu/f503500cda64f2ce87c8288906b09e2d

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import ReptileRegressor
    >>> rng = np.random.default_rng(0)
    >>> amplitude, phase = rng.uniform(0.1, 5, 50), rng.uniform(0, np.pi, 50)
    >>> X = rng.uniform(-5, 5, (50, 20, 1))
    >>> y = amplitude[:, None] * np.sin(X[..., 0] - phase[:, None])
    >>> groups = np.repeat(np.arange(50), 20)
    >>> reg = ReptileRegressor(max_epochs=1, random_state=0)
    >>> reg = reg.fit(X.reshape(-1, 1), y.ravel(), groups)
    >>> reg = reg.adapt(X[0, :5], y[0, :5])
    >>> reg.predict(X[0, 5:8]).shape
    (3,)
    """

    _doc_values = TASKS

    _parameters = regression_parameters(
        changed(
            REPTILE_PARAMETERS,
            {
                "meta_step_size": {"default": 0.1},
                "inner_optimizer": {"default": "sgd"},
                "inner_lr": {"default": 0.02},
                "n_inner_steps": {
                    "doc": """Inner steps per training task, on minibatches of
                    its ``k_shot + n_query`` samples.""",
                },
                "n_inner_steps_test": {
                    "default": 32,
                    "doc": """Steps of :meth:`adapt` and of ``fit``'s default
                    support (32 in the paper's Figure 2). At least 1.""",
                },
                "meta_batch_size": {"default": 1},
            },
        ),
        lr=None,
        optimizer=None,
        optimizer_params=None,
    )

    def __init__(
        self,
        k_shot=5,
        n_query=None,
        *,
        episodes_per_epoch=100,
        max_epochs=25,
        meta_step_size=0.1,
        meta_step_size_final=0.0,
        inner_optimizer="sgd",
        inner_lr=0.02,
        n_inner_steps=5,
        inner_batch_size=10,
        n_inner_steps_test=32,
        reset_inner_optimizer=False,
        meta_batch_size=1,
        embedding_dim=40,
        backbone=None,
        backbone_params=None,
        batch_size=256,
        device="cpu",
        precision="float32",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.k_shot = k_shot
        self.n_query = n_query
        self.episodes_per_epoch = episodes_per_epoch
        self.max_epochs = max_epochs
        self.meta_step_size = meta_step_size
        self.meta_step_size_final = meta_step_size_final
        self.inner_optimizer = inner_optimizer
        self.inner_lr = inner_lr
        self.n_inner_steps = n_inner_steps
        self.inner_batch_size = inner_batch_size
        self.n_inner_steps_test = n_inner_steps_test
        self.reset_inner_optimizer = reset_inner_optimizer
        self.meta_batch_size = meta_batch_size
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    def fit(self, X, y, groups=None):
        """Meta-train on the tasks of (X, y), each group of ``groups`` a task.

        {fit}
        """
        return super().fit(X, y, groups)
