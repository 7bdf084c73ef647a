"""NPairEmbedder: the multi-class N-pair loss."""

from numbers import Real

from .._params import Param
from .._sklearn import Interval
from ._base import MetricEmbedder, embedder_parameters, normalization_parameters

__all__ = ["NPairEmbedder"]


class NPairEmbedder(MetricEmbedder):
    r"""Embedding trained with the multi-class N-pair loss, as a transformer.

    From each P x K batch, one (anchor, positive) pair per class,
    :math:`(f_i, f_i^+)` for :math:`i = 1..N` (here :math:`N = P`), and the
    loss is a softmax over similarities, each anchor against all positives:

    .. math::

        L = \frac{1}{N} \sum_{i=1}^{N}
            -\log \frac{\exp(f_i^\top f_i^+)}{\sum_{j=1}^{N} \exp(f_i^\top f_j^+)}
            + \lambda \frac{1}{2N} \sum_{i=1}^{N}
            \bigl(\|f_i\|^2 + \|f_i^+\|^2\bigr)

    (Sohn, 2016): every anchor is pushed from all ``N - 1`` other classes at
    once, instead of from one negative as in a triplet. Similarity is the dot
    product, so the embeddings' norm acts as an inverse temperature; the
    :math:`\lambda` term bounds it. There is no margin. :meth:`transform`
    returns the embeddings, float32 of shape ``(n_samples, embedding_dim)``;
    compare them with the dot product or, after normalising, with Euclidean
    or cosine distance. See :class:`skmeta.losses.NPairLoss` for which pairs
    are used.

    {parameters}

    {shared_attributes}

    See Also
    --------
    TripletEmbedder : One negative per anchor, with a margin.

    References
    ----------
    .. [1] K. Sohn. "Improved Deep Metric Learning with Multi-class N-pair
       Loss Objective". NeurIPS 2016.

    Examples
    --------
    >>> from skmeta import NPairEmbedder
    >>> from skmeta.datasets import load_digits_fewshot
    >>> data = load_digits_fewshot()
    >>> embedder = NPairEmbedder(n_samples_per_class=2, l2_reg=0.01, max_epochs=2)
    >>> embedder.fit(data.X_base, data.y_base).transform(data.X_novel).dtype
    dtype('float32')
    """

    _parameters = embedder_parameters(
        {
            "l2_reg": Param(
                "float",
                0.002,
                [Interval(Real, 0, None, closed="left")],
                r"The norm penalty :math:`\lambda`, >= 0 (Sohn uses 0.002).",
            ),
            **normalization_parameters(
                None,
                """``"l2"`` scales each embedding to unit norm, in training and
                in :meth:`transform`. The N-pair loss is meant for unnormalised
                embeddings (``None``): on the unit sphere the logits lie in
                [-1, 1] and the softmax stays nearly flat.""",
            ),
        }
    )

    def __init__(
        self,
        l2_reg=0.002,
        *,
        normalization=None,
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
        self.l2_reg = l2_reg
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
        return "npair", {"l2_reg": self.l2_reg}
