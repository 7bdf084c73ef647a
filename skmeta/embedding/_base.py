"""The generic deep metric learning embedder, and what every embedder shares.

:class:`MetricEmbedder` validates the data, encodes the labels, builds the
backbone and the loss, draws P x K batches and trains the network with
skorch; :class:`MetricNetwork` is the torch side, a backbone and the loss that
trains it. The presets (``triplet.py``, ``contrastive.py``...) only say which
loss they train with and what its parameters are.
"""

import copy
import dataclasses
import inspect
from numbers import Integral

import numpy as np
import torch
from skorch.history import History
from torch import nn
from torch.nn import functional as F
from torch.utils.data import IterableDataset

from .._base import TorchEstimator
from .._catalogue import (
    BACKBONE_PARAMETERS,
    META_TRAINING_PARAMETERS,
    OPTIMIZER_PARAMETERS,
    RUNTIME_PARAMETERS,
)
from .._docs import EMBEDDING
from .._params import (
    Param,
    Parameters,
    changed,
    deprecated_param,
    registry_constraints,
    renamed,
)
from .._runtime import seeded, trains
from .._sklearn import Interval, StrOptions, _fit_context
from ..backbones import embedding_size
from ..batches import ClassBalancedBatchSampler
from ..distances import DISTANCES, Mahalanobis, l2_normalize
from ..episodes import EpisodeSampler
from ..losses import DEPRECATED_REDUCTIONS, LOSSES, REDUCTIONS
from ..training import train_module

__all__ = ["MetricEmbedder", "MetricNetwork"]

#: The P x K training of every embedder.
BATCH_PARAMETERS = {
    "n_classes_per_batch": Param(
        "int or None",
        None,
        [Interval(Integral, 2, None, closed="left"), None],
        """Classes per training batch (P), at least 2. ``None`` means all
        classes that can be drawn, at most :attr:`max_auto_classes` (16).""",
    ),
    "n_samples_per_class": Param(
        "int",
        4,
        [Interval(Integral, 2, None, closed="left")],
        """Samples of each class in a training batch (K); see
        :class:`skmeta.batches.ClassBalancedBatchSampler`.""",
    ),
    "small_classes": Param(
        '{"replace", "raise", "skip"}',
        "replace",
        [StrOptions({"raise", "skip", "replace"})],
        """A class with fewer than ``n_samples_per_class`` samples is drawn
        with each of its samples once and random repeats of them in the other
        slots (``"replace"``, so that small data sets train with the
        defaults), raises a ``ValueError`` (``"raise"``), or is never drawn
        (``"skip"``).""",
    ),
    "batches_per_epoch": Param(
        "int",
        50,
        [Interval(Integral, 1, None, closed="left")],
        "Training batches per epoch (a skorch epoch, for history and callbacks).",
    ),
    "max_epochs": dataclasses.replace(
        META_TRAINING_PARAMETERS["max_epochs"],
        default=20,
        doc="Epochs of training; 0 keeps the initial weights.",
    ),
    "lr": dataclasses.replace(
        META_TRAINING_PARAMETERS["lr"],
        doc="""The optimizer's learning rate, for the loss's own parameters and
        the backbone (unless ``backbone_lr`` is set).""",
    ),
}

#: ``normalization``, which every embedder has; its default depends on the loss.
NORMALIZATION = Param(
    '{"l2"} or None',
    "l2",
    [StrOptions({"l2"}), None],
    """``"l2"`` scales each embedding to unit norm, in training and in
    :meth:`transform`, so that distances and margins have a fixed scale;
    ``None`` keeps the backbone's output.""",
)


def normalization_parameters(default="l2", doc=None):
    """``normalization`` (``default``, ``doc``), then the deprecated ``normalize``.

    ``normalize`` (a bool) was the name of ``normalization`` until 0.1 (see
    :func:`skmeta._params.deprecated_param`).
    """
    changes = {"default": default} | ({"doc": doc} if doc else {})
    return {
        "normalization": dataclasses.replace(NORMALIZATION, **changes),
        "normalize": deprecated_param(
            "normalization",
            "bool",
            ["boolean"],
            """True is ``normalization="l2"``, False ``normalization=None``.""",
        ),
    }


#: ``distance`` of the presets whose loss compares by a distance.
DISTANCE = Param(
    "str or torch.nn.Module",
    "euclidean",
    registry_constraints(DISTANCES, nn.Module),
    """:math:`d`: a name of :data:`skmeta.distances.DISTANCES` or a module
    mapping ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances.
    ``"mahalanobis"`` learns :math:`M = L^T L` with the backbone, and
    :meth:`transform` then returns ``z L^T``.""",
)

