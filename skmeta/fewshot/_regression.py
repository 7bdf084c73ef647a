"""The base of the few-shot regressors: tasks given by ``groups``, real targets.

Few-shot regression in the sense of Finn et al. (2017, section 5.1): each
task is a function (a sinusoid, a user's ratings), known at meta-test time
from ``k_shot`` of its samples only. Tasks come in scikit-learn's way, as
``groups``: the samples of one group are one task. This module keeps what
the regressors of MAML and Reptile share beyond
:class:`~skmeta.fewshot._gradient_based.GradientBasedEstimator`: their
parameters, the stream of training tasks, ``fit(X, y, groups)``, ``adapt``
and ``predict``. The classifiers' base does not fit a regressor: its tasks
are N-way episodes drawn by class, its targets labels to encode, its
validation holds out classes and scores accuracy.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch import NeuralNet
from skorch.history import History
from torch import nn
from torch.utils.data import IterableDataset

from .._arrays import check_labels
from .._base import TorchEstimator
from .._catalogue import (
    BACKBONE_PARAMETERS,
    META_TRAINING_PARAMETERS,
    OPTIMIZER_PARAMETERS,
    RUNTIME_PARAMETERS,
)
from .._params import Param, Parameters, changed
from .._runtime import resolve_device, seeded, trains
from .._sklearn import Interval, _fit_context
from .._validation import _check_finite_output
from ..backbones import build_backbone, embedding_size
from ..episodes import check_groups
from ..training import train_module
from ._gradient_based import GradientBasedEstimator

__all__ = ["TASKS", "GradientBasedRegressor", "regression_parameters"]

#: The texts of the shared docstring sections (:mod:`skmeta._docs`) for them.
TASKS = {
    "steps": "meta-batches of ``meta_batch_size`` tasks",
    "support_attributes": "",
    "episode_attributes": """\
    n_query_ : int
        Query samples per training task: ``n_query``, or what ``None``
        resolved to on the data of ``fit``.
    n_tasks_ : int
        Training tasks (groups) with ``k_shot + n_query_`` samples, the ones
        drawn in meta-training.
""",
}

#: The shape of the training tasks of every few-shot regressor.
TASK_PARAMETERS = {
    "k_shot": Param(
        "int",
        5,
        [Interval(Integral, 1, None, closed="left")],
        """``K``: support samples per training task, the inner loop's data (5,
        10 and 20 in Finn et al.'s sinusoid experiments).""",
    ),
    "n_query": Param(
        "int or None",
        None,
        [Interval(Integral, 1, None, closed="left"), None],
        """Query samples per training task, which score the adapted weights.
        ``None`` means ``k_shot`` (as in Finn et al.'s code), or fewer (at
        least 1) where the largest task has fewer than ``2 * k_shot``
        samples. A task with fewer than ``k_shot + n_query`` samples is never
        drawn.""",
    ),
}

#: What the regressors do not take (yet) of the classifiers' shared parameters:
#: the held-out validation scores a classifier's loss and accuracy.
_NOT_FOR_REGRESSION = {
    "early_stopping": None,
    "validation_fraction": None,
    "n_iter_no_change": None,
}


def regression_parameters(own, **changes):
    """The parameters of a few-shot regressor, its ``own`` after the training ones.

    Parameters
    ----------
    own : dict of str to Param
        The method's parameters.
    **changes : dict or None
        As for :func:`skmeta._catalogue.episodic_parameters`: ``None`` drops a
        shared parameter, a dict replaces fields of it; applied after
        :meth:`GradientBasedRegressor.parameter_changes`.

    Returns
    -------
    Parameters
        ``k_shot`` and ``n_query`` by position or keyword, the others
        keyword-only.
    """
    shared = (
        TASK_PARAMETERS
        | META_TRAINING_PARAMETERS
        | OPTIMIZER_PARAMETERS
        | own
        | BACKBONE_PARAMETERS
        | RUNTIME_PARAMETERS
    )
    tasks = {
        "doc": """Training tasks per epoch (a skorch epoch); they form
        ``ceil(episodes_per_epoch / meta_batch_size)`` meta-updates."""
    }
    changes = {
        "episodes_per_epoch": tasks,
        **_NOT_FOR_REGRESSION,
        **GradientBasedRegressor.parameter_changes(),
        **changes,
    }
    return Parameters(changed(shared, changes), positional=2)


class _TaskStream(IterableDataset):
    """One epoch of training tasks, as skorch items.

    Each item is ``({"x": rows, "y": targets}, query_targets)``: ``k_shot +
    n_query`` rows drawn without replacement from one task, the task drawn
    uniformly (each task counts once, whatever its size). The first
    ``k_shot`` rows are the support set; ``targets`` holds their targets and
    NaN for the query rows, whose targets (``query_targets``, of shape
    ``(n_query,)``) the module never sees.
    """

    def __init__(self, X, y, tasks, k_shot, n_query, n_tasks, rng):
        self.X, self.y, self.tasks, self.rng = X, y, tasks, rng
        self.k_shot, self.n_query, self.n_tasks = k_shot, n_query, n_tasks
        self.hidden = torch.full((n_query,), float("nan"), device=y.device)

    def __len__(self):
        return self.n_tasks

    def __iter__(self):
        k, q = self.k_shot, self.n_query
        for _ in range(self.n_tasks):
            rows = self.tasks[self.rng.integers(len(self.tasks))]
            index = torch.from_numpy(self.rng.choice(rows, k + q, replace=False))
            index = index.to(self.X.device)
            x, y = self.X[index], self.y[index]
            yield {"x": x, "y": torch.cat([y[:k], self.hidden])}, y[k:]


