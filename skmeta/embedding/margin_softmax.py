"""ArcFaceEmbedder and CosFaceEmbedder: softmax losses with an angular margin.

Both train a weight vector per class (a proxy) with the backbone and compare
embeddings with it by cosine; they differ only in where the margin goes.
"""

import math
from numbers import Integral, Real

from .._params import Param
from .._sklearn import Interval
from ._base import MetricEmbedder, embedder_parameters, normalization_parameters

__all__ = ["ArcFaceEmbedder", "CosFaceEmbedder"]


def _head_parameters(margin):
    """The parameters of ArcFace and CosFace, whose margins differ.

    Both train a classifier head of class weights: the loss's ``W``
    (``module_.loss.W``, one row per class of ``classes_``), which trains with
    the backbone and pickles with it. A batch needs no positive pairs, so
    ``n_samples_per_class`` may be 1.
    """
    scale = Param(
        "float",
        64.0,
        [Interval(Real, 0, None, closed="neither")],
        """The scale :math:`s` of the cosines, > 0: the logits lie in
        :math:`[-s, s]`. 64 is the papers' value for thousands of classes;
        with few classes a smaller scale (10 to 30) trains as well.""",
    )
    normalization = normalization_parameters(
        doc="""``"l2"`` scales the embeddings :meth:`transform` returns to unit
        norm (the loss normalises them in any case), so that Euclidean distance
        ranks like cosine; ``None`` returns the backbone's output.""",
    )
    return embedder_parameters(
        {"margin": margin, "scale": scale, **normalization},
        n_samples_per_class={
            "constraints": [Interval(Integral, 1, None, closed="left")]
        },
    )


class ArcFaceEmbedder(MetricEmbedder):
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

    {parameters}

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

    _parameters = _head_parameters(
        Param(
            "float",
            0.5,
            [Interval(Real, 0, math.pi, closed="left")],
            """The angular margin :math:`m` in radians, in [0, pi): 0.5 (about
            29 degrees) is the paper's value.""",
        )
    )

    def __init__(
        self,
        margin=0.5,
        *,
        scale=64.0,
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
        self.scale = scale
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
        return "arcface", {"scale": self.scale, "margin": self.margin}


class CosFaceEmbedder(MetricEmbedder):
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

    {parameters}

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

    _parameters = _head_parameters(
        Param(
            "float",
            0.35,
            [Interval(Real, 0, None, closed="left")],
            "The cosine margin :math:`m`, >= 0: 0.35 is the paper's value.",
        )
    )

    def __init__(
        self,
        margin=0.35,
        *,
        scale=64.0,
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
        self.scale = scale
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
        return "cosface", {"scale": self.scale, "margin": self.margin}
