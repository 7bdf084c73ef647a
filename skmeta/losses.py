"""Losses for deep metric learning, as interchangeable torch modules.

Every loss is called as ``loss(embeddings, labels)`` with

- ``embeddings``: a floating-point ``torch.Tensor`` of shape ``(n, d)``,
- ``labels``: an integer (int64) ``torch.Tensor`` of shape ``(n,)``,

and returns a scalar tensor. Pair- and triplet-based losses take a
``distance`` (a name of :data:`skmeta.distances.DISTANCES` or a module) and
compute the ``(n, n)`` distance matrix once per batch; a miner from
:mod:`skmeta.miners` picks the tuples from it. Proxy/classifier losses
(ArcFace, CosFace) own their class weight matrix as an ``nn.Parameter``, so it
trains and saves with the network: pass the loss's parameters to the optimiser
along with the network's (the same holds for a learnable distance such as
:class:`~skmeta.distances.Mahalanobis`).

When a batch holds no tuple to learn from (e.g. every sample has a different
label), a loss returns ``embeddings.sum() * 0``: a zero that keeps the graph
connected, so ``backward()`` works and leaves zero gradients.

A loss declares what it needs by the names of its constructor's parameters:
:class:`~skmeta.embedding.MetricEmbedder` passes ``n_classes``,
``embedding_dim``, ``distance``, ``miner`` and ``reduction`` to the losses
that take them. A new loss is one class here and its entry in :data:`LOSSES`.
"""

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from ._docs import fill_doc
from ._validation import check_batch, check_number
from .distances import Cosine, get_distance, l2_normalize
from .miners import PAIR_MINERS, TRIPLET_MINERS, get_miner

__all__ = [
    "LOSSES",
    "REDUCTIONS",
    "ArcFaceLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "NPairLoss",
    "NTXentLoss",
    "TripletMarginLoss",
]


#: How tuple losses reduce their per-tuple losses to one number.
REDUCTIONS = ("mean", "mean-nonzero")

#: Reductions renamed in 0.1, accepted with a FutureWarning until 0.3
#: (``"nonzero"`` read as one of torch's ``reduction`` values, which it is not).
DEPRECATED_REDUCTIONS = {"nonzero": "mean-nonzero"}

#: The errors of a wrong batch, the same for every loss (:func:`fill_doc`).
_BATCH_ERRORS = """\
    TypeError, ValueError
        At call time, if ``embeddings`` is not a floating-point tensor of
        shape ``(n, d)`` with finite values, or ``labels`` not an int64
        tensor of shape ``(n,)``.
"""

#: The end of the Parameters of the tuple losses, their Attributes and errors.
_TUPLE_LOSS = (
    """\
    reduction : {"mean", "mean-nonzero"}, default="mean"
        Mean over all mined tuples, or over those of non-zero loss (as
        pytorch-metric-learning's ``AvgNonZeroReducer``). ``"nonzero"``, its
        name until 0.1, warns (FutureWarning) and is removed in 0.3.
    embedding_dim : int or None, default=None
        Embedding dimension, needed only for ``distance="mahalanobis"``.

    Attributes
    ----------
    distance : torch.nn.Module
        The distance module (a submodule, so learnable distances train).
    miner : callable
        The miner, built from ``miner`` with the loss's ``margin``.

    Raises
    ------
    TypeError
        If ``margin`` is not a real number, ``distance`` is neither a name nor
        a module, or ``miner`` neither a name nor a callable.
    ValueError
        If ``margin`` is negative or not finite (or 0 with
        ``miner="semi-hard"``), ``distance`` or ``miner`` an unknown name,
        ``reduction`` not one of :data:`REDUCTIONS`.
"""
    + _BATCH_ERRORS
)

#: The shared parameters of the losses with a weight per class (ArcFace, CosFace).
_CLASS_WEIGHT_PARAMETERS = """\
    n_classes : int
        Number of classes; labels must be in ``[0, n_classes)``.
    embedding_dim : int
        Dimension ``d`` of the embeddings.
    scale : float, default=64.0
        The scale :math:`s`; must be > 0.
"""