#: The reductions a ``reduction`` parameter accepts: the old names too, marked
#: deprecated in scikit-learn's messages (the loss warns when it gets one).
_REDUCTION_OPTIONS = StrOptions(
    set(REDUCTIONS) | set(DEPRECATED_REDUCTIONS), deprecated=set(DEPRECATED_REDUCTIONS)
)

#: ``reduction`` of the presets whose loss is over mined tuples.
REDUCTION = Param(
    '{"mean", "mean-nonzero"}',
    "mean",
    [_REDUCTION_OPTIONS],
    """The mean over all mined tuples, or over those of non-zero loss
    (pytorch-metric-learning's ``AvgNonZeroReducer``); ``"nonzero"``, its
    name until 0.1, warns and is removed in 0.3.""",
)


def embedder_parameters(own, **changes):
    """The parameters of an embedder: its ``own`` (the loss's) first.

    ``changes`` are as for :func:`skmeta._catalogue.episodic_parameters`. The
    first parameter may be given by position, the others by keyword.
    """
    shared = (
        own
        | BATCH_PARAMETERS
        | OPTIMIZER_PARAMETERS
        | BACKBONE_PARAMETERS
        | RUNTIME_PARAMETERS
    )
    return Parameters(changed(shared, changes), positional=1)


#: The Attributes section of every embedder.
SHARED_ATTRIBUTES = """\
    Attributes
    ----------
    module_ : MetricNetwork
        The trained network, on ``device_``: ``module_.backbone`` and the
        loss ``module_.loss`` with its parameters.
    history_ : skorch.History
        skorch's record of training: the loss of every batch
        (``history_[:, "batches", :, "train_loss"]``) and epoch
        (``history_[:, "train_loss"]``).
    classes_ : ndarray of shape (n_classes,)
        The labels of ``y`` in ``fit``; training sees their index.
    {training_attributes}
"""


class MetricNetwork(nn.Module):
    """A backbone and the metric learning loss that trains it.

    The loss is a submodule, so a loss with parameters (the class weights of
    ArcFace and CosFace, a learnable Mahalanobis distance) trains with the
    backbone and is saved and pickled with it.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to embeddings ``(batch, d)``.
    loss : torch.nn.Module
        Called as ``loss(embeddings, labels)``, returns a scalar; see
        :mod:`skmeta.losses`.
    normalize : bool, default=True
        L2-normalise the backbone's output, so embeddings lie on the unit
        sphere.
    """

    def __init__(self, backbone, loss, normalize=True):
        super().__init__()
        self.backbone = backbone
        self.loss = loss
        self.normalize = normalize

    def forward(self, x):
        """Embeddings ``(batch, d)`` that the loss sees in training."""
        z = self.backbone(x)
        return l2_normalize(z, dim=1) if self.normalize else z

    def embed(self, x):
        """Embeddings ``(batch, d')`` in which Euclidean distance is the metric.

        The training embeddings, except with a learnable Mahalanobis distance
        :math:`(a - b)^T L^T L (a - b)`, where they are mapped to ``z L^T``:
        the squared Euclidean distance between the outputs is then the learned
        distance, and any downstream model can use it.
        """
        z = self(x)
        distance = getattr(self.loss, "distance", None)
        return z @ distance.L.T if isinstance(distance, Mahalanobis) else z


class _BatchStream(IterableDataset):
    """One epoch of P x K training batches, as skorch items ``(x, labels)``.

    X and y are tensors already on the training device; each item is a whole
    batch, so the skorch net runs with ``batch_size=None``.
    """

    def __init__(self, X, y, sampler):
        self.X, self.y, self.sampler = X, y, sampler
        self.y_numpy = y.cpu().numpy()

    def __len__(self):
        return self.sampler.n_batches

    def __iter__(self):
        for batch in self.sampler.split(y=self.y_numpy):
            index = torch.from_numpy(batch).to(self.X.device)
            yield self.X[index], self.y[index]