def _float_targets(y, name):
    """1-D real targets ``y`` as float32, the network's dtype; checked finite.

    Raises a ValueError naming ``name`` for targets that are not numbers, or
    not finite once float32 (NaN, inf, or beyond float32's range).
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers (the targets of a regression); got "
            f"an array of dtype {y.dtype}."
        )
    with np.errstate(over="ignore"):
        y32 = y.astype(np.float32)
    if not np.isfinite(y32).all():
        raise ValueError(
            f"{name} must be finite within the range of float32, in which the "
            f"network computes; it holds NaN, inf or values up to "
            f"{np.max(np.abs(y)):.3g} in magnitude. Remove them, or rescale "
            f"{name} (sklearn.compose.TransformedTargetRegressor)."
        )
    return y32


class GradientBasedRegressor(GradientBasedEstimator, RegressorMixin, TorchEstimator):
    """Base of MAML's and Reptile's regressors: one real output, tasks by group.

    ``fit(X, y, groups)`` meta-trains on tasks drawn from the groups; the
    training data is then the default support set (all of it, as one task),
    and :meth:`adapt` sets another: a new task's few samples. ``predict``
    gives the adapted network's output, ``score`` its R² (scikit-learn's
    :class:`~sklearn.base.RegressorMixin`).
    """

    _regression = True

    #: Read by :func:`skmeta.training.train_module`: no held-out validation
    #: yet, as its scores (``valid_loss``, ``valid_acc``) are a classifier's.
    early_stopping = False

    #: The learner of Finn et al.'s sinusoid experiment by default.
    backbone_change = {
        "doc": """``None`` picks, for tabular X, the ``"mlp"`` backbone followed
        by a ReLU, with ``hidden_dims=(40,)`` unless ``backbone_params`` sets
        them: with ``embedding_dim=40`` and the linear head, the 1-40-40-1
        ReLU network of Finn et al. (2017) for one feature. For images,
        ``"conv4"``. A name or module is built as
        :func:`skmeta.backbones.build_backbone` builds it, and the head is
        put right after its output. Batch norms always use the current
        batch's statistics."""
    }
    embedding_dim_change = {
        "default": 40,
        "doc": """Output size of a built backbone, the features the linear head
        maps to the prediction (40: the width of Finn et al.'s hidden
        layers).""",
    }

    _net_class = NeuralNet

    @classmethod
    def parameter_changes(cls):
        """The estimator's changes (:meth:`GradientBasedEstimator.parameter_changes`)
        and ``embedding_dim``'s default and documentation."""
        return {
            **super().parameter_changes(),
            "embedding_dim": cls.embedding_dim_change,
        }

    def _head_outputs(self):
        return 1

    def _meta_lr(self):
        return self.lr

    def _new_backbone(self, input_shape):
        """The backbone; ``None`` for tabular X is the MLP of Finn et al. (ReLU)."""
        if self.backbone is not None or len(input_shape) != 1:
            return super()._new_backbone(input_shape)
        params = {"hidden_dims": (40,), **(self.backbone_params or {})}
        mlp = build_backbone("mlp", input_shape, self.embedding_dim, params)
        return nn.Sequential(mlp, nn.ReLU())

    def _build_network(self):
        """The untrained network for samples of ``input_shape_``."""
        backbone = self._new_backbone(self.input_shape_)
        return self._build_module(backbone, embedding_size(backbone, self.input_shape_))

    _fit_doc = {
        "extended": """Each training task draws ``k_shot + n_query`` samples of one
        group (the groups with that many, each equally likely): the method
        adapts to the first ``k_shot`` and is scored on the others. Afterwards
        the training data is the support set (all of it, as one task) until
        :meth:`adapt` gives a new task's samples.""",
        "y_doc": "Real targets, finite (within float32's range).",
        "groups": """
        groups : array-like of shape (n_samples,), default=None
            The task of each sample (scikit-learn's ``groups``), labels of one
            sortable type: a sinusoid, a user, a patient. ``None`` makes the
            whole of (X, y) one task: meta-training then learns a network
            that ``k_shot`` samples of it adapt well, which is plain
            regression on (X, y) with a meta-learning objective.""",
        "raises": """, if y is missing, not numeric, not finite or of another
            length than X, if ``groups`` is not 1-D labels of the length of y,
            if no task (no group, or with ``groups=None`` the whole data) has
            ``k_shot + 1`` samples""",
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Meta-train on the tasks of (X, y), each group of ``groups`` a task.

        {fit}
        """
        return self._atomically("_fit", X, y, groups, fresh=True)

    def _fit(self, X, y, groups):
        y = _float_targets(validate_data(self, y=y, y_numeric=True), "y")
        X = self._validate_X(X, reset=True)
        check_consistent_length(X, y)
        tasks = self._tasks(groups, y)
        self.n_query_ = self._n_query(tasks, groups is not None)
        per_task = self.k_shot + self.n_query_
        tasks = [rows for rows in tasks if len(rows) >= per_task]
        self.n_tasks_ = len(tasks)
        self.device_ = resolve_device(self.device)
        with seeded(self._seed(), self.device_):
            X_t = torch.from_numpy(X).to(self.device_)
            y_t = torch.from_numpy(y).to(self.device_)
            module = self._build_network().to(self.device_)
            history, stop_reason = History(), "max_epochs"
            if trains(module, self.max_epochs):
                stream = _TaskStream(
                    X_t,
                    y_t,
                    tasks,
                    self.k_shot,
                    self.n_query_,
                    self.episodes_per_epoch,
                    np.random.default_rng(self._seed()),
                )
                batches = self._training_batches(stream)
                module, history, stop_reason = train_module(
                    self,
                    module,
                    batches,
                    steps_per_epoch=len(batches),
                    inputs=X_t,
                    net_class=self._net_class,
                    criterion=nn.MSELoss,
                    lr=self._meta_lr(),
                    callbacks=self._schedule(len(batches)),
                )
        self.module_ = module
        self._record_training(history, stop_reason)
        self._take_support(X, y)
        return self

    @staticmethod
    def _tasks(groups, y):
        """The rows of each task: one array per group, or all rows as one."""
        if groups is None:
            return [np.arange(len(y))]
        groups = check_groups(check_labels(groups, "groups"), y)
        codes = LabelEncoder().fit_transform(groups)
        order = np.argsort(codes, kind="stable")
        return np.split(order, np.cumsum(np.bincount(codes))[:-1])

    def _n_query(self, tasks, grouped):
        """``n_query``, or what ``None`` means for tasks of these sizes."""
        largest = max(len(rows) for rows in tasks)
        needed = self.k_shot + (1 if self.n_query is None else self.n_query)
        if largest < needed:
            where = "the largest group has" if grouped else "(X, y) has"
            hint = "" if grouped else " (pass groups to give several tasks)"
            raise ValueError(
                f"A training task needs k_shot + n_query = {needed} samples "
                f"(k_shot={self.k_shot}, n_query={self.n_query}); {where} "
                f"{largest} sample{'s' if largest != 1 else ''}{hint}. Lower "
                "k_shot or n_query."
            )
        if self.n_query is not None:
            return self.n_query
        return max(1, min(self.k_shot, largest - self.k_shot))

    def _take_support(self, X, y):
        """Fine-tune a copy of ``θ`` on the support set (``fit`` and ``adapt``)."""
        self._fine_tune_on(X, y, 1)

    def adapt(self, X_support, y_support):
        """Take a new task's samples as the support set: fine-tune a copy of ``θ``.

        ``predict`` and ``score`` then give the adapted network's outputs for
        that task. The meta-learned weights (``module_``) never change; each
        ``adapt`` starts from them.

        Parameters
        ----------
        X_support : array-like of shape (n_support, ...)
            The task's samples, of the shape seen in ``fit``; any number
            (``k_shot`` in meta-training).
        y_support : array-like of shape (n_support,)
            Their real targets, finite.

        Returns
        -------
        self : object

        Raises
        ------
        ValueError
            If X_support has another sample shape than in ``fit``, or NaN or
            inf, or if y_support is not numeric, not finite or of another
            length.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        check_is_fitted(self)
        return self._atomically("_adapt", X_support, y_support)

    def _adapt(self, X_support, y_support):
        X = self._validate_X(X_support, reset=False)
        y = _float_targets(column_or_1d(y_support, warn=True), "y_support")
        check_consistent_length(X, y)
        self._take_support(X, y)

    def predict(self, X):
        """The adapted network's output for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)

        Returns
        -------
        ndarray of shape (n_samples,), dtype float32
            Predictions under the weights fine-tuned on the current support
            set (``fit``'s data, or :meth:`adapt`'s).
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        out = self._predict_logits(self.adapted_params_, X)[:, 0]
        return _check_finite_output(out, self, "predictions").cpu().numpy()

    def score(self, X, y, sample_weight=None):
        """R² of :meth:`predict` on X against y, the current task's targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
        y : array-like of shape (n_samples,)
            True targets of the task of the current support set.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
            :func:`sklearn.metrics.r2_score`: 1 for a perfect prediction, 0
            for the targets' mean, below 0 for worse.
        """
        return super().score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # fit meta-trains for few-shot adaptation; the R² of its training data
        # after n_inner_steps_test steps is no measure of it (test_regression.py
        # measures adaptation to new tasks instead).
        tags.regressor_tags.poor_score = True
        return tags
