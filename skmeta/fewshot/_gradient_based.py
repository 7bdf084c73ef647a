"""Shared machinery of the gradient-based few-shot methods (MAML, Reptile).

Both methods meta-learn an initialisation ``θ`` of a whole learner: a
backbone followed by a linear head with one output per episode class (one
output in all for regression). A
task is solved by a few gradient steps from ``θ`` on its support set. This
module keeps what they share:

- :class:`GradientNetwork`, the torch side: ``learner`` (backbone + head),
  whose parameters are ``θ``, evaluated functionally with
  :func:`torch.func.functional_call` so that adapted weights ``θ'`` are plain
  tensors and ``θ`` never changes;
- :func:`sgd_steps` (differentiable plain SGD, MAML's inner loop and its
  fine-tuning) and :func:`optimizer_steps` (SGD or Adam on minibatches,
  Reptile's, whose Adam state can be carried from task to task);
- :class:`GradientBasedEstimator`, the estimator plumbing of classifiers
  and regressors alike: meta-batches of tasks streamed to skorch, ``adapt``
  by fine-tuning a copy, prediction with the adapted copy;
- :class:`GradientBasedClassifier`, what classification adds: the head's
  ``n_way`` outputs, a zero head for other support sets, and episodic
  evaluation that fine-tunes once per episode (the regressors' base is
  :class:`~skmeta.fewshot._regression.GradientBasedRegressor`).
"""

import math

import numpy as np
import torch
from sklearn.utils.validation import check_consistent_length, check_is_fitted
from torch import nn
from torch.func import functional_call
from torch.utils.data import IterableDataset

from .._arrays import check_labels
from .._precision import autocast
from .._runtime import _at_least_rows
from .._sklearn import StrOptions
from .._validation import _check_finite_output
from ._episodic import EpisodicClassifier

__all__ = [
    "GradientBasedClassifier",
    "GradientBasedEstimator",
    "GradientNetwork",
    "adam_state",
    "batch_statistics_norm",
    "optimizer_steps",
    "sgd_steps",
]


#: torch's batch norms (lazy ones become these at their first forward pass).
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batch_statistics_norm(module):
    """Make every batch norm of ``module`` use the current batch's statistics.

    As in Finn et al. (2017) and Nichol et al. (2018), batch norm normalises
    with the statistics of the batch it is given, in training and at test
    time alike: running statistics are dropped (``track_running_stats=False``),
    so a forward pass never writes to a buffer, ``eval()`` changes nothing and
    adapted weights are plain parameters. Predictions on images then depend on
    the other samples of the batch (the transductive setting of both papers).

    Returns ``module``, changed in place.
    """
    for m in module.modules():
        if isinstance(m, _BATCH_NORMS):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return module


def _has_batch_norm(module):
    return any(isinstance(m, _BATCH_NORMS) for m in module.modules())