#: Their class weights and their errors; ``margin``'s range is in Parameters.
_CLASS_WEIGHTS = (
    """\
    Attributes
    ----------
    W : torch.nn.Parameter of shape (n_classes, embedding_dim)
        The class weights (one proxy per class), initialised from
        :math:`\\mathcal N(0, 0.01^2)`.

    Raises
    ------
    TypeError
        If ``scale`` or ``margin`` is not a real number.
    ValueError
        If ``n_classes``/``embedding_dim`` is not a positive int, ``scale``
        not > 0, ``margin`` outside its range; at call time, if
        ``embeddings`` does not have ``embedding_dim`` columns or ``labels``
        are not in ``[0, n_classes)``.
"""
    + _BATCH_ERRORS
)


class _MetricLoss(nn.Module):
    """Base of the losses: the batch checks, the reduction and the empty case.

    ``forward(embeddings, labels)`` checks the batch (``embeddings`` of shape
    ``(n, d)``, floating-point and finite; ``labels`` int64 of shape
    ``(n,)``), asks the subclass's :meth:`compute_loss` for the per-tuple
    (or per-sample) losses, a 1-D tensor, and reduces them to one number
    with ``reduction``: the mean over all of them (``"mean"``), or over
    those above zero (``"mean-nonzero"``, pytorch-metric-learning's
    ``AvgNonZeroReducer``). With nothing to average the loss is
    :meth:`zero_loss`, a zero still connected to the graph. A subclass
    holds its formula and lists its hyperparameters in ``_repr_fields``.
    """

    #: The reduction of the per-tuple losses; losses that take a
    #: ``reduction`` argument set it in ``__init__``.
    reduction = "mean"
    _repr_fields = ()

    def forward(self, embeddings, labels):
        """Return the loss of the batch (a scalar tensor).

        Parameters
        ----------
        embeddings : torch.Tensor of shape (n, d), floating-point dtype
        labels : torch.Tensor of shape (n,), int64

        Returns
        -------
        torch.Tensor of shape ()
        """
        check_batch(embeddings, labels)
        losses = self.compute_loss(embeddings, labels)
        if self.reduction == "mean-nonzero":
            losses = losses[losses > 0]
        if len(losses) == 0:
            return self.zero_loss(embeddings)
        return losses.mean()

    @staticmethod
    def _check_reduction(reduction):
        """Return ``reduction`` if it is one of :data:`REDUCTIONS`, else raise.

        A name of :data:`DEPRECATED_REDUCTIONS` gives its new name, with a
        FutureWarning.
        """
        if reduction in DEPRECATED_REDUCTIONS:
            new = DEPRECATED_REDUCTIONS[reduction]
            warnings.warn(
                f"reduction={reduction!r} was renamed {new!r} in 0.1 and will be "
                f"removed in 0.3: use reduction={new!r}.",
                FutureWarning,
                stacklevel=3,
            )
            return new
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {list(REDUCTIONS)}; got {reduction!r}."
            )
        return reduction

    def compute_loss(self, embeddings, labels):
        """The 1-D tensor of per-tuple losses of a checked batch."""
        raise NotImplementedError  # pragma: no cover

    def zero_loss(self, embeddings):
        """A zero loss that is still connected to ``embeddings`` in the graph."""
        return embeddings.sum() * 0

    def extra_repr(self):
        fields = self._repr_fields
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in fields)


class _TupleLoss(_MetricLoss):
    """A loss over the pairs or triplets a miner picks from the distance matrix.

    The ``(n, n)`` distance matrix is computed once per batch with
    ``distance`` (:func:`~skmeta.distances.get_distance`); the miner
    (:func:`~skmeta.miners.get_miner`, looked up in the subclass's
    ``_miners`` registry and built with the loss's ``margin``) picks index
    tensors from it, and :meth:`tuple_losses` turns the gathered distances
    into per-tuple losses.
    """

    _miners = {}
    _repr_fields = ("margin", "miner", "reduction")

    def __init__(self, margin, distance, miner, reduction, embedding_dim):
        super().__init__()
        self.margin = check_number("margin", margin, low=0.0)
        self.distance = get_distance(distance, embedding_dim)
        self.miner = get_miner(miner, self._miners, self.margin)
        self.reduction = self._check_reduction(reduction)

    def compute_loss(self, embeddings, labels):
        dist = self.distance(embeddings, embeddings)
        indices = self.miner(dist, labels)
        if len(indices[0]) == 0:
            return dist.new_zeros(0)
        return self.tuple_losses(dist, labels, *indices)

    def tuple_losses(self, dist, labels, *indices):
        """The losses ``(n_tuples,)`` of the mined tuples, from ``dist``."""
        raise NotImplementedError  # pragma: no cover


