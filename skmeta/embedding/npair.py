"""NPairEmbedder: the multi-class N-pair loss."""

import dataclasses
from numbers import Real

from .._params import Param
from .._sklearn import Interval
from ._base import NORMALIZE, MetricEmbedder, embedder_parameters

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
    >>> embedder = NPairEmbedder(embedding_dim=8, max_epochs=2, random_state=0)
    >>> embedder.fit_transform(data.X_base, data.y_base).shape
    (901, 8)
    """

    _parameters = embedder_parameters(
        {
            "l2_reg": Param(
                "float",
                0.002,
                [Interval(Real, 0, None, closed="left")],
                r"The norm penalty :math:`\lambda`, >= 0 (Sohn uses 0.002).",
            ),
            "normalize": dataclasses.replace(
                NORMALIZE,
                default=False,
                doc="""L2-normalise embeddings, in training and in
                :meth:`transform`. The N-pair loss is meant for unnormalised
                embeddings: on the unit sphere the logits lie in [-1, 1] and the
                softmax stays nearly flat.""",
            ),
        }
    )

    def _loss_spec(self):
        return "npair", {"l2_reg": self.l2_reg}
