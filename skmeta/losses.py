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

import torch
from torch import nn
from torch.nn import functional as F

from .distances import Cosine, get_distance, l2_normalize
from .miners import (
    PAIR_MINERS,
    TRIPLET_MINERS,
    _check_labels,
    _check_number,
    get_miner,
)

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


def _check_batch(embeddings, labels):
    """Validate ``(embeddings (n, d) float, labels (n,) int)``."""
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(
            "embeddings must be a torch.Tensor of shape (n_samples, embedding_dim); "
            f"got {type(embeddings).__name__}."
        )
    if not embeddings.dtype.is_floating_point:
        raise TypeError(
            f"embeddings must have a floating-point dtype; got {embeddings.dtype}."
        )
    if embeddings.ndim != 2:
        raise ValueError(
            "embeddings must be 2-D of shape (n_samples, embedding_dim); got shape "
            f"{tuple(embeddings.shape)}."
        )
    _check_labels(labels, embeddings.shape[0])


#: How tuple losses reduce their per-tuple losses to one number.
REDUCTIONS = ("mean", "nonzero")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {list(REDUCTIONS)}; got {reduction!r}."
        )
    return reduction


def _reduce(losses, reduction, embeddings):
    """One loss from per-tuple ``losses`` (1-D): the mean over all or non-zero ones.

    ``"nonzero"`` is pytorch-metric-learning's ``AvgNonZeroReducer``: the
    mean over the tuples with a positive loss, a connected zero when none.
    """
    if reduction == "nonzero":
        losses = losses[losses > 0]
        if len(losses) == 0:
            return _zero_loss(embeddings)
    return losses.mean()


def _zero_loss(embeddings):
    """A zero loss that is still connected to ``embeddings`` in the graph."""
    return embeddings.sum() * 0