@fill_doc(tuple_loss=_TUPLE_LOSS)
class ContrastiveLoss(_TupleLoss):
    r"""Contrastive loss over pairs (Hadsell, Chopra & LeCun, 2006).

    For each mined pair :math:`(i, j)` with distance :math:`D_{ij}` and
    :math:`y_{ij} = 1` if the two samples share their label, else 0:

    .. math::

        \ell_{ij} = y_{ij} D_{ij}^2 + (1 - y_{ij}) \max(0, m - D_{ij})^2

    Positives are pulled together; negatives are pushed apart until they are
    at least ``m`` away. :math:`D` is the chosen ``distance`` and the formula
    squares it, so the default Euclidean distance gives the paper's loss
    (with ``"sqeuclidean"`` the positive term would be a fourth power).

    **Reduction**: the mean of :math:`\ell_{ij}` over all mined pairs,
    zero-loss pairs included (``reduction="mean"``), or over the pairs of
    non-zero loss (``"mean-nonzero"``). With the default miner the pairs are all
    :math:`n(n-1)/2` pairs :math:`i < j` of the batch. With no pair (``n < 2``
    or an empty mining) the loss is ``embeddings.sum() * 0``.

    Parameters
    ----------
    margin : float, default=1.0
        The margin :math:`m` for negative pairs; must be >= 0.
    distance : str or torch.nn.Module, default="euclidean"
        A name of :data:`skmeta.distances.DISTANCES` or a distance module
        mapping ``(n, d) x (m, d)`` to ``(n, m)``.
    miner : {"all", "margin"} or callable, default="all"
        ``"all"``: every pair :math:`i < j`
        (:class:`~skmeta.miners.AllPairsMiner`); ``"margin"``: the pairs of
        non-zero loss, positives at a distance above 0 and negatives below
        ``margin`` (:class:`~skmeta.miners.PairMarginMiner`). A callable
        ``miner(dist, labels) -> (i, j)`` returning int64 index tensors is
        used as it is.
    {tuple_loss}

    References
    ----------
    .. [1] R. Hadsell, S. Chopra, Y. LeCun. "Dimensionality Reduction by
       Learning an Invariant Mapping". CVPR 2006.
    """

    _miners = PAIR_MINERS

    def __init__(
        self,
        margin=1.0,
        distance="euclidean",
        miner="all",
        *,
        reduction="mean",
        embedding_dim=None,
    ):
        super().__init__(margin, distance, miner, reduction, embedding_dim)

    def tuple_losses(self, dist, labels, i, j):
        r""":math:`\ell_{ij}` of the mined pairs ``(i, j)``."""
        d = dist[i, j]
        same = labels[i] == labels[j]
        return torch.where(same, d.pow(2), F.relu(self.margin - d).pow(2))