class _Learner(nn.Module):
    """The classifier whose weights are meta-learned: backbone, then head."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        return self.head(self.backbone(x))


class GradientNetwork(nn.Module):
    """The torch side of MAML and Reptile: a learner and its functional use.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to features ``(batch, d)``; its batch norms are switched
        to batch statistics (:func:`batch_statistics_norm`).
    embedding_dim : int
        ``d``, the backbone's output size.
    n_way : int
        Outputs of the linear head: the classes of a training episode (1 for
        regression).
    regression : bool, default=False
        The task loss: cross-entropy of the logits against class indices, or
        with ``True`` the mean squared error of the one output against real
        targets (Finn et al., 2017, eq. 2 and 3).
    """

    def __init__(self, backbone, embedding_dim, n_way, *, regression=False):
        super().__init__()
        self.learner = _Learner(
            batch_statistics_norm(backbone), nn.Linear(embedding_dim, n_way)
        )
        self.regression = regression

    @property
    def n_way(self):
        return self.learner.head.out_features

    def embed(self, x):
        """Backbone features ``(batch, d)`` of ``x`` with the weights ``θ``."""
        return self.learner.backbone(x)

    def params(self):
        """The meta-learned weights ``θ``, by name (the tensors themselves)."""
        return dict(self.learner.named_parameters())

    def logits(self, params, x):
        """Outputs ``(batch, n_outputs)`` of ``x`` under the weights ``params``.

        ``params`` maps the names of :meth:`params` to tensors; the head's may
        have another number of outputs than ``n_way``.
        """
        return functional_call(self.learner, params, (x,))

    def outputs(self, params, x):
        """What the task loss compares with the targets, under ``params``.

        The logits ``(batch, n_outputs)``, or for regression the predictions
        ``(batch,)`` (the one output).
        """
        out = self.logits(params, x)
        return out[:, 0] if self.regression else out

    def task_loss(self, params, x, y):
        """``L(params)`` on (x, y): mean cross-entropy, or mean squared error."""
        out = self.outputs(params, x)
        if self.regression:
            return nn.functional.mse_loss(out, y)
        return nn.functional.cross_entropy(out, y)

    def is_support(self, y):
        """Which rows of a training task's targets ``y`` are support rows.

        Query rows are marked -1 (class indices) or NaN (regression targets):
        the module never sees their targets.
        """
        return ~torch.isnan(y) if self.regression else y >= 0

    def forward(self, x, y=None):
        """Outputs of ``x`` under ``θ`` (``y`` is ignored)."""
        return self.learner(x)


def sgd_steps(network, params, x, y, n_steps, lr, *, create_graph=False):
    """``n_steps`` full-batch gradient steps ``θ ← θ − α ∇_θ L(θ)`` on (x, y).

    ``L`` is the network's task loss (:meth:`GradientNetwork.task_loss`):
    cross-entropy, or mean squared error for regression.
    The steps are differentiable: with ``create_graph=True`` the result is a
    function of ``params`` up to second order (MAML); with ``False`` each
    step's gradient is a constant, so the result depends on ``params`` only
    through the identity (first-order MAML, or plain fine-tuning).

    Parameters
    ----------
    network : GradientNetwork
    params : dict of str to torch.Tensor
        Starting weights; at least one must require grad.
    x : torch.Tensor of shape (n, ...)
    y : torch.Tensor of shape (n,)
        Class indices (int64), or real targets (float32) for regression.
    n_steps : int
    lr : float
        The step size ``α``.
    create_graph : bool, default=False

    Returns
    -------
    dict of str to torch.Tensor
        The adapted weights ``θ'``.
    """
    names = [n for n, p in params.items() if p.requires_grad]
    for _ in range(n_steps):
        grads = torch.autograd.grad(
            network.task_loss(params, x, y),
            [params[n] for n in names],
            create_graph=create_graph,
        )
        params = dict(params)
        for name, grad in zip(names, grads, strict=True):
            params[name] = params[name] - lr * grad
    return params


def adam_state(params):
    """A fresh state of the inner Adam for weights shaped like ``params``.

    Returns
    -------
    dict
        ``"step"``: steps taken, a 0-d int64 tensor (0); ``"exp_avg_sq"``:
        Adam's second-moment estimate ``v`` of each weight, by name (zeros).
        :func:`optimizer_steps` updates both in place.
    """
    some = next(iter(params.values()))
    return {
        "step": torch.zeros((), dtype=torch.int64, device=some.device),
        "exp_avg_sq": {n: torch.zeros_like(p.detach()) for n, p in params.items()},
    }


def optimizer_steps(
    network,
    params,
    x,
    y,
    n_steps,
    lr,
    *,
    optimizer="adam",
    batch_size=None,
    generator=None,
    state=None,
    beta2=0.999,
    eps=1e-8,
):
    """Train a copy of ``params`` on (x, y) by SGD or Adam steps.

    Minibatches of ``batch_size`` rows are taken in turn from a random
    permutation of the rows (a new one after each pass), as in Reptile's
    inner loop. ``"sgd"`` is ``θ ← θ − α g``. ``"adam"`` is Adam with
    ``β1 = 0`` (Nichol et al., 2018, Appendix A), which keeps only the
    second moment: at step ``t``, ``v ← β2 v + (1 − β2) g²`` and
    ``θ ← θ − α g / (sqrt(v / (1 − β2^t)) + eps)``, the same steps as
    ``torch.optim.Adam(betas=(0, β2))``.

    Parameters
    ----------
    network, x, y, n_steps, lr
        As for :func:`sgd_steps`.
    params : dict of str to torch.Tensor
        Starting weights (not changed).
    optimizer : {"adam", "sgd"}, default="adam"
    batch_size : int or None, default=None
        Rows per step, at most ``n``; ``None`` for all of them.
    generator : torch.Generator or None, default=None
        Draws the permutations.
    state : dict or None, default=None
        Adam's state to continue from (``t`` and ``v``, see
        :func:`adam_state`), updated in place; ``None`` starts from a fresh
        one, which is then discarded. Ignored by SGD.
    beta2, eps : float, default=0.999, 1e-8
        Adam's constants.

    Returns
    -------
    params : dict of str to torch.Tensor
        The trained copy, detached.
    loss : float
        Task loss of the last minibatch, before its step.
    """
    params = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    if optimizer == "adam" and state is None:
        state = adam_state(params)
    n = len(x)
    batch_size = n if batch_size is None else min(batch_size, n)
    order, start, loss = None, n, math.nan
    for _ in range(n_steps):
        if start + batch_size > n:
            order = torch.randperm(n, generator=generator).to(x.device)
            start = 0
        rows = order[start : start + batch_size]
        start += batch_size
        with torch.enable_grad():
            batch_loss = network.task_loss(params, x[rows], y[rows])
            grads = torch.autograd.grad(batch_loss, list(params.values()))
        with torch.no_grad():
            if optimizer == "sgd":
                for p, g in zip(params.values(), grads, strict=True):
                    p.sub_(lr * g)
            else:
                state["step"] += 1
                correction = 1 - beta2 ** int(state["step"])
                for (name, p), g in zip(params.items(), grads, strict=True):
                    v = state["exp_avg_sq"][name]
                    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    p.addcdiv_(g, (v / correction).sqrt_().add_(eps), value=-lr)
        loss = float(batch_loss.detach())
    return {n: p.detach() for n, p in params.items()}, loss


class _MetaBatchStream(IterableDataset):
    """Consecutive episodes of an episode stream, stacked into meta-batches.

    Each item is ``({"x": (T, rows, ...), "y": (T, rows)}, query_labels)``
    with ``T <= meta_batch_size`` tasks (the last meta-batch of an epoch may
    be smaller) and ``query_labels`` of shape ``(T * n_query_rows,)``.
    """

    def __init__(self, stream, meta_batch_size):
        self.stream, self.meta_batch_size = stream, meta_batch_size

    def __len__(self):
        return math.ceil(len(self.stream) / self.meta_batch_size)

    def _stack(self, items):
        x = torch.stack([item[0]["x"] for item in items])
        y = torch.stack([item[0]["y"] for item in items])
        return {"x": x, "y": y}, torch.cat([item[1] for item in items])

    def __iter__(self):
        items = []
        for item in self.stream:
            items.append(item)
            if len(items) == self.meta_batch_size:
                yield self._stack(items)
                items = []
        if items:
            yield self._stack(items)


def _tasks(network, X, y_query):
    """Split a meta-batch into its tasks: (x_s, y_s, x_q, y_q) for each."""
    x, y = X["x"], X["y"]
    per_task = len(y_query) // len(x)
    for t in range(len(x)):
        support = network.is_support(y[t])
        yield (
            x[t][support],
            y[t][support],
            x[t][~support],
            y_query[t * per_task : (t + 1) * per_task],
        )


class GradientBasedEstimator:
    """What MAML and Reptile share, classifiers and regressors alike.

    A mixin before the task's base (:class:`GradientBasedClassifier`,
    :class:`~skmeta.fewshot._regression.GradientBasedRegressor`): meta-batches
    of tasks streamed to skorch, a copy of ``θ`` fine-tuned on a support set
    (``adapted_params_``), and predictions under the adapted weights. A
    method sets ``_net_class`` and provides ``_build_module(backbone,
    embedding_dim)`` (its network, with ``_head_outputs()`` outputs and the
    task's loss, ``_regression``) and ``_fine_tune(params, x, y)`` (the
    test-time adaptation from ``θ``). The meta-learned weights live in
    ``module_`` and never change after ``fit``.
    """

    _step_noun = "meta-batches"

    _support_attributes = ("adapted_params_",)

    #: Whether the task loss is the mean squared error (else cross-entropy).
    _regression = False

    #: Their backbones' batch norms (see :func:`batch_statistics_norm`).
    backbone_change = {
        "doc": """``None`` picks ``"conv4"`` for images and ``"mlp"`` for
        tabular X; see :func:`skmeta.backbones.build_backbone`. Its batch norms
        always use the current batch's statistics (see Notes)."""
    }

    #: Their precisions: no float16, whose inner loops would need a gradient
    #: scaler of their own.
    precision_change = {
        "type": '{"float32", "bfloat16"}',
        "constraints": [StrOptions({"float32", "bfloat16"})],
        "doc": """Precision of the forward passes, in training (outer and
        inner loops) and at adaptation and prediction: ``"bfloat16"`` runs
        them under :func:`torch.autocast` on the device; the weights and
        every returned array stay float32. No ``"float16"``: its inner-loop
        gradients would underflow without a scaler of their own. bfloat16 is
        fast on recent GPUs and on CPUs with AVX512-BF16 or AMX; on other
        CPUs it can be slower than float32.""",
    }

    @classmethod
    def parameter_changes(cls):
        """What a method on this base changes in the shared parameters.

        Its backbone's and precision's documentation (``backbone_change``,
        ``precision_change``), and no ``lr_step`` (the meta learning rate is
        constant unless the method schedules it) nor ``backbone_lr`` (the
        inner loop adapts every weight, the backbone's too).

        Returns
        -------
        dict of str to dict or None
            Keyword arguments for :func:`skmeta._catalogue.episodic_parameters`
            or :func:`~skmeta.fewshot._regression.regression_parameters`.
        """
        return {
            "backbone": cls.backbone_change,
            "precision": cls.precision_change,
            "lr_step": None,
            "backbone_lr": None,
        }

    def _training_batches(self, stream):
        return _MetaBatchStream(stream, self.meta_batch_size)

    def _schedule(self, steps_per_epoch):
        return []  # no lr_step: a constant meta learning rate unless overridden

    def _initial_params(self, n_outputs):
        """Starting weights for a head of ``n_outputs`` (a copy of ``θ``).

        The meta-learned head when ``n_outputs`` equals its outputs, else a
        zero head with ``n_outputs`` outputs (support sets of another number
        of classes than ``n_way``).
        """
        params = {
            n: p.detach().clone().requires_grad_(True)
            for n, p in self.module_.params().items()
        }
        if n_outputs != self.module_.n_way:
            weight = params["head.weight"]
            params["head.weight"] = weight.new_zeros(
                n_outputs, weight.shape[1]
            ).requires_grad_(True)
            params["head.bias"] = weight.new_zeros(n_outputs).requires_grad_(True)
        return params

    def _adapted(self, x, y, n_outputs):
        """Weights fine-tuned on (x, y) from a copy of ``θ``, detached."""
        params = self._initial_params(n_outputs)
        with torch.enable_grad(), autocast(x.device, self.precision):
            params = self._fine_tune(params, x, y)
        return {n: p.detach() for n, p in params.items()}

    def _fine_tune_on(self, X, targets, n_outputs):
        """Set ``adapted_params_``: ``θ`` fine-tuned on validated (X, targets).

        ``targets`` is an ndarray of class indices (int64) or real values
        (float32); ``fit``'s default support and :meth:`adapt` come here.
        """
        # The parameters of fine-tuning may have been set after fit, unchecked.
        self._validate_params()
        device = next(self.module_.parameters()).device
        x = torch.from_numpy(X).to(device)
        y = torch.from_numpy(targets).to(device)
        self.adapted_params_ = self._adapted(x, y, n_outputs)

    def _fine_tune(self, params, x, y):
        raise NotImplementedError

    def _predict_logits(self, params, X):
        """Logits of validated X under ``params``, in chunks of at most ``batch_size``.

        The chunks are of near-equal sizes, so that no sample is left alone
        in a last chunk: batch norm normalises each chunk with its own
        statistics. For the same reason, chunks are padded to ``_MIN_ROWS``
        rows (see :func:`~skmeta._runtime._at_least_rows`) only where the network
        has no batch norm: repeated rows would weigh in its statistics.

        Raises
        ------
        ValueError
            If a batch norm would get one value per channel (one sample of
            1-D features: X of one sample, or ``batch_size=1``), which makes
            every output the same whatever the input.
        """
        module = self.module_
        device = next(module.parameters()).device
        pad = (lambda c: c) if _has_batch_norm(module) else _at_least_rows
        n_chunks = max(1, math.ceil(len(X) / self.batch_size))
        chunks = torch.from_numpy(X).tensor_split(n_chunks)
        try:
            with torch.inference_mode(), autocast(device, self.precision):
                logits = [
                    module.logits(params, pad(c).to(device))[: len(c)].float()
                    for c in chunks
                ]
        except ValueError as error:
            if "more than 1 value per channel" not in str(error):
                raise
            raise ValueError(
                f"{type(self).__name__} predicts with batch statistics (see "
                "Notes), and one sample alone gives a batch norm of the network "
                "one value per channel: every output would be the same whatever "
                f"the input. Predict at least 2 samples together; got {len(X)} "
                f"with batch_size={self.batch_size}."
            ) from error
        return torch.cat(logits)


