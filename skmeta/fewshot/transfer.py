"""Transfer baselines: supervised pre-training, then a simple head on the support set.

Chen et al. (2019, Baseline and Baseline++), Wang et al. (2019, SimpleShot) and
Tian et al. (2020, RFS) train the backbone with plain cross-entropy over all the
base classes, in ordinary mini-batches, and classify novel classes from their
support set with a simple rule on the frozen features.
"""

import dataclasses
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from skorch.history import History
from torch import nn
from torch.utils.data import IterableDataset

from .._catalogue import (
    BACKBONE_PARAMETERS,
    IMAGE_PARAMETERS,
    META_TRAINING_PARAMETERS,
    OPTIMIZER_PARAMETERS,
    RUNTIME_PARAMETERS,
)
from .._docs import EPISODIC
from .._params import Param, Parameters, changed, deprecated_param, renamed
from .._runtime import seeded, trains
from .._sklearn import Interval, StrOptions, _fit_context
from ..distances import SquaredEuclidean, l2_normalize
from ..episodes import EpisodeSampler
from ..training import train_module
from ._base import FewShotClassifier
from .prototypical import (
    NORMALIZATION,
    TRANSDUCTIVE_STEPS,
    PrototypeHead,
    PrototypicalNetwork,
)

__all__ = ["CosineClassifier", "TransferClassifier", "TransferNetwork"]


class CosineClassifier(nn.Module):
    """Scaled cosine similarities to a weight vector per class (Baseline++).

    ``logits[i, j] = scale * cos(z_i, W_j)`` (Chen et al., 2019, §3.2).

    Parameters
    ----------
    in_features : int
        Size ``d`` of the features.
    n_classes : int
        Classes, one weight row each.
    scale : float
        Multiplies the cosines, which lie in [-1, 1].
    """

    def __init__(self, in_features, n_classes, scale):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(n_classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, z):
        return self.scale * l2_normalize(z, dim=1) @ l2_normalize(self.weight, dim=1).T


class TransferNetwork(PrototypicalNetwork):
    """The torch side of :class:`TransferClassifier`.

    ``forward(x)`` gives the base-class logits that pre-training minimises
    the cross-entropy of; :meth:`embed`, :meth:`encode_support` and
    :meth:`query_logits` are those of :class:`PrototypicalNetwork` with the
    squared Euclidean distance, which the nearest-centroid head uses.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to features ``(batch, d)``.
    classifier : torch.nn.Module
        Maps features to base-class logits ``(batch, n_base_classes)``.
    """

    def __init__(self, backbone, classifier):
        super().__init__(backbone, SquaredEuclidean())
        self.classifier = classifier

    def forward(self, x):
        """Base-class logits of ``x``, ``(batch, n_base_classes)``."""
        return self.classifier(self.backbone(x))


class _MiniBatches(IterableDataset):
    """One epoch of shuffled mini-batches ``(x, labels)``, augmented if asked."""

    def __init__(self, X, y, batch_size, augment):
        self.X, self.y, self.batch_size, self.augment = X, y, batch_size, augment

    def __len__(self):
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.X), device=self.X.device)
        for index in order.split(self.batch_size):
            x = self.X[index]
            yield (self.augment(x) if self.augment is not None else x), self.y[index]


def _logistic_logits(coef, intercept, z):
    """Logits ``(n, n_classes)`` of a fitted scikit-learn logistic regression."""
    scores = z @ coef.T + intercept
    # Two classes: scikit-learn keeps one row, the score of the second class.
    return (
        torch.cat([torch.zeros_like(scores), scores], 1) if len(coef) == 1 else scores
    )


