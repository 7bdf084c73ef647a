"""ContrastiveEmbedder: the contrastive (Siamese) loss over pairs."""

import dataclasses
from numbers import Real

from .._params import Param, registry_constraints
from .._sklearn import Interval
from ..miners import PAIR_MINERS
from ._base import (
    DISTANCE,
    REDUCTION,
    MetricEmbedder,
    embedder_parameters,
    normalization_parameters,
)

__all__ = ["ContrastiveEmbedder"]


class ContrastiveEmbedder(MetricEmbedder):
    r"""Embedding trained with the contrastive loss over pairs, as a transformer.

    A backbone maps samples to embeddings (the twin branches of a Siamese
    network share it); for every pair :math:`(i, j)` of a P x K batch, with
    distance :math:`D_{ij}` and :math:`y_{ij} = 1` when the two share their
    class, training minimises the mean of

    .. math::

        \ell_{ij} = y_{ij} D_{ij}^2 + (1 - y_{ij}) \max(0, m - D_{ij})^2

    (Hadsell, Chopra & LeCun, 2006): same-class pairs are pulled together,
    other pairs pushed at least :math:`m` apart. Unlike the triplet loss it
    asks for absolute distances, not relative ones. :meth:`transform`
    returns the embeddings, float32 of shape ``(n_samples, embedding_dim)``.
    See :class:`skmeta.losses.ContrastiveLoss` for the reduction.

    {parameters}

    {shared_attributes}

    See Also
    --------
    TripletEmbedder : Relative distances over triplets.

    References
    ----------
    .. [1] R. Hadsell, S. Chopra, Y. LeCun. "Dimensionality Reduction by
       Learning an Invariant Mapping". CVPR 2006.

    Examples
    --------
    >>> from skmeta import ContrastiveEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> embedder = ContrastiveEmbedder(margin=0.5, miner="margin", max_epochs=2)
    >>> embedder.fit(data.X_base, data.y_base).transform(data.X_novel).shape
    (896, 64)
    """

    _parameters = embedder_parameters(
        {
            "margin": Param(
                "float",
                1.0,
                [Interval(Real, 0, None, closed="left")],
                r"""The margin :math:`m` for pairs of different classes, >= 0, in
                units of ``distance``. Unit-norm embeddings are at most 2 apart
                in Euclidean distance, and random ones about :math:`\sqrt 2`: 1.0
                pushes samples of other classes at least 60 degrees apart.""",
            ),
            "miner": Param(
                '{"all", "margin"} or callable',
                "all",
                registry_constraints(PAIR_MINERS, callable),
                """Which pairs of a batch train: ``"all"``, every pair (the
                paper's); ``"margin"``, the pairs of non-zero loss (positives
                apart, negatives nearer than ``margin``;
                :class:`skmeta.miners.PairMarginMiner`), which with
                ``reduction="mean-nonzero"`` averages over the pairs that still
                teach. A callable ``miner(dist, labels) -> (i, j)`` is used as it
                is.""",
            ),
            "distance": dataclasses.replace(
                DISTANCE,
                doc=""":math:`D`, which the loss squares, so ``"euclidean"`` gives
                the paper's loss: a name of :data:`skmeta.distances.DISTANCES` or
                a module mapping ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances.
                ``"mahalanobis"`` learns :math:`M = L^T L` with the backbone, and
                :meth:`transform` then returns ``z L^T``.""",
            ),
            "reduction": REDUCTION,
            **normalization_parameters(),
        }
    )

    def __init__(
        self,
        margin=1.0,
        *,
        miner="all",
        distance="euclidean",
        reduction="mean",
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
        self.margin = margin
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

    def fit(self, X, y):
        """Train the embedding on P x K batches drawn from (X, y).

        {fit}
        """
        return super().fit(X, y)

    def _loss_spec(self):
        return "contrastive", {"margin": self.margin}