class ContrastiveLoss(nn.Module):
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
    non-zero loss (``"nonzero"``). With the default miner the pairs are all
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
    reduction : {"mean", "nonzero"}, default="mean"
        Mean over all mined pairs, or over those of non-zero loss (as
        pytorch-metric-learning's ``AvgNonZeroReducer``).
    embedding_dim : int or None, default=None
        Embedding dimension, needed only for ``distance="mahalanobis"``.

    Attributes
    ----------
    distance : torch.nn.Module
        The distance module (a submodule, so learnable distances train).
    miner : callable
        The pair miner.

    Raises
    ------
    TypeError
        If ``margin`` is not a real number, ``distance`` is neither a name nor
        a module, ``miner`` is not callable; at call time, if ``embeddings`` is
        not a floating-point tensor or ``labels`` not an integer tensor.
    ValueError
        If ``margin`` is negative or not finite, or ``distance`` an unknown
        name; at call time, if ``embeddings`` is not 2-D or ``labels`` does not
        have shape ``(n,)``.

    References
    ----------
    .. [1] R. Hadsell, S. Chopra, Y. LeCun. "Dimensionality Reduction by
       Learning an Invariant Mapping". CVPR 2006.
    """

    def __init__(
        self,
        margin=1.0,
        distance="euclidean",
        miner="all",
        *,
        reduction="mean",
        embedding_dim=None,
    ):
        super().__init__()
        self.margin = _check_number("margin", margin, low=0.0)
        self.distance = get_distance(distance, embedding_dim)
        self.miner = get_miner(miner, PAIR_MINERS, self.margin)
        self.reduction = _check_reduction(reduction)

    def forward(self, embeddings, labels):
        """Return the mean contrastive loss over the mined pairs (a scalar)."""
        _check_batch(embeddings, labels)
        dist = self.distance(embeddings, embeddings)
        i, j = self.miner(dist, labels)
        if len(i) == 0:
            return _zero_loss(embeddings)
        d = dist[i, j]
        same = labels[i] == labels[j]
        losses = torch.where(same, d.pow(2), F.relu(self.margin - d).pow(2))
        return _reduce(losses, self.reduction, embeddings)

    def extra_repr(self):
        return (
            f"margin={self.margin}, miner={self.miner!r}, reduction={self.reduction!r}"
        )


class TripletMarginLoss(nn.Module):
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
    loss (``"nonzero"``, pytorch-metric-learning's default). With no valid
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
    reduction : {"mean", "nonzero"}, default="mean"
        Mean over all mined triplets, or over those of non-zero loss.
    embedding_dim : int or None, default=None
        Embedding dimension, needed only for ``distance="mahalanobis"``.

    Attributes
    ----------
    distance : torch.nn.Module
        The distance module (a submodule, so learnable distances train).
    miner : callable
        The resolved triplet miner.

    Raises
    ------
    TypeError
        If ``margin`` is not a real number, or ``distance``/``miner`` has the
        wrong type; at call time, if ``embeddings`` is not a floating-point
        tensor or ``labels`` not an integer tensor.
    ValueError
        If ``margin`` is negative or not finite, ``distance``/``miner`` an
        unknown name; at call time, if ``embeddings`` is not 2-D or ``labels``
        does not have shape ``(n,)``.

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin. "FaceNet: A Unified
       Embedding for Face Recognition and Clustering". CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe. "In Defense of the Triplet Loss for
       Person Re-Identification". arXiv:1703.07737, 2017.
    """

    def __init__(
        self,
        margin=0.2,
        distance="euclidean",
        miner="all",
        *,
        reduction="mean",
        embedding_dim=None,
    ):
        super().__init__()
        self.margin = _check_number("margin", margin, low=0.0)
        self.distance = get_distance(distance, embedding_dim)
        self.miner = get_miner(miner, TRIPLET_MINERS, self.margin)
        self.reduction = _check_reduction(reduction)

    def forward(self, embeddings, labels):
        """Return the mean triplet loss over the mined triplets (a scalar)."""
        _check_batch(embeddings, labels)
        dist = self.distance(embeddings, embeddings)
        a, p, n = self.miner(dist, labels)
        if len(a) == 0:
            return _zero_loss(embeddings)
        losses = F.relu(dist[a, p] - dist[a, n] + self.margin)
        return _reduce(losses, self.reduction, embeddings)

    def extra_repr(self):
        return (
            f"margin={self.margin}, miner={self.miner!r}, reduction={self.reduction!r}"
        )


class NPairLoss(nn.Module):
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
        If ``l2_reg`` is not a real number; at call time, if ``embeddings``
        is not a floating-point tensor or ``labels`` not an integer tensor.
    ValueError
        If ``l2_reg`` is negative or not finite; at call time, if
        ``embeddings`` is not 2-D or ``labels`` does not have shape ``(n,)``.

    References
    ----------
    .. [1] K. Sohn. "Improved Deep Metric Learning with Multi-class N-pair
       Loss Objective". NeurIPS 2016.
    """

    def __init__(self, l2_reg=0.002):
        super().__init__()
        self.l2_reg = _check_number("l2_reg", l2_reg, low=0.0)

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

    def forward(self, embeddings, labels):
        """Return the N-pair loss of the batch (a scalar)."""
        _check_batch(embeddings, labels)
        anchor, positive = self.pairs(labels)
        if len(anchor) < 2:
            return _zero_loss(embeddings)
        f, f_pos = embeddings[anchor], embeddings[positive]
        logits = f @ f_pos.T
        target = torch.arange(len(anchor), device=embeddings.device)
        ce = F.cross_entropy(logits, target)
        norms = torch.cat([f, f_pos]).pow(2).sum(dim=1)
        return ce + self.l2_reg * norms.mean()

    def extra_repr(self):
        return f"l2_reg={self.l2_reg}"


class NTXentLoss(nn.Module):
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
        If ``temperature`` is not a real number; at call time, if
        ``embeddings`` is not a floating-point tensor or ``labels`` not an
        integer tensor.
    ValueError
        If ``temperature`` is not finite and > 0; at call time, if
        ``embeddings`` is not 2-D or ``labels`` does not have shape ``(n,)``.

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

    def __init__(self, temperature=0.1):
        super().__init__()
        self.temperature = _check_number(
            "temperature", temperature, low=0.0, low_inclusive=False
        )
        self.distance = Cosine()

    def forward(self, embeddings, labels):
        """Return the mean NT-Xent loss over the positive pairs (a scalar)."""
        _check_batch(embeddings, labels)
        same = labels[:, None] == labels[None, :]
        other = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        anchor, positive = torch.nonzero(same & other, as_tuple=True)
        if len(anchor) == 0:
            return _zero_loss(embeddings)
        logits = -self.distance(embeddings, embeddings) / self.temperature
        # The log-sum-exp over each anchor's negatives; -inf where it has none.
        negatives = torch.logsumexp(logits.masked_fill(same, -math.inf), dim=1)
        positives = logits[anchor, positive]
        return (torch.logaddexp(positives, negatives[anchor]) - positives).mean()

    def extra_repr(self):
        return f"temperature={self.temperature}"


class _MarginSoftmaxLoss(nn.Module):
    r"""Softmax cross-entropy on scaled cosines to class weights, with a margin.

    Embeddings :math:`x_i` and the rows :math:`W_j` of the class weight
    matrix are L2-normalised, so :math:`\cos\theta_{ij} = \hat x_i \cdot
    \hat W_j`. The logit of the true class goes through the subclass hook
    :meth:`_margin_logits`, the others stay :math:`\cos\theta_{ij}`; all are
    multiplied by ``scale`` and fed to cross-entropy, averaged over the batch.
    """

    def __init__(self, n_classes, embedding_dim, scale, margin):
        super().__init__()
        for name, value in (("n_classes", n_classes), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        self.n_classes = n_classes
        self.embedding_dim = embedding_dim
        self.scale = _check_number("scale", scale, low=0.0, low_inclusive=False)
        self.margin = self._check_margin(margin)
        # As the ArcFace reference implementation (insightface arcface_torch).
        self.W = nn.Parameter(torch.empty(n_classes, embedding_dim).normal_(0.0, 0.01))

    def _check_margin(self, margin):
        return _check_number("margin", margin, low=0.0)

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

    def forward(self, embeddings, labels):
        """Return the mean cross-entropy over the batch (a scalar)."""
        _check_batch(embeddings, labels)
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
        if len(labels) == 0:
            return _zero_loss(embeddings) + 0 * self.W.sum()
        return F.cross_entropy(self.logits(embeddings, labels), labels)

    def extra_repr(self):
        return (
            f"n_classes={self.n_classes}, embedding_dim={self.embedding_dim}, "
            f"scale={self.scale}, margin={self.margin}"
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
    n_classes : int
        Number of classes; labels must be in ``[0, n_classes)``.
    embedding_dim : int
        Dimension ``d`` of the embeddings.
    scale : float, default=64.0
        The scale :math:`s`; must be > 0.
    margin : float, default=0.5
        The angular margin :math:`m` in radians; must be in ``[0, pi)``.
    easy_margin : bool, default=False
        Use the "easy margin" variant described above.

    Attributes
    ----------
    W : torch.nn.Parameter of shape (n_classes, embedding_dim)
        The class weights (one proxy per class), initialised from
        :math:`\mathcal N(0, 0.01^2)`.

    Raises
    ------
    TypeError
        If ``scale`` or ``margin`` is not a real number; at call time, if
        ``embeddings`` is not a floating-point tensor or ``labels`` not an
        integer tensor.
    ValueError
        If ``n_classes``/``embedding_dim`` is not a positive int, ``scale``
        not > 0, ``margin`` not in ``[0, pi)``; at call time, if
        ``embeddings`` is not of shape ``(n, embedding_dim)``, ``labels`` not
        of shape ``(n,)`` or outside ``[0, n_classes)``.

    References
    ----------
    .. [1] J. Deng, J. Guo, N. Xue, S. Zafeiriou. "ArcFace: Additive Angular
       Margin Loss for Deep Face Recognition". CVPR 2019.
    """

    def __init__(
        self, n_classes, embedding_dim, scale=64.0, margin=0.5, *, easy_margin=False
    ):
        super().__init__(n_classes, embedding_dim, scale, margin)
        self.easy_margin = bool(easy_margin)

    def _check_margin(self, margin):
        return _check_number("margin", margin, low=0.0, high=math.pi)

    def _margin_logits(self, cos):
        m = self.margin
        # sin(theta) in [0, 1]; the clamp keeps the gradient finite at |cos| = 1.
        sin = (1.0 - cos.pow(2)).clamp_min(1e-12).sqrt()
        cos_theta_m = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            return torch.where(cos > 0, cos_theta_m, cos)
        threshold = math.cos(math.pi - m)
        return torch.where(cos > threshold, cos_theta_m, cos - m * math.sin(m))

    def extra_repr(self):
        return super().extra_repr() + f", easy_margin={self.easy_margin}"


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
    n_classes : int
        Number of classes; labels must be in ``[0, n_classes)``.
    embedding_dim : int
        Dimension ``d`` of the embeddings.
    scale : float, default=64.0
        The scale :math:`s`; must be > 0.
    margin : float, default=0.35
        The cosine margin :math:`m`; must be >= 0.

    Attributes
    ----------
    W : torch.nn.Parameter of shape (n_classes, embedding_dim)
        The class weights (one proxy per class), initialised from
        :math:`\mathcal N(0, 0.01^2)`.

    Raises
    ------
    TypeError
        If ``scale`` or ``margin`` is not a real number; at call time, if
        ``embeddings`` is not a floating-point tensor or ``labels`` not an
        integer tensor.
    ValueError
        If ``n_classes``/``embedding_dim`` is not a positive int, ``scale``
        not > 0, ``margin`` negative; at call time, if ``embeddings`` is not
        of shape ``(n, embedding_dim)``, ``labels`` not of shape ``(n,)`` or
        outside ``[0, n_classes)``.

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
