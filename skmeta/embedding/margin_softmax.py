"""ArcFaceEmbedder and CosFaceEmbedder: softmax losses with an angular margin.

Both train a weight vector per class (a proxy) with the backbone and compare
embeddings with it by cosine; they differ only in where the margin goes.
"""

import math
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from ..losses import ArcFaceLoss, CosFaceLoss
from ._base import MetricEmbedder, _fill_doc

__all__ = ["ArcFaceEmbedder", "CosFaceEmbedder"]

#: The parameters of the class-weight head, in both docstrings.
_HEAD_DOC = """\
    scale : float, default=64.0
        The scale :math:`s` of the cosines, > 0: the logits lie in
        :math:`[-s, s]`. 64 is the papers' value for thousands of classes;
        with few classes a smaller scale (10 to 30) trains as well.
    normalize : bool, default=True
        L2-normalise the embeddings :meth:`transform` returns (the loss
        normalises them in any case), so Euclidean distance ranks like cosine.
"""


class _MarginSoftmaxEmbedder(MetricEmbedder):
    """Shared by ArcFace and CosFace: a classifier head of class weights.

    The head is the loss's ``W`` (``module_.loss.W``, one row per class of
    ``classes_``); it trains with the backbone and pickles with it. A batch
    needs no positive pairs, so ``n_samples_per_class`` may be 1.
    """

    _parameter_constraints: dict = {
        **MetricEmbedder._parameter_constraints,
        "n_samples_per_class": [Interval(Integral, 1, None, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }

    #: The loss class, called as ``loss(n_classes, embedding_dim, scale, margin)``.
    _loss = None

    def _build_loss(self, embedding_dim, n_classes):
        return self._loss(n_classes, embedding_dim, self.scale, self.margin)


@_fill_doc(head_parameters=_HEAD_DOC)
class ArcFaceEmbedder(_MarginSoftmaxEmbedder):
    r"""Embedding trained with ArcFace's additive angular margin, as a transformer.

    Each class :math:`j` has a trained weight vector :math:`W_j`; with
    :math:`\theta_j` the angle between a sample's embedding and
    :math:`W_j` and :math:`y` its class, training minimises the softmax
    cross-entropy of the logits

    .. math::

        z_y = s \cos(\theta_y + m), \qquad z_j = s \cos\theta_j \;(j \ne y)

    (Deng et al., 2019): a sample must be nearer its class's weight than any
    other by the angle :math:`m`. Classes are compact and separated by angle,
    so compare the embeddings by cosine, or by Euclidean distance once
    normalised. :meth:`transform` returns the embeddings, float32 of shape
    ``(n_samples, embedding_dim)``; the weights are ``module_.loss.W``. See
    :class:`skmeta.losses.ArcFaceLoss` for the behaviour past
    :math:`\theta + m > \pi`.

    Parameters
    ----------
    margin : float, default=0.5
        The angular margin :math:`m` in radians, in [0, pi): 0.5 (about 29
        degrees) is the paper's value.
    {head_parameters}
    {shared_parameters}

    Attributes
    ----------
    {shared_attributes}

    See Also
    --------
    CosFaceEmbedder : The margin on the cosine instead of the angle.

    References
    ----------
    .. [1] J. Deng, J. Guo, N. Xue, S. Zafeiriou. "ArcFace: Additive Angular
       Margin Loss for Deep Face Recognition". CVPR 2019.

    Examples
    --------
    >>> from skmeta import ArcFaceEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> embedder = ArcFaceEmbedder(embedding_dim=8, scale=16, max_epochs=2,
    ...                            random_state=0).fit(data.X_base, data.y_base)
    >>> embedder.module_.loss.W.shape
    torch.Size([5, 8])
    """

    _parameter_constraints: dict = {
        **_MarginSoftmaxEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, math.pi, closed="left")],
    }

    _loss = ArcFaceLoss

    def __init__(
        self,
        margin=0.5,
        scale=64.0,
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
        self.scale = scale


@_fill_doc(head_parameters=_HEAD_DOC)
class CosFaceEmbedder(_MarginSoftmaxEmbedder):
    r"""Embedding trained with CosFace's additive cosine margin, as a transformer.

    Each class :math:`j` has a trained weight vector :math:`W_j`; with
    :math:`\theta_j` the angle between a sample's embedding and
    :math:`W_j` and :math:`y` its class, training minimises the softmax
    cross-entropy of the logits

    .. math::

        z_y = s (\cos\theta_y - m), \qquad z_j = s \cos\theta_j \;(j \ne y)

    (Wang et al., 2018, large margin cosine loss): a sample's cosine to its
    class's weight must beat the others by :math:`m`. Compare the embeddings
    by cosine, or by Euclidean distance once normalised. :meth:`transform`
    returns the embeddings, float32 of shape ``(n_samples, embedding_dim)``;
    the weights are ``module_.loss.W``.

    Parameters
    ----------
    margin : float, default=0.35
        The cosine margin :math:`m`, >= 0: 0.35 is the paper's value.
    {head_parameters}
    {shared_parameters}

    Attributes
    ----------
    {shared_attributes}

    See Also
    --------
    ArcFaceEmbedder : The margin on the angle instead of the cosine.

    References
    ----------
    .. [1] H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu.
       "CosFace: Large Margin Cosine Loss for Deep Face Recognition".
       CVPR 2018.

    Examples
    --------
    >>> from skmeta import CosFaceEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> embedder = CosFaceEmbedder(embedding_dim=8, scale=16, max_epochs=2,
    ...                            random_state=0)
    >>> embedder.fit_transform(data.X_base, data.y_base).shape
    (901, 8)
    """

    _parameter_constraints: dict = {
        **_MarginSoftmaxEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
    }

    _loss = CosFaceLoss

    def __init__(
        self,
        margin=0.35,
        scale=64.0,
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
        self.scale = scale
