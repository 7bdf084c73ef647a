"""SelfSupervisedEmbedder: contrastive learning of an embedding without labels (SimCLR).

Each training batch is ``train_batch_size`` samples drawn from X, each seen
through two random views; the NT-Xent loss (:class:`skmeta.losses.NTXentLoss`)
asks the views of one sample to be nearer each other than the views of all the
others. No label is read: the sample is the label.
"""

from numbers import Integral, Real

import numpy as np
import torch
from skorch.history import History
from torch import nn
from torch.utils.data import IterableDataset

from .._docs import EMBEDDING
from .._params import Param
from .._runtime import resolve_device, seeded, trains
from .._sklearn import Interval, StrOptions, _fit_context
from ..augmentation import NaturalImageAugmentation, RandomAffine
from ..backbones import embedding_size
from ..distances import l2_normalize
from ..text import is_text
from ._base import (
    MetricEmbedder,
    MetricNetwork,
    embedder_parameters,
    normalization_parameters,
)

__all__ = ["FeatureNoise", "SelfSupervisedEmbedder", "SelfSupervisedNetwork"]


class FeatureNoise(nn.Module):
    r"""A random view of vectors: Gaussian noise and feature dropout.

    Each feature :math:`j` of each sample gets noise
    :math:`\epsilon \sim \mathcal N(0, (\sigma s_j)^2)`, with :math:`s_j` the
    feature's standard deviation over the training data, so that the noise
    has the same relative size on features of any unit; then, with
    probability ``dropout``, the feature is replaced by its mean
    :math:`m_j` over the training data (0 for standardised features), so
    that dropping a feature does not depend on where its origin lies.
    Draws come from torch's global generator.

    Parameters
    ----------
    mean, std : torch.Tensor of shape (n_features,) or (c, h, w)
        :math:`m` and :math:`s`, the features' means and standard deviations
        over the training data.
    noise_scale : float, default=0.1
        :math:`\sigma`, >= 0.
    dropout : float, default=0.2
        The probability that a feature is replaced by its mean, in [0, 1).

    Raises
    ------
    ValueError
        If ``mean`` and ``std`` differ in shape, or ``noise_scale`` or
        ``dropout`` is out of its range.

    Notes
    -----
    Input and output: float tensor of shape ``(batch, *mean.shape)``.
    """

    def __init__(self, mean, std, noise_scale=0.1, dropout=0.2):
        super().__init__()
        if mean.shape != std.shape:
            raise ValueError(
                f"mean and std must have one shape; got {tuple(mean.shape)} and "
                f"{tuple(std.shape)}."
            )
        if not noise_scale >= 0:
            raise ValueError(f"noise_scale must be >= 0; got {noise_scale!r}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.noise_scale = noise_scale
        self.dropout = dropout

    def forward(self, x):
        noisy = x + torch.randn_like(x) * (self.noise_scale * self.std)
        dropped = torch.rand_like(x) < self.dropout
        return torch.where(dropped, self.mean.to(x.dtype), noisy)

    def extra_repr(self):
        return f"noise_scale={self.noise_scale}, dropout={self.dropout}"


class SelfSupervisedNetwork(MetricNetwork):
    """A backbone, SimCLR's projection head and the contrastive loss.

    The loss sees the head's projections :math:`g(h)` of the backbone's
    output :math:`h`; :meth:`embed` returns :math:`h`, before the head, as
    SimCLR does (Chen et al., 2020, §2.1: the representation before the
    head is the better one for downstream tasks).

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps inputs to embeddings ``(batch, d)``.
    head : torch.nn.Module
        Maps embeddings to projections; ``torch.nn.Identity()`` for none.
    loss : torch.nn.Module
        Called as ``loss(projections, samples)``, returns a scalar.
    normalize : bool, default=True
        L2-normalise the embeddings of :meth:`embed`.
    """

    def __init__(self, backbone, head, loss, normalize=True):
        super().__init__(backbone, loss, normalize)
        self.head = head

    def forward(self, x):
        """Projections ``(batch, projection_dim)`` that the loss sees in training."""
        return self.head(self.backbone(x))

    def embed(self, x):
        """Embeddings ``(batch, d)``: the backbone's output, before the head."""
        h = self.backbone(x)
        return l2_normalize(h, dim=1) if self.normalize else h


class _ViewPairs(IterableDataset):
    """One epoch of batches of two views of each of N samples, as skorch items.

    Each item is ``(views, samples)``: the first views of the N samples, then
    their second views, ``(2N, ...)``, and a number of each view's sample,
    ``(2N,)``, the labels of the loss: ``s * N + i`` for sample ``i`` of step
    ``s``, so that the steps of several processes, gathered into one batch
    (:mod:`skmeta.distributed`), never share a label. The N samples are drawn
    without replacement (all of X when it has fewer).
    """

    def __init__(self, X, batch_size, n_batches, augment, seed):
        self.X, self.batch_size, self.n_batches = X, batch_size, n_batches
        self.augment = augment
        self.rng = np.random.RandomState(seed)

    def __len__(self):
        return self.n_batches

    def __iter__(self):
        n = len(self.X)
        size = min(self.batch_size, n)
        samples = torch.arange(size, device=self.X.device).repeat(2)
        for step in range(self.n_batches):
            index = torch.from_numpy(self.rng.choice(n, size, replace=False))
            x = self.X[index.to(self.X.device)]
            yield torch.cat([self.augment(x), self.augment(x)]), samples + step * size


#: What ``fit`` does with ``y``, in the parameters that use it.
_NEEDS_Y = (
    "Validation scores the embedding on classes, so it needs ``y`` in ``fit``, "
    "which it uses for nothing else."
)


class SelfSupervisedEmbedder(MetricEmbedder):
    r"""Embedding learnt from unlabelled samples by contrastive views (SimCLR).

    ``fit(X)`` draws batches of :math:`N` = ``train_batch_size`` samples and
    two random views of each (see ``augment``); the backbone :math:`f` and a
    projection head :math:`g` (an MLP, ``Linear -> ReLU -> Linear``) map each
    view to :math:`z = g(f(x))`, and training minimises the NT-Xent loss
    (:class:`skmeta.losses.NTXentLoss`, Chen et al., 2020, eq. 1): for each
    view :math:`i` whose other view is :math:`j`,

    .. math::

        \ell_{ij} = -\log \frac{\exp(s_{ij} / \tau)}
            {\sum_{k \ne i} \exp(s_{ik} / \tau)}

    over the :math:`2N` views, :math:`s` the cosine similarity: the positive
    is the other view of the same sample, the negatives the other
    :math:`2N - 2` views. No label is read. :meth:`transform` returns
    :math:`f(x)`, the backbone's output before the head, as the paper does,
    float32 of shape ``(n_samples, embedding_dim)``: for a few-shot
    classifier on top (``PrototypicalClassifier(backbone="identity")``), a
    ``KNeighborsClassifier``, a clustering.

    ``y`` is ignored (scikit-learn's convention for unsupervised
    estimators): ``fit(X)``, ``fit(X, None)`` and ``fit(X, y)`` train the
    same model. Only validation reads labels: with ``validation_fraction``
    (or ``early_stopping``), ``y`` must be given, whole classes are held out
    of training, and nearest-prototype episodes of them score the embedding
    after each epoch.

    {parameters}

    Attributes
    ----------
    module_ : SelfSupervisedNetwork
        The trained network, on ``device_``: ``module_.backbone``, the
        projection head ``module_.head`` and the loss ``module_.loss``.
    history_ : skorch.History
        skorch's record of training: the loss of every batch
        (``history_[:, "batches", :, "train_loss"]``) and epoch
        (``history_[:, "train_loss"]``).
    {training_attributes}

    See Also
    --------
    skmeta.losses.NTXentLoss : The loss, which also trains
        ``MetricEmbedder("ntxent")`` on labelled P x K batches.
    TripletEmbedder, ContrastiveEmbedder : Embeddings learnt from labels.

    References
    ----------
    .. [1] T. Chen, S. Kornblith, M. Norouzi, G. Hinton. "A Simple Framework
       for Contrastive Learning of Visual Representations". ICML 2020.

    Examples
    --------
    >>> from skmeta import SelfSupervisedEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> embedder = SelfSupervisedEmbedder(embedding_dim=8, max_epochs=2, random_state=0)
    >>> embedder.fit_transform(data.X_base).shape
    (901, 8)
    """

    _parameters = embedder_parameters(
        {
            "temperature": Param(
                "float",
                0.1,
                [Interval(Real, 0, None, closed="neither")],
                r"""The temperature :math:`\tau` of the NT-Xent loss, > 0; lower
                values weigh the hardest negatives more. 0.1 is SimCLR's best
                (Chen et al., 2020, Table 5; 0.5 on CIFAR-10); see
                :class:`skmeta.losses.NTXentLoss`.""",
            ),
            "train_batch_size": Param(
                "int",
                128,
                [Interval(Integral, 1, None, closed="left")],
                """:math:`N`, the samples of a training batch, each seen twice:
                :math:`2N` views, :math:`2N - 2` negatives for each. All of X
                when it has fewer samples.""",
            ),
            "augment": Param(
                '{"auto", "affine", "natural", "noise"} or callable',
                "auto",
                [StrOptions({"auto", "affine", "natural", "noise"}), callable],
                """How a view is drawn. ``"affine"``:
                :class:`skmeta.augmentation.RandomAffine` (small rotations,
                shears, scalings and shifts; characters, whatever the polarity
                of their strokes); ``"natural"``:
                :class:`skmeta.augmentation.NaturalImageAugmentation` (random
                resized crop, flip, colour jitter: photographs, the ``images``
                extra); ``"noise"``:
                :class:`~skmeta.embedding.self_supervised.FeatureNoise`,
                Gaussian noise and feature dropout (``noise_scale``,
                ``feature_dropout``);
                ``"auto"``: ``"affine"`` for images and ``"noise"`` for
                vectors. A callable maps a batch tensor to a batch tensor of
                the same shape, drawing anew at each call (from torch's
                global generator, to follow ``random_state``).""",
            ),
            "noise_scale": Param(
                "float",
                0.1,
                [Interval(Real, 0, None, closed="left")],
                """``augment="noise"``: the standard deviation of the Gaussian
                noise added to each feature, as a fraction of the feature's
                standard deviation over X.""",
            ),
            "feature_dropout": Param(
                "float",
                0.2,
                [Interval(Real, 0, 1, closed="left")],
                """``augment="noise"``: the probability that a feature of a
                view is replaced by its mean over X, in [0, 1).""",
            ),
            "projection_dim": Param(
                "int or None",
                128,
                [Interval(Integral, 1, None, closed="left"), None],
                """Output size of the projection head, an MLP ``Linear(d, d)
                -> ReLU -> Linear(d, projection_dim)`` on the backbone's
                ``d`` features (SimCLR's, with 128); the loss compares its
                outputs and :meth:`transform` returns the backbone's. ``None``:
                no head, the loss compares the backbone's outputs.""",
            ),
            **normalization_parameters(
                doc="""``"l2"`` scales the embeddings of :meth:`transform` to
                unit norm; ``None`` returns the backbone's output. The loss
                compares cosines, whatever this is.""",
            ),
        },
        n_classes_per_batch=None,
        n_samples_per_class=None,
        small_classes=None,
        validation_fraction={
            "doc": """Fraction of the classes of ``y`` (at least 2 classes)
            held out of training, whole. After each epoch
            {validation_what} of these classes (1 support sample and 3
            queries per class) record ``valid_loss`` (query log-loss) and
            ``valid_acc`` in ``history_``, so skorch's ``EarlyStopping`` and
            ``Checkpoint`` work with their defaults. """
            + _NEEDS_Y
            + " ``None`` holds out nothing (unless ``early_stopping``)."
        },
        early_stopping={
            "doc": """Stop training once ``valid_loss`` has not improved for
            ``n_iter_no_change`` epochs, and keep the weights of its best epoch
            (the untrained weights count as a candidate). Holds out
            ``validation_fraction`` of the classes (0.1 if None). """
            + _NEEDS_Y
        },
    )

    def __init__(
        self,
        temperature=0.1,
        *,
        train_batch_size=128,
        augment="auto",
        noise_scale=0.1,
        feature_dropout=0.2,
        projection_dim=128,
        normalization="l2",
        normalize="deprecated",
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
        self.temperature = temperature
        self.train_batch_size = train_batch_size
        self.augment = augment
        self.noise_scale = noise_scale
        self.feature_dropout = feature_dropout
        self.projection_dim = projection_dim
        self.normalization = normalization
        self.normalize = normalize
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

    _doc_values = {
        **EMBEDDING,
        "steps": "batches of two views of ``train_batch_size`` samples",
    }
    _doc_sections = {}

    _private_fitted = ()

    def _validation_n_query(self):
        return 3

    _fit_doc = {
        "y_type": "None or array-like of shape (n_samples,), default=None",
        "y_doc": """Ignored by training; class labels of any type, needed only for
            validation on held-out classes (``validation_fraction`` or
            ``early_stopping``).""",
        "raises": """, if ``augment`` names an image augmentation for 2-D X,
            if validation is asked for without ``y``""",
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the embedding on two random views of the samples of X.

        {fit}
        """
        return self._atomically("_fit", X, y, fresh=True)

    def _fit(self, X, y):
        if is_text(X) and isinstance(self.augment, str):
            raise ValueError(
                f"augment={self.augment!r} draws views by perturbing the samples "
                "(noise, affine warps), which for texts would perturb token ids; "
                "SelfSupervisedEmbedder has no text augmentation. Pass augment=a "
                "callable on batches of token ids, or train on labelled texts "
                "(ContrastiveEmbedder, SetFit's first stage)."
            )
        if self.validation_fraction is None and not self.early_stopping:
            X_train, validation = self._validate_X(X, reset=True), None
            self.device_ = resolve_device(self.device)
        elif y is None:
            raise ValueError(
                "validation_fraction and early_stopping score the embedding on "
                "held-out classes, which needs y (class labels) in fit; got "
                "fit(X, y=None). Pass y, or leave validation_fraction=None and "
                "early_stopping=False."
            )
        else:
            _, _, _, (X_train, _, _), valid = self._prepare_fit(X, y)
            validation = self._validation(*valid[:2])
        augment = self._views(X_train)
        with seeded(self._seed(), self.device_):
            module = self._build_network().to(self.device_)
            if trains(module, self.max_epochs):
                stream = _ViewPairs(
                    torch.from_numpy(X_train).to(self.device_),
                    self.train_batch_size,
                    self.batches_per_epoch,
                    augment,
                    self._seed(),
                )
                module, history, stop_reason = self._train(module, stream, validation)
            else:  # nothing to train: no batch is drawn
                history, stop_reason = History(), "max_epochs"
        self.module_ = module
        self._record_training(history, stop_reason)
        return self

    def _views(self, X):
        """The augmentation that draws a view of a batch of ``X``'s samples."""
        images = X.ndim == 4
        name = self.augment
        if name == "auto":
            name = "affine" if images else "noise"
        if not isinstance(name, str):
            return name
        if name == "noise":
            mean, std = (
                torch.from_numpy(v).to(self.device_) for v in (X.mean(0), X.std(0))
            )
            return FeatureNoise(mean, std, self.noise_scale, self.feature_dropout)
        if not images:
            raise ValueError(
                f"augment={name!r} needs images X of shape (n_samples, channels, "
                f"height, width); got X of shape {X.shape}. Use augment='noise' "
                "(or 'auto') for vectors."
            )
        return RandomAffine() if name == "affine" else NaturalImageAugmentation()

    def _build_network(self):
        """The untrained network for samples of ``input_shape_``."""
        shape = self.input_shape_
        backbone = self._new_backbone(shape)
        d = embedding_size(backbone, shape)
        head = nn.Identity()
        if self.projection_dim is not None:
            head = nn.Sequential(
                nn.Linear(d, d), nn.ReLU(), nn.Linear(d, self.projection_dim)
            )
        loss = self._build_loss(d, None)
        return SelfSupervisedNetwork(backbone, head, loss, self._normalizes())

    def _loss_spec(self):
        return "ntxent", {"temperature": self.temperature}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # y is ignored
        return tags