class MetricEmbedder(TorchEstimator):
    r"""Embedding trained with any deep metric learning loss, as a transformer.

    A backbone maps samples to embeddings; training draws P x K batches
    (:class:`skmeta.batches.ClassBalancedBatchSampler`) and minimises a loss
    of :mod:`skmeta.losses` on their embeddings, composed as in
    pytorch-metric-learning from four parts: the ``loss``, the ``miner`` that
    picks its pairs or triplets, the ``distance`` it measures them with, and
    the ``reduction`` of the per-tuple losses to one number.
    :meth:`transform` returns the embeddings, float32 of shape
    ``(n_samples, embedding_dim)``, for any downstream model: a
    ``KNeighborsClassifier``, a clustering, a retrieval index.

    :class:`TripletEmbedder`, :class:`ContrastiveEmbedder`,
    :class:`NPairEmbedder`, :class:`ArcFaceEmbedder` and
    :class:`CosFaceEmbedder` are presets of it, with each paper's defaults and
    the loss's parameters as their own: ``TripletEmbedder(margin=0.1)`` trains
    as ``MetricEmbedder("triplet", loss_params={"margin": 0.1},
    miner="semi-hard")``.

    The loss is built in ``fit`` from its class: ``loss_params`` are its
    constructor's arguments, and ``n_classes`` (the training classes),
    ``embedding_dim`` (the backbone's output size), ``distance``, ``miner``
    and ``reduction`` are passed to the losses whose constructor takes them.
    A loss of your own is a ``torch.nn.Module`` class called as
    ``loss(embeddings, labels)`` that returns a scalar; register it in
    :data:`skmeta.losses.LOSSES` to use it by name.

    {parameters}

    {shared_attributes}

    Raises
    ------
    ValueError
        In ``fit``, if ``miner``, ``distance`` or ``reduction`` is set for a
        loss that does not take it, or if ``loss`` is a module and any of them
        or ``loss_params`` is set.

    See Also
    --------
    TripletEmbedder, ContrastiveEmbedder, NPairEmbedder, ArcFaceEmbedder,
    CosFaceEmbedder : The presets.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie, S.-N. Lim. "A Metric Learning Reality
       Check". ECCV 2020 (pytorch-metric-learning's loss, miner, distance and
       reducer design).

    Examples
    --------
    >>> from skmeta import MetricEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> embedder = MetricEmbedder(
    ...     "contrastive", loss_params={"margin": 0.5}, miner="margin",
    ...     reduction="mean-nonzero", embedding_dim=8, max_epochs=2, random_state=0,
    ... )
    >>> embedder.fit_transform(data.X_base, data.y_base).shape
    (901, 8)
    """

    # Pairs, triplets and proxies compare the samples of a batch: over several
    # processes the loss and its miner see the batch gathered from all of them.
    _gathers_batch = True

    _private_fitted = ("_n_loss_classes",)

    _parameters = embedder_parameters(
        {
            "loss": Param(
                "str, torch.nn.Module class or instance",
                "triplet",
                registry_constraints(LOSSES, nn.Module, type),
                """A name of :data:`skmeta.losses.LOSSES` (``"contrastive"``,
                ``"triplet"``, ``"npair"``, ``"arcface"``, ``"cosface"``), a loss
                class (built in ``fit`` as described above), or a loss module,
                used as it is (a copy, so that ``fit`` never trains yours).""",
            ),
            "loss_params": Param(
                "dict or None",
                None,
                [dict, None],
                """Constructor arguments of the loss class, e.g.
                ``{"margin": 0.1}``; ``None`` keeps its defaults.""",
            ),
            "miner": Param(
                "str, callable or None",
                None,
                [str, callable, None],
                """Which tuples of a batch train: a name the loss knows
                (:data:`skmeta.miners.PAIR_MINERS` for ``"contrastive"``,
                :data:`skmeta.miners.TRIPLET_MINERS` for ``"triplet"``) or a
                callable ``miner(dist, labels)`` returning index tensors.
                ``None`` keeps the loss's default (all tuples).""",
            ),
            "distance": Param(
                "str, torch.nn.Module or None",
                None,
                registry_constraints(DISTANCES, nn.Module, None),
                """A name of :data:`skmeta.distances.DISTANCES` or a distance
                module, for losses over distances; ``None`` keeps the loss's
                default (Euclidean). ``"mahalanobis"`` learns :math:`M = L^T L`
                with the backbone, and :meth:`transform` then returns
                ``z L^T``.""",
            ),
            "reduction": Param(
                '{"mean", "mean-nonzero"} or None',
                None,
                [_REDUCTION_OPTIONS, None],
                """How tuple losses reduce their per-tuple losses: the mean over
                all mined tuples (``"mean"``), or over those of non-zero loss
                (``"mean-nonzero"``, pytorch-metric-learning's
                ``AvgNonZeroReducer``; ``"nonzero"`` until 0.1, which warns).
                ``None`` keeps the loss's default (``"mean"``).""",
            ),
            **normalization_parameters(),
        }
    )

    def __init__(
        self,
        loss="triplet",
        *,
        loss_params=None,
        miner=None,
        distance=None,
        reduction=None,
        normalization="l2",
        normalize="deprecated",
        n_classes_per_batch=None,
        n_samples_per_class=4,
        small_classes="replace",
        batches_per_epoch=50,
        max_epochs=20,
        lr=1e-3,
        optimizer="adam",
        optimizer_params=None,
        backbone_lr=None,
        embedding_dim=64,
        backbone=None,
        backbone_params=None,
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
        self.loss = loss
        self.loss_params = loss_params
        self.miner = miner
        self.distance = distance
        self.reduction = reduction
        self.normalization = normalization
        self.normalize = normalize
        self.n_classes_per_batch = n_classes_per_batch
        self.n_samples_per_class = n_samples_per_class
        self.small_classes = small_classes
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.backbone_lr = backbone_lr
        self.embedding_dim = embedding_dim
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    _doc_values = EMBEDDING
    _doc_sections = {"shared_attributes": SHARED_ATTRIBUTES}

    #: Classes per batch when ``n_classes_per_batch=None``, or all classes when
    #: there are fewer: with the default K = 4, batches of 64 samples.
    max_auto_classes = 16

    #: The parts of a loss that are parameters of the estimator, where it has them.
    _loss_parts = ("miner", "distance", "reduction")

    def _loss_spec(self):
        """``(loss, loss_params)``: a name, class or module, and a class's arguments.

        Presets override this to map their own parameters.
        """
        return self.loss, dict(self.loss_params or {})

    def _build_loss(self, embedding_dim, n_classes):
        """The loss module, for embeddings of ``embedding_dim`` and ``n_classes``."""
        loss, kwargs = self._loss_spec()
        parts = {name: getattr(self, name, None) for name in self._loss_parts}
        given = sorted(name for name, value in parts.items() if value is not None)
        if isinstance(loss, nn.Module):
            if given or kwargs:
                raise ValueError(
                    f"loss is a module ({type(loss).__name__}), used as it is; "
                    f"{', '.join(given + ['loss_params'] * bool(kwargs))} cannot "
                    "change it. Build the module with them, or pass its class."
                )
            return copy.deepcopy(loss)
        cls = LOSSES[loss] if isinstance(loss, str) else loss
        accepted = inspect.signature(cls).parameters
        for name in given:
            if name not in accepted:
                raise ValueError(
                    f"loss={loss if isinstance(loss, str) else cls.__name__!r} "
                    f"takes no {name}; leave {name}=None."
                )
            kwargs[name] = _copy_module(parts[name])
        context = {"n_classes": n_classes, "embedding_dim": embedding_dim}
        for name, value in context.items():
            if name in accepted:
                kwargs.setdefault(name, value)
        return cls(**kwargs)

    _fit_doc = {
        "y": "",
        "raises": """, if fewer than ``n_classes_per_batch`` classes (2 when
            it is None) have ``n_samples_per_class`` samples, with
            ``small_classes="raise"`` if any class has fewer, if the loss does
            not take a ``miner``, ``distance`` or ``reduction`` given""",
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the embedding on P x K batches drawn from (X, y).

        {fit}
        """
        return self._atomically("_fit", X, y, fresh=True)

    def _fit(self, X, y):
        X, _, classes, (X_train, y_train, _), valid = self._prepare_fit(X, y)
        validation = None if valid is None else self._validation(*valid[:2])
        # The loss may hold a weight per training class (ArcFace, CosFace).
        self._n_loss_classes = int(y_train.max()) + 1
        with seeded(self._seed(), self.device_):
            module = self._build_network().to(self.device_)
            if trains(module, self.max_epochs):
                sampler = self._batch_sampler(y_train)
                sampler._class_index(y_train)  # too-small classes
                stream = _BatchStream(
                    torch.from_numpy(X_train).to(self.device_),
                    torch.from_numpy(y_train).to(self.device_),
                    sampler,
                )
                module, history, stop_reason = self._train(module, stream, validation)
            else:  # nothing to train: no batch is drawn
                history, stop_reason = History(), "max_epochs"
        self.module_ = module
        self._record_training(history, stop_reason)
        self.classes_ = classes
        return self

    #: Validation episodes: ``n_way`` held-out classes (or as many as there
    #: are), 1 support sample each, and :meth:`_validation_n_query` queries.
    validation_n_way = 5

    def _validation_n_query(self):
        """Queries per class of the validation episodes: ``n_samples_per_class - 1``."""
        return self.n_samples_per_class - 1

    def _validation(self, X_valid, y_valid):
        """What scores the embedding in training on held-out classes.

        Fixed episodes of up to :attr:`validation_n_way` held-out classes,
        one support sample and :meth:`_validation_n_query` queries per class,
        classified by the nearest prototype in squared Euclidean distance
        between embeddings (the metric ``transform`` serves). Returns a
        callable giving ``(valid_loss, valid_acc)``: the mean query log-loss
        of the softmax over negative distances, and the mean accuracy.
        """
        n_query = self._validation_n_query()
        counts = np.bincount(y_valid)
        eligible = int(np.sum(counts >= 1 + n_query))
        if eligible < 2:
            raise ValueError(
                f"The {np.count_nonzero(counts)} held-out validation classes need "
                f"{1 + n_query} samples each (1 support sample, {n_query} "
                f"queries), and only {eligible} have them; validation episodes "
                "need 2. Raise validation_fraction."
            )
        sampler = EpisodeSampler(
            min(self.validation_n_way, eligible),
            1,
            n_query,
            self.n_validation_episodes,
            random_state=self._seed(),
        )

        def score(module):
            view = copy.copy(self)  # the estimator, embedding with the module
            view.module_ = module
            z = view._embed(X_valid)
            classes = torch.arange(sampler.n_way, device=z.device)
            y_q = classes.repeat_interleave(n_query)
            losses, accuracies = [], []
            for support, query in sampler.split(y=y_valid):
                logits = -torch.cdist(z[query], z[support]).square()
                losses.append(float(F.cross_entropy(logits, y_q)))
                accuracies.append(float((logits.argmax(1) == y_q).float().mean()))
            return float(np.mean(losses)), float(np.mean(accuracies))

        return score

    def _build_network(self):
        """The untrained network for samples of ``input_shape_``."""
        shape = self.input_shape_
        backbone = self._new_backbone(shape)
        loss = self._build_loss(embedding_size(backbone, shape), self._n_loss_classes)
        return MetricNetwork(backbone, loss, self._normalizes())

    def _normalizes(self):
        """Whether embeddings are L2-normalised: ``normalization == "l2"``.

        The deprecated ``normalize``, where set, decides instead (with a
        FutureWarning).
        """
        normalization = renamed(
            self, "normalize", "normalization", lambda v: "l2" if v else None
        )
        return normalization == "l2"

    def _batch_sampler(self, y_enc):
        """The P x K sampler for encoded labels, P chosen if left to None."""
        P = self.n_classes_per_batch
        if P is None:
            counts = np.bincount(y_enc)
            # With "raise", the sampler names the too-small classes.
            drawable = (
                int((counts >= self.n_samples_per_class).sum())
                if self.small_classes == "skip"
                else len(counts)
            )
            if drawable < 2:
                which = (
                    f" with at least n_samples_per_class={self.n_samples_per_class}"
                    f" samples (of {len(counts)})"
                    if self.small_classes == "skip"
                    else ""
                )
                raise ValueError(
                    f"{type(self).__name__} trains on batches of at least 2 "
                    f"classes; y has {drawable} class{'' if drawable == 1 else 'es'}"
                    f"{which}."
                )
            P = min(drawable, self.max_auto_classes)
        return ClassBalancedBatchSampler(
            P,
            self.n_samples_per_class,
            self.batches_per_epoch,
            small_classes=self.small_classes,
            random_state=np.random.RandomState(self._seed()),
        )

    def _train(self, module, stream, validation=None):
        """Train ``module`` on the batch stream with skorch.

        The loss is the net's criterion and a submodule of its module, so
        its parameters are in the optimizer once. Returns the trained module,
        skorch's history and why training stopped.
        """
        return train_module(
            self,
            module,
            stream,
            steps_per_epoch=self.batches_per_epoch,
            inputs=stream.X,
            validation=validation,
            criterion=module.loss,
            lr=self.lr,
        )


def _copy_module(value):
    """A private copy of a module parameter, so that fit never changes it."""
    return copy.deepcopy(value) if isinstance(value, nn.Module) else value
