"""TripletEmbedder: triplet margin loss with online mining (FaceNet)."""

from numbers import Real

from .._params import Param, registry_constraints
from .._sklearn import Interval
from ..miners import TRIPLET_MINERS
from ._base import (
    DISTANCE,
    REDUCTION,
    MetricEmbedder,
    embedder_parameters,
    normalization_parameters,
)

__all__ = ["TripletEmbedder"]


class TripletEmbedder(MetricEmbedder):
    r"""Embedding trained with the triplet margin loss, as a transformer.

    A backbone maps samples to embeddings; for triplets (anchor :math:`a`,
    positive :math:`p` of its class, negative :math:`n` of another class)
    mined in each P x K batch, training minimises

    .. math::

        \ell_{apn} = \max\bigl(0,\; d(a, p) - d(a, n) + m\bigr)

    (Schroff et al., 2015), so each sample ends nearer to its class than to
    any other class by the margin :math:`m`. :meth:`transform` returns the
    embeddings, float32 of shape ``(n_samples, embedding_dim)``, for any
    downstream model: a ``KNeighborsClassifier``, a clustering, a retrieval
    index. See :class:`skmeta.losses.TripletMarginLoss` for the reduction.

    {parameters}

    {shared_attributes}

    See Also
    --------
    ContrastiveEmbedder : Pairs instead of triplets.
    sklearn.neighbors.NeighborhoodComponentsAnalysis : A linear learned metric.

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin. "FaceNet: A Unified
       Embedding for Face Recognition and Clustering". CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe. "In Defense of the Triplet Loss for
       Person Re-Identification". arXiv:1703.07737, 2017.

    Examples
    --------
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from skmeta import TripletEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> model = make_pipeline(
    ...     TripletEmbedder(embedding_dim=16, max_epochs=2, random_state=0),
    ...     KNeighborsClassifier(),
    ... ).fit(data.X_base, data.y_base)
    >>> model.predict(data.X_base[:3]).shape
    (3,)
    """

    _parameters = embedder_parameters(
        {
            "margin": Param(
                "float",
                0.2,
                [Interval(Real, 0, None, closed="left")],
                """The margin :math:`m`, >= 0 (> 0 with ``miner="semi-hard"``), in
                units of ``distance``: 0.2 is FaceNet's value for unit-norm
                embeddings and Euclidean distance.""",
            ),
            "miner": Param(
                '{"semi-hard", "hard", "all"} or callable',
                "semi-hard",
                registry_constraints(TRIPLET_MINERS, callable),
                """Which triplets of a batch train: ``"semi-hard"``, those with
                :math:`d(a,p) < d(a,n) < d(a,p) + m` (Schroff et al., 2015);
                ``"hard"``, each anchor's farthest positive and nearest negative
                (batch-hard, Hermans et al., 2017); ``"all"``, every valid
                triplet. A callable ``miner(dist, labels) -> (a, p, n)`` is used
                as it is (see :mod:`skmeta.miners`).""",
            ),
            "distance": DISTANCE,
            "reduction": REDUCTION,
            **normalization_parameters(),
        }
    )

    def __init__(
        self,
        margin=0.2,
        *,
        miner="semi-hard",
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
        return "triplet", {"margin": self.margin}