@fill_doc(tuple_loss=_TUPLE_LOSS)
class TripletMarginLoss(_TupleLoss):
    r"""Triplet margin loss (Schroff, Kalenichenko & Philbin, 2015, FaceNet).

    For each mined triplet (anchor :math:`a`, positive :math:`p` with the
    anchor's label, negative :math:`n` with another label):

    .. math::

        \ell_{apn} = \max\bigl(0,\; d(a, p) - d(a, n) + m\bigr)

    The ``(n, n)`` distance matrix is computed once per batch; the miner picks
    the triplets from it (without gradient) and the loss gathers them.

    **Reduction**: the mean of :math:`\ell_{apn}` over all mined triplets,
    zero-loss triplets included (``reduction="mean"``: ``"all"`` mining then
    shrinks as more triplets are satisfied), or over the triplets of non-zero
    loss (``"mean-nonzero"``, pytorch-metric-learning's default). With no valid
    triplet (fewer than two classes, or no class with two samples, or an
    empty mining) the loss is ``embeddings.sum() * 0``.

    Parameters
    ----------
    margin : float, default=0.2
        The margin :math:`m`; must be >= 0 (> 0 with ``miner="semi-hard"``).
    distance : str or torch.nn.Module, default="euclidean"
        A name of :data:`skmeta.distances.DISTANCES` or a distance module.
    miner : {"all", "hard", "semi-hard"} or callable, default="all"
        ``"all"``: every valid triplet (:class:`~skmeta.miners.AllTripletsMiner`);
        ``"hard"``: batch-hard, one triplet per anchor with its farthest
        positive and nearest negative (Hermans et al., 2017,
        :class:`~skmeta.miners.BatchHardMiner`); ``"semi-hard"``: the
        triplets with :math:`d(a,p) < d(a,n) < d(a,p) + m` (Schroff et al.,
        2015, :class:`~skmeta.miners.SemiHardMiner`, built with this loss's
        ``margin``). A callable ``miner(dist, labels) -> (a, p, n)`` is used
        as it is.
    {tuple_loss}

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin. "FaceNet: A Unified
       Embedding for Face Recognition and Clustering". CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe. "In Defense of the Triplet Loss for
       Person Re-Identification". arXiv:1703.07737, 2017.
    """

    _miners = TRIPLET_MINERS

    def __init__(
        self,
        margin=0.2,
        distance="euclidean",
        miner="all",
        *,
        reduction="mean",
        embedding_dim=None,
    ):
        super().__init__(margin, distance, miner, reduction, embedding_dim)

    def tuple_losses(self, dist, labels, a, p, n):
        r""":math:`\ell_{apn}` of the mined triplets ``(a, p, n)``."""
        return F.relu(dist[a, p] - dist[a, n] + self.margin)


@fill_doc(batch_errors=_BATCH_ERRORS)
class NPairLoss(_MetricLoss):
    r"""Multi-class N-pair loss (Sohn, 2016).

    From the batch, one (anchor, positive) pair is taken per class that has
    at least two samples: **the first two samples of that class in batch
    order** (anchor first), classes in increasing label order; other samples
    are not used. With the :math:`N` pairs :math:`(f_i, f_i^+)` of distinct
    classes:

    .. math::

        L = \frac{1}{N} \sum_{i=1}^{N}
            -\log \frac{\exp(f_i^\top f_i^+)}{\sum_{j=1}^{N} \exp(f_i^\top f_j^+)}
            \;+\; \lambda \frac{1}{2N} \sum_{i=1}^{N}
            \bigl(\|f_i\|^2 + \|f_i^+\|^2\bigr)

    that is, softmax cross-entropy over the similarities ``anchor_i .
    positive_j`` with target ``i`` (mean over the ``N`` anchors), plus
    ``l2_reg`` times the mean squared norm of the ``2N`` paired embeddings
    (the N-pair loss is not scale invariant, so the norms need a bound).
    If fewer than two classes have two samples the loss is
    ``embeddings.sum() * 0``.

    Parameters
    ----------
    l2_reg : float, default=0.002
        The embedding norm penalty :math:`\lambda`; must be >= 0.

    Raises
    ------
    TypeError
        If ``l2_reg`` is not a real number.
    ValueError
        If ``l2_reg`` is negative or not finite.
    {batch_errors}

    References
    ----------
    .. [1] K. Sohn. "Improved Deep Metric Learning with Multi-class N-pair
       Loss Objective". NeurIPS 2016.
    """

    _repr_fields = ("l2_reg",)

    def __init__(self, l2_reg=0.002):
        super().__init__()
        self.l2_reg = check_number("l2_reg", l2_reg, low=0.0)

    @staticmethod
    def pairs(labels):
        """Indices ``(anchor, positive)`` of the N pairs, as described above.

        Parameters
        ----------
        labels : torch.Tensor of shape (n,), integer dtype

        Returns
        -------
        anchor, positive : torch.Tensor of shape (N,), int64
        """
        _, inverse, counts = torch.unique(
            labels, sorted=True, return_inverse=True, return_counts=True
        )
        # Indices grouped by class (classes in label order), batch order inside.
        order = torch.sort(inverse, stable=True).indices
        starts = torch.cumsum(counts, 0) - counts
        starts = starts[counts >= 2]
        return order[starts], order[starts + 1]

    def compute_loss(self, embeddings, labels):
        """Per anchor: its cross-entropy plus ``l2_reg`` times its pair's mean norm².

        Their mean is :math:`L`.
        """
        anchor, positive = self.pairs(labels)
        if len(anchor) < 2:
            return embeddings.new_zeros(0)
        f, f_pos = embeddings[anchor], embeddings[positive]
        target = torch.arange(len(anchor), device=embeddings.device)
        ce = F.cross_entropy(f @ f_pos.T, target, reduction="none")
        norms = (f.pow(2).sum(dim=1) + f_pos.pow(2).sum(dim=1)) / 2
        return ce + self.l2_reg * norms