class GradientBasedClassifier(GradientBasedEstimator, EpisodicClassifier):
    """Base of MAML's and Reptile's classifiers: episodes, classes, a zero head.

    See :class:`GradientBasedEstimator`; the head has ``n_way_`` outputs,
    and a support set of another number of classes starts from a zero head.
    """

    #: The documentation of ``n_way`` for both: the head's outputs.
    n_way_change = {
        "doc": """Classes per training episode and outputs of the head. ``None``
        means 5, or all classes of ``y`` where it has fewer; a larger explicit
        ``n_way`` than the classes of ``y`` is an error."""
    }

    #: Head width when ``n_way=None``: the 5-way tasks of MAML and Reptile on
    #: Omniglot, or all classes when there are fewer.
    max_auto_way = 5

    @classmethod
    def parameter_changes(cls):
        """The estimator's changes (:meth:`GradientBasedEstimator.parameter_changes`)
        and ``n_way``'s documentation."""
        return {**super().parameter_changes(), "n_way": cls.n_way_change}

    #: ``fit`` fine-tunes on the whole training set (the default support set),
    #: so it reads X whole, a memmap included.
    _fits_from_batches = False

    def _head_outputs(self):
        return self.n_way_

    def _take_support(self, X, y_enc):
        """Fine-tune a copy of ``θ`` on the support set (``fit`` and ``adapt``)."""
        targets = np.asarray(y_enc, dtype=np.int64)
        self._fine_tune_on(X, targets, len(self.classes_))

    def _logits(self, X, reduce=None):
        """Logits (n_samples, n_classes) of X under the adapted weights.

        Or ``reduce`` of them (see the base method); ``n_way`` columns at most.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        logits = self._predict_logits(self.adapted_params_, X)
        logits = _check_finite_output(logits, self, "scores")
        return (logits if reduce is None else reduce(logits)).cpu().numpy()

    def _episode_scorer(self, X):
        """Episode scoring (see the base method), fine-tuning a copy of ``θ``.

        Each episode's support labels are encoded in sorted order, as
        :meth:`adapt` does, so an episode scores exactly as a copy of the
        estimator adapted to its support set; the estimator does not change.
        One fine-tuning per episode.
        """
        check_is_fitted(self)
        self._validate_params()  # n_inner_steps_test may be set after fit
        X = self._validate_X(X, reset=False)
        device = next(self.module_.parameters()).device

        def score(y, episodes, groups=None):
            y = check_labels(y)
            check_consistent_length(X, y)
            losses, accuracies = [], []
            for support, query in episodes.split(y=y, groups=groups):
                classes, y_s = np.unique(y[support], return_inverse=True)
                params = self._adapted(
                    torch.from_numpy(X[support]).to(device),
                    torch.from_numpy(y_s.astype(np.int64)).to(device),
                    len(classes),
                )
                logits = self._predict_logits(params, X[query]).float()
                _check_finite_output(logits, self, "scores")
                y_q = torch.from_numpy(np.searchsorted(classes, y[query])).to(device)
                losses.append(float(nn.functional.cross_entropy(logits, y_q)))
                accuracies.append(float((logits.argmax(1) == y_q).float().mean()))
            return np.asarray(losses), np.asarray(accuracies)

        return score