class TransferClassifier(PrototypeHead, FewShotClassifier):
    """Few-shot classifier by transfer: pre-training on the base classes, a simple head.

    ``fit`` trains the backbone and a classifier over all the base classes,
    the ``base_classifier``, with cross-entropy, in ordinary shuffled
    mini-batches (Adam, learning rate halved every ``lr_step`` steps): a
    linear classifier (``"linear"``, the Baseline of Chen et al., 2019) or
    scaled cosine similarities to a weight per class (``"cosine"``, their
    Baseline++). The base classifier is then set aside: :meth:`adapt` takes
    the support set of novel classes, and queries are classified from the
    frozen features by the ``head``:

    - ``"centroid"``: the nearest class mean of the features, after
      ``normalization`` (by default SimpleShot's CL2N, centred on the mean
      feature of the base classes and L2-normalised; Wang et al., 2019);
      probabilities are the softmax of negative squared distances, as in
      Prototypical Networks, and ``transductive_steps`` refines the means
      with the queries as for :class:`PrototypicalClassifier`;
    - ``"logistic"``: scikit-learn's :class:`~sklearn.linear_model.LogisticRegression`
      fitted on the normalised support features (Tian et al., 2020).

    On miniImageNet these match or beat Prototypical Networks and MAML with
    the same backbone (the three papers). They need no episodes: any class
    with one sample trains.

    {parameters}

    Attributes
    ----------
    prototypes_ : ndarray of shape (n_classes, embedding_dim), dtype float32
        The mean normalised feature of each class in ``classes_``.
    support_counts_ : ndarray of shape (n_classes,), dtype int64
        Support samples of each class.
    head_coef_, head_intercept_ : ndarray, dtype float32
        The fitted logistic regression (``head="logistic"``): of shape
        ``(n_classes, embedding_dim)`` and ``(n_classes,)``, or one row for
        two classes, as scikit-learn keeps them.
    feature_mean_ : ndarray of shape (embedding_dim,), dtype float32
        Mean feature of the base classes (``normalization="centered-l2"``).
    n_base_classes_ : int
        Outputs of the base classifier: the training classes (four times as
        many with ``rotations``, twice with ``flips``).
    module_ : TransferNetwork
        The pre-trained network, on ``device_``.
    history_ : skorch.History
        skorch's record of training: the loss of every mini-batch
        (``history_[:, "batches", :, "train_loss"]``), epoch times.
    {training_attributes}

    See Also
    --------
    PrototypicalClassifier : The nearest-centroid rule, meta-trained on episodes.

    References
    ----------
    .. [1] W.-Y. Chen, Y.-C. Liu, Z. Kira, Y.-C. F. Wang, J.-B. Huang. "A Closer
       Look at Few-shot Classification". ICLR 2019.
    .. [2] Y. Wang, W.-L. Chao, K. Q. Weinberger, L. van der Maaten.
       "SimpleShot: Revisiting Nearest-Neighbor Classification for Few-Shot
       Learning". arXiv:1911.04623, 2019.
    .. [3] Y. Tian, Y. Wang, D. Krishnan, J. B. Tenenbaum, P. Isola.
       "Rethinking Few-Shot Image Classification: a Good Embedding Is All You
       Need?". ECCV 2020.

    Examples
    --------
    >>> from skmeta import TransferClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> clf = TransferClassifier("logistic", max_epochs=2, random_state=0)
    >>> support = clf.fit(data.X_base, data.y_base).adapt(
    ...     data.X_novel[:25], data.y_novel[:25])
    >>> clf.predict_proba(data.X_novel[25:28]).shape
    (3, 5)
    """

    _support_attributes = (
        *PrototypeHead._support_attributes,
        "head_coef_",
        "head_intercept_",
    )

    _parameters = Parameters(
        changed(
            {
                "head": Param(
                    '{"centroid", "logistic"}',
                    "centroid",
                    [StrOptions({"centroid", "logistic"})],
                    """How queries are classified among the support set's
                    classes from its features: the nearest class mean
                    (SimpleShot) or a logistic regression (Tian et al.).""",
                ),
                "base_classifier": Param(
                    '{"linear", "cosine"}',
                    "linear",
                    [StrOptions({"linear", "cosine"})],
                    """The classifier over the base classes in pre-training,
                    set aside afterwards: linear (Baseline) or scaled cosine
                    (Baseline++). ``head`` classifies the novel classes.""",
                ),
                "classifier": deprecated_param(
                    "base_classifier",
                    '{"linear", "cosine"}',
                    [StrOptions({"linear", "cosine"})],
                ),
                "scale": Param(
                    "float",
                    10.0,
                    [Interval(Real, 0, None, closed="neither")],
                    """Multiplies the cosines of ``base_classifier="cosine"``
                    (which lie in [-1, 1]) before the softmax.""",
                ),
                "normalization": dataclasses.replace(
                    NORMALIZATION, default="centered-l2"
                ),
                "transductive_steps": TRANSDUCTIVE_STEPS,
                "head_params": Param(
                    "dict or None",
                    None,
                    [dict, None],
                    """Arguments of the logistic regression of
                    ``head="logistic"``, over ``max_iter=1000``.""",
                ),
                "train_batch_size": Param(
                    "int",
                    128,
                    [Interval(Integral, 1, None, closed="left")],
                    "Samples per mini-batch of pre-training.",
                ),
            }
            | META_TRAINING_PARAMETERS
            | OPTIMIZER_PARAMETERS
            | BACKBONE_PARAMETERS
            | IMAGE_PARAMETERS
            | RUNTIME_PARAMETERS,
            {
                "episodes_per_epoch": None,
                "max_epochs": {
                    "doc": """Passes over the training data; 0 keeps the initial
                    weights."""
                },
                "lr_step": {
                    "doc": """Halve the learning rate every ``lr_step``
                    mini-batches; ``None`` keeps it."""
                },
            },
        ),
        positional=1,
    )

    def __init__(
        self,
        head="centroid",
        *,
        base_classifier="linear",
        classifier="deprecated",
        scale=10.0,
        normalization="centered-l2",
        transductive_steps=0,
        head_params=None,
        train_batch_size=128,
        max_epochs=25,
        lr=1e-3,
        lr_step=1000,
        optimizer="adam",
        optimizer_params=None,
        backbone_lr=None,
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
        self.head = head
        self.base_classifier = base_classifier
        self.classifier = classifier
        self.scale = scale
        self.normalization = normalization
        self.transductive_steps = transductive_steps
        self.head_params = head_params
        self.train_batch_size = train_batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_step = lr_step
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.backbone_lr = backbone_lr
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

    _doc_values = {**EPISODIC, "steps": "mini-batches", "episode_attributes": ""}

    _step_noun = "mini-batches"

    #: Validation on held-out classes: 5-way 1-shot episodes of 5 queries.
    _validation_shape = EpisodeSampler(5, 1, 5, 1)

    _fit_doc = {
        "y": "; a class may have one sample",
        "raises": """, if y has one class and there is something to train
            (``max_epochs > 0``, a backbone with weights), if ``rotations=True``
            or ``flips=True`` is asked for non-image X, if
            ``transductive_steps`` is set with ``head="logistic"``""",
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pre-train on all the base classes of (X, y), which become the support set.

        {fit}
        """
        return self._atomically("_fit", X, y, fresh=True)

    def _fit(self, X, y):
        if self.transductive_steps and self.head != "centroid":
            raise ValueError(
                f"transductive_steps={self.transductive_steps} refines class means: "
                f"it needs head='centroid', not head={self.head!r}."
            )
        X, y_enc, classes, (X_train, y_train, _), valid = self._prepare_fit(X, y)
        validation = None
        if valid is not None:
            validation = self._validation(*valid, self._validation_shape, X_train)
        with seeded(self._seed(), self.device_):
            X_t = torch.from_numpy(X_train).to(self.device_)
            y_t = torch.from_numpy(y_train).to(self.device_)
            X_t, y_t = self._symmetries_as_classes(X_t, y_t, int(y_train.max()) + 1)
            self.n_base_classes_ = int(y_t.max()) + 1
            module = self._build_network().to(self.device_)
            if trains(module, self.max_epochs):
                self._check_base_classes()
                batches = _MiniBatches(
                    X_t, y_t, self.train_batch_size, self._augmentation(X.ndim)
                )
                module, history, stop_reason = train_module(
                    self,
                    module,
                    batches,
                    steps_per_epoch=len(batches),
                    inputs=X_t,
                    validation=validation,
                    criterion=nn.CrossEntropyLoss,
                    lr=self.lr,
                    callbacks=self._schedule(len(batches)),
                )
            else:  # nothing to train: no mini-batch is drawn
                history, stop_reason = History(), "max_epochs"
        return self._finish_fit(
            module, history, stop_reason, classes, X_train, X, y_enc
        )

    def _check_base_classes(self):
        """Raise unless pre-training has at least 2 base classes to tell apart.

        The cross-entropy over one class is 0 whatever the weights: nothing
        would be trained.
        """
        if self.n_base_classes_ < 2:
            raise ValueError(
                f"{type(self).__name__} pre-trains a classifier over the base "
                "classes, which needs at least 2 of them (over one, the "
                "cross-entropy is 0 whatever the weights); y has one class. "
                "Fit on 2 or more classes, or, for "
                "images, add rotations=True or flips=True (each symmetry a new "
                "class)."
            )

    def _build_module(self, backbone, embedding_dim):
        if renamed(self, "classifier", "base_classifier") == "cosine":
            classifier = CosineClassifier(
                embedding_dim, self.n_base_classes_, self.scale
            )
        else:
            classifier = nn.Linear(embedding_dim, self.n_base_classes_)
        return TransferNetwork(backbone, classifier)

    def _set_support(self, z_support, y_support):
        super()._set_support(z_support, y_support)
        if self.head == "logistic":
            coef, intercept = self._fit_logistic(z_support, np.asarray(y_support))
            self.head_coef_, self.head_intercept_ = coef, intercept

    def _fit_logistic(self, z, y):
        """Coefficients and intercepts of the logistic head on features ``z``."""
        params = {"max_iter": 1000, **(self.head_params or {})}
        model = LogisticRegression(**params).fit(z.float().cpu().numpy(), y)
        return model.coef_.astype(np.float32), model.intercept_.astype(np.float32)

    def _support_logits(self, z_query):
        if self.head == "logistic":
            coef = torch.from_numpy(self.head_coef_).to(z_query.device)
            intercept = torch.from_numpy(self.head_intercept_).to(z_query.device)
            return _logistic_logits(coef, intercept, z_query)
        return super()._support_logits(z_query)

    def _episode_logits(self, z_support, y_support, z_query):
        if self.head == "logistic":
            coef, intercept = self._fit_logistic(z_support, y_support.cpu().numpy())
            return _logistic_logits(
                torch.from_numpy(coef).to(z_query.device),
                torch.from_numpy(intercept).to(z_query.device),
                z_query,
            )
        return super()._episode_logits(z_support, y_support, z_query)