@fill_doc(batch_errors=_BATCH_ERRORS)
class NTXentLoss(_MetricLoss):
    r"""NT-Xent, the normalised temperature-scaled cross-entropy (SimCLR, InfoNCE).

    The loss of SimCLR (Chen et al., 2020, eq. 1), the InfoNCE loss of
    contrastive predictive coding (van den Oord et al., 2018) over the
    samples of a batch. With :math:`s_{ij} = z_i^\top z_j / (\|z_i\|
    \|z_j\|)` the cosine similarity of two embeddings and :math:`\tau` the
    temperature, each positive pair :math:`(i, j)` (two samples of one label,
    :math:`i \ne j`) is a softmax classification of :math:`j` among
    :math:`j` and the negatives of :math:`i`, :math:`N(i)` (the samples of
    other labels):

    .. math::

        \ell_{ij} = -\log \frac{\exp(s_{ij} / \tau)}
            {\exp(s_{ij} / \tau) + \sum_{k \in N(i)} \exp(s_{ik} / \tau)}

    and the loss is the **mean of** :math:`\ell_{ij}` **over the ordered
    positive pairs**. In self-supervised training a batch holds two views of
    each of :math:`N` samples, labelled by their sample: each view's one
    positive is the other view of its sample and its negatives are the other
    :math:`2N - 2` views, which is eq. 1 of the paper exactly, averaged over
    the :math:`2N` views as the paper does. With class labels (several
    positives per anchor) each positive pair is scored against the anchor's
    negatives only, as pytorch-metric-learning's ``NTXentLoss``. The
    similarities are computed in float32 (as :class:`~skmeta.distances.Cosine`
    distances, :math:`1 - s_{ij}`: the softmax does not change by the
    constant). A batch with no positive pair gives ``embeddings.sum() * 0``;
    an anchor without negatives has :math:`\ell_{ij} = 0`.

    Parameters
    ----------
    temperature : float, default=0.1
        The temperature :math:`\tau`, > 0: lower values weigh the hardest
        negatives more. 0.1 is SimCLR's best with L2-normalised projections
        (Chen et al., 2020, Table 5; its CIFAR-10 runs took 0.5);
        pytorch-metric-learning's default is MoCo's 0.07.

    Raises
    ------
    TypeError
        If ``temperature`` is not a real number.
    ValueError
        If ``temperature`` is not finite and > 0.
    {batch_errors}

    References
    ----------
    .. [1] T. Chen, S. Kornblith, M. Norouzi, G. Hinton. "A Simple Framework
       for Contrastive Learning of Visual Representations". ICML 2020.
    .. [2] A. van den Oord, Y. Li, O. Vinyals. "Representation Learning with
       Contrastive Predictive Coding". arXiv:1807.03748, 2018.
    .. [3] K. Sohn. "Improved Deep Metric Learning with Multi-class N-pair
       Loss Objective". NeurIPS 2016 (its precursor on labelled pairs: dot
       products, no temperature).
    """

    _repr_fields = ("temperature",)

    def __init__(self, temperature=0.1):
        super().__init__()
        self.temperature = check_number(
            "temperature", temperature, low=0.0, low_inclusive=False
        )
        self.distance = Cosine()

    def compute_loss(self, embeddings, labels):
        r""":math:`\ell_{ij}` of the ordered positive pairs ``(i, j)``."""
        same = labels[:, None] == labels[None, :]
        other = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        anchor, positive = torch.nonzero(same & other, as_tuple=True)
        if len(anchor) == 0:
            return embeddings.new_zeros(0)
        logits = -self.distance(embeddings, embeddings) / self.temperature
        # The log-sum-exp over each anchor's negatives; -inf where it has none.
        negatives = torch.logsumexp(logits.masked_fill(same, -math.inf), dim=1)
        positives = logits[anchor, positive]
        return torch.logaddexp(positives, negatives[anchor]) - positives


