"""ContrastiveEmbedder: the contrastive (Siamese) loss over pairs."""

from numbers import Real

from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ..distances import DISTANCES
from ..losses import ContrastiveLoss
from ._base import MetricEmbedder, _copy_module, _fill_doc

__all__ = ["ContrastiveEmbedder"]


@_fill_doc()
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

    Parameters
    ----------
    margin : float, default=1.0
        The margin :math:`m` for pairs of different classes, >= 0, in units of
        ``distance``. Unit-norm embeddings are at most 2 apart in Euclidean
        distance, and random ones about :math:`\sqrt 2`: 1.0 pushes samples of
        other classes at least 60 degrees apart.
    distance : str or torch.nn.Module, default="euclidean"
        :math:`D`: a name of :data:`skmeta.distances.DISTANCES` or a module
        mapping ``(n, d)``, ``(m, d)`` to ``(n, m)`` distances. The loss
        squares it, so ``"euclidean"`` gives the paper's loss.
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
    >>> embedder = ContrastiveEmbedder(embedding_dim=8, max_epochs=2, random_state=0)
    >>> embedder.fit_transform(data.X_base, data.y_base).shape
    (901, 8)
    """

    _parameter_constraints: dict = {
        **MetricEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(DISTANCES)), nn.Module],
    }

    def __init__(
        self,
        margin=1.0,
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
        self.distance = distance

    def _build_loss(self, embedding_dim, n_classes):
        return ContrastiveLoss(
            self.margin, _copy_module(self.distance), embedding_dim=embedding_dim
        )
