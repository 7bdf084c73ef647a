"""TripletEmbedder: triplet margin loss with online mining (FaceNet)."""

from numbers import Real

from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ..distances import DISTANCES
from ..losses import TripletMarginLoss
from ..miners import TRIPLET_MINERS
from ._base import MetricEmbedder, _copy_module, _fill_doc

__all__ = ["TripletEmbedder"]


@_fill_doc()
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

    Parameters
    ----------
    margin : float, default=0.2
        The margin :math:`m`, >= 0 (> 0 with ``miner="semi-hard"``), in units
        of ``distance``: 0.2 is FaceNet's value for unit-norm embeddings and
        Euclidean distance.
    miner : {"semi-hard", "hard", "all"} or callable, default="semi-hard"
        Which triplets of a batch train: ``"semi-hard"``, those with
        :math:`d(a,p) < d(a,n) < d(a,p) + m` (Schroff et al., 2015);
        ``"hard"``, each anchor's farthest positive and nearest negative
        (batch-hard, Hermans et al., 2017); ``"all"``, every valid triplet.
        A callable ``miner(dist, labels) -> (a, p, n)`` is used as it is
        (see :mod:`skmeta.miners`).
    distance : str or torch.nn.Module, default="euclidean"
        :math:`d`: a name of :data:`skmeta.distances.DISTANCES` or a module
        mapping ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances.
        ``"mahalanobis"`` learns :math:`M = L^T L` with the backbone, and
        :meth:`transform` then returns ``z L^T``.
    normalize : bool, default=True
        L2-normalise embeddings, in training and in :meth:`transform`, so
        distances and the margin have a fixed scale.
    {shared_parameters}

    Attributes
    ----------
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

    _parameter_constraints: dict = {
        **MetricEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
        "miner": [StrOptions(set(TRIPLET_MINERS)), callable],
        "distance": [StrOptions(set(DISTANCES)), nn.Module],
    }

    def __init__(
        self,
        margin=0.2,
        miner="semi-hard",
        distance="euclidean",
        normalize=True,
        embedding_dim=64,
        n_classes_per_batch=None,
        n_samples_per_class=4,
        batches_per_epoch=50,
        max_epochs=20,
        lr=1e-3,
        backbone=None,
        backbone_params=None,
        small_classes="replace",
        batch_size=256,
        device="cpu",
        random_state=None,
        verbose=0,
        callbacks=None,
        early_stopping=False,
        validation_fraction=None,
        n_iter_no_change=10,
    ):
        super().__init__(
            embedding_dim=embedding_dim,
            normalize=normalize,
            n_classes_per_batch=n_classes_per_batch,
            n_samples_per_class=n_samples_per_class,
            batches_per_epoch=batches_per_epoch,
            max_epochs=max_epochs,
            lr=lr,
            backbone=backbone,
            backbone_params=backbone_params,
            small_classes=small_classes,
            batch_size=batch_size,
            device=device,
            random_state=random_state,
            verbose=verbose,
            callbacks=callbacks,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
        )
        self.margin = margin
        self.miner = miner
        self.distance = distance

    def _build_loss(self, embedding_dim, n_classes):
        return TripletMarginLoss(
            self.margin,
            _copy_module(self.distance),
            self.miner,
            embedding_dim=embedding_dim,
        )