class _MarginSoftmaxLoss(_MetricLoss):
    r"""Softmax cross-entropy on scaled cosines to class weights, with a margin.

    Embeddings :math:`x_i` and the rows :math:`W_j` of the class weight
    matrix are L2-normalised, so :math:`\cos\theta_{ij} = \hat x_i \cdot
    \hat W_j`. The logit of the true class goes through the subclass hook
    :meth:`_margin_logits`, the others stay :math:`\cos\theta_{ij}`; all are
    multiplied by ``scale`` and fed to cross-entropy, averaged over the batch.
    """

    _repr_fields = ("n_classes", "embedding_dim", "scale", "margin")

    def __init__(self, n_classes, embedding_dim, scale, margin):
        super().__init__()
        for name, value in (("n_classes", n_classes), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        self.n_classes = n_classes
        self.embedding_dim = embedding_dim
        self.scale = check_number("scale", scale, low=0.0, low_inclusive=False)
        self.margin = self._check_margin(margin)
        # As the ArcFace reference implementation (insightface arcface_torch).
        self.W = nn.Parameter(torch.empty(n_classes, embedding_dim).normal_(0.0, 0.01))

    def _check_margin(self, margin):
        return check_number("margin", margin, low=0.0)

    def _margin_logits(self, cos):
        """Map the true-class cosines ``(n,)`` to the true-class logits / scale."""
        raise NotImplementedError  # pragma: no cover

    def cosines(self, embeddings):
        """Cosine similarities ``(n, n_classes)`` of embeddings to class weights."""
        cos = l2_normalize(embeddings, dim=1) @ l2_normalize(self.W, dim=1).T
        return cos.clamp(-1.0, 1.0)

    def logits(self, embeddings, labels):
        """The scaled logits ``(n, n_classes)``, margin applied to the true class."""
        cos = self.cosines(embeddings)
        idx = labels[:, None]
        target = self._margin_logits(cos.gather(1, idx).squeeze(1))
        logits = cos.scatter(1, idx, target[:, None].to(cos.dtype))
        return self.scale * logits

    def compute_loss(self, embeddings, labels):
        """The cross-entropy of each sample's scaled, margin-applied logits."""
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have embedding_dim={self.embedding_dim} columns; "
                f"got shape {tuple(embeddings.shape)}."
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(
                f"labels must be in [0, n_classes={self.n_classes}); got values in "
                f"[{labels.min().item()}, {labels.max().item()}]."
            )
        return F.cross_entropy(
            self.logits(embeddings, labels), labels, reduction="none"
        )

    def zero_loss(self, embeddings):
        """A zero connected to ``embeddings`` and to the class weights ``W``."""
        return super().zero_loss(embeddings) + 0 * self.W.sum()


@fill_doc(
    class_weight_parameters=_CLASS_WEIGHT_PARAMETERS, class_weights=_CLASS_WEIGHTS
)
class ArcFaceLoss(_MarginSoftmaxLoss):
    r"""Additive angular margin loss, ArcFace (Deng, Guo, Xue & Zafeiriou, 2019).

    With :math:`\cos\theta_j = \hat x \cdot \hat W_j` (L2-normalised embedding
    and class weights) and :math:`y` the true class, the logits are

    .. math::

        z_y = s \cos(\theta_y + m), \qquad z_j = s \cos\theta_j \;(j \ne y)

    and the loss is their softmax cross-entropy with target :math:`y`,
    **averaged over the batch**.

    :math:`\cos(\theta + m)` is computed as :math:`\cos\theta\cos m -
    \sin\theta\sin m`. Past :math:`\theta + m > \pi` it would *increase* with
    :math:`\theta` again, rewarding a worse angle; as in the reference
    implementation, when :math:`\theta \ge \pi - m` (i.e. :math:`\cos\theta \le
    \cos(\pi - m)`) the target logit is instead :math:`s(\cos\theta - m
    \sin m)`, a CosFace-like penalty that keeps the logit decreasing in
    :math:`\theta` (it steps down from :math:`-1` to :math:`-\cos m - m\sin m`
    at the threshold, as in the reference). With ``easy_margin=True`` the margin
    is only applied where :math:`\cos\theta > 0` (:math:`\theta < \pi/2`) and
    the plain :math:`\cos\theta` is used elsewhere.

    Parameters
    ----------
    {class_weight_parameters}
    margin : float, default=0.5
        The angular margin :math:`m` in radians; must be in ``[0, pi)``.
    easy_margin : bool, default=False
        Use the "easy margin" variant described above.

    {class_weights}

    References
    ----------
    .. [1] J. Deng, J. Guo, N. Xue, S. Zafeiriou. "ArcFace: Additive Angular
       Margin Loss for Deep Face Recognition". CVPR 2019.
    """

    _repr_fields = (*_MarginSoftmaxLoss._repr_fields, "easy_margin")

    def __init__(
        self, n_classes, embedding_dim, scale=64.0, margin=0.5, *, easy_margin=False
    ):
        super().__init__(n_classes, embedding_dim, scale, margin)
        self.easy_margin = bool(easy_margin)

    def _check_margin(self, margin):
        return check_number("margin", margin, low=0.0, high=math.pi)

    def _margin_logits(self, cos):
        m = self.margin
        # sin(theta) in [0, 1]; the clamp keeps the gradient finite at |cos| = 1.
        sin = (1.0 - cos.pow(2)).clamp_min(1e-12).sqrt()
        cos_theta_m = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            return torch.where(cos > 0, cos_theta_m, cos)
        threshold = math.cos(math.pi - m)
        return torch.where(cos > threshold, cos_theta_m, cos - m * math.sin(m))


@fill_doc(
    class_weight_parameters=_CLASS_WEIGHT_PARAMETERS, class_weights=_CLASS_WEIGHTS
)
class CosFaceLoss(_MarginSoftmaxLoss):
    r"""Additive cosine margin loss, CosFace / LMCL (Wang et al., 2018).

    With :math:`\cos\theta_j = \hat x \cdot \hat W_j` (L2-normalised embedding
    and class weights) and :math:`y` the true class, the logits are

    .. math::

        z_y = s (\cos\theta_y - m), \qquad z_j = s \cos\theta_j \;(j \ne y)

    and the loss is their softmax cross-entropy with target :math:`y`,
    **averaged over the batch**.

    Parameters
    ----------
    {class_weight_parameters}
    margin : float, default=0.35
        The cosine margin :math:`m`; must be >= 0.

    {class_weights}

    References
    ----------
    .. [1] H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu.
       "CosFace: Large Margin Cosine Loss for Deep Face Recognition".
       CVPR 2018.
    """

    def __init__(self, n_classes, embedding_dim, scale=64.0, margin=0.35):
        super().__init__(n_classes, embedding_dim, scale, margin)

    def _margin_logits(self, cos):
        return cos - self.margin


#: Deep metric learning losses by name.
LOSSES = {
    "contrastive": ContrastiveLoss,
    "triplet": TripletMarginLoss,
    "npair": NPairLoss,
    "ntxent": NTXentLoss,
    "arcface": ArcFaceLoss,
    "cosface": CosFaceLoss,
}
