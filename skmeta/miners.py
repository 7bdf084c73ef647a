"""Tuple miners for deep metric learning: which pairs and triplets a loss sees.

A miner is a callable ``miner(dist, labels)`` that takes the ``(n, n)``
distance matrix of a batch (computed once by the loss) and the ``(n,)`` int64
labels, and returns index tensors:

- pair miners return ``(i, j)``, two int64 tensors of shape ``(n_pairs,)``
  with ``i < j``;
- triplet miners return ``(anchor, positive, negative)``, three int64 tensors
  of shape ``(n_triplets,)`` with ``labels[anchor] == labels[positive]``,
  ``anchor != positive`` and ``labels[anchor] != labels[negative]``.

Mining only selects indices, so it runs without gradient on
``dist.detach()``; the loss then gathers the selected entries of the
differentiable ``dist``. Every miner is vectorised (masks over the whole
matrix, no Python loop over anchors) and deterministic: tuples come in
lexicographic order of their indices, and ties in a hardest-of selection go to
the lowest index.

Pair losses accept a name from :data:`PAIR_MINERS`, triplet losses one from
:data:`TRIPLET_MINERS`, or any callable with the signature above. A miner
class gets the loss's margin through its :meth:`for_margin` classmethod; a
new miner is one class here and its entry in a registry.
"""

import torch

from ._validation import check_labels, check_number

__all__ = [
    "PAIR_MINERS",
    "TRIPLET_MINERS",
    "AllPairsMiner",
    "AllTripletsMiner",
    "BatchHardMiner",
    "PairMarginMiner",
    "SemiHardMiner",
    "get_miner",
    "pair_masks",
]


def _check_dist(dist, labels):
    if not isinstance(dist, torch.Tensor) or dist.ndim != 2:
        shape = tuple(dist.shape) if isinstance(dist, torch.Tensor) else None
        raise ValueError(
            f"dist must be a 2-D torch.Tensor of shape (n, n); got {shape or dist!r}."
        )
    if dist.shape[0] != dist.shape[1]:
        raise ValueError(
            f"dist must be a square (n, n) matrix; got shape {tuple(dist.shape)}."
        )
    check_labels(labels, dist.shape[0])


def pair_masks(labels):
    """Boolean masks of the positive and negative pairs of a batch.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,), integer dtype
        Class of each sample.

    Returns
    -------
    positive : torch.Tensor of shape (n, n), bool
        ``positive[i, j]`` is True when ``i != j`` and the labels are equal.
    negative : torch.Tensor of shape (n, n), bool
        ``negative[i, j]`` is True when the labels differ.
    """
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


class _Miner:
    """Common plumbing: input checks, no-grad, and a readable repr."""

    def __call__(self, dist, labels):
        _check_dist(dist, labels)
        with torch.no_grad():
            return self._mine(dist.detach(), labels)

    def _mine(self, dist, labels):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def for_margin(cls, margin):
        """The miner a loss of margin ``margin`` builds from its name."""
        return cls()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class AllPairsMiner(_Miner):
    """Every unordered pair ``(i, j)`` with ``i < j``, in lexicographic order.

    Returns ``n (n - 1) / 2`` pairs for a batch of ``n`` samples.
    """

    def _mine(self, dist, labels):
        i, j = torch.triu_indices(len(labels), len(labels), offset=1)
        return i.to(dist.device), j.to(dist.device)


class PairMarginMiner(_Miner):
    """Pairs that violate a margin: far positives and close negatives.

    Keeps the pairs ``i < j`` (lexicographic order) with either the same label
    and ``dist[i, j] > pos_margin``, or different labels and
    ``dist[i, j] < neg_margin``. With the contrastive loss and
    ``pos_margin=0, neg_margin=margin`` these are exactly the pairs whose loss
    is non-zero.

    Parameters
    ----------
    pos_margin : float, default=0.0
        Positive pairs at distance ``<= pos_margin`` are dropped. Must be >= 0.
    neg_margin : float, default=1.0
        Negative pairs at distance ``>= neg_margin`` are dropped. Must be >= 0.

    Raises
    ------
    TypeError, ValueError
        If a margin is not a finite number >= 0.
    """

    def __init__(self, pos_margin=0.0, neg_margin=1.0):
        self.pos_margin = check_number("pos_margin", pos_margin, low=0.0)
        self.neg_margin = check_number("neg_margin", neg_margin, low=0.0)

    @classmethod
    def for_margin(cls, margin):
        """The pairs of non-zero contrastive loss: ``neg_margin=margin``."""
        return cls(0.0, margin)

    def _mine(self, dist, labels):
        positive, negative = pair_masks(labels)
        keep = (positive & (dist > self.pos_margin)) | (
            negative & (dist < self.neg_margin)
        )
        keep = torch.triu(keep, diagonal=1)
        i, j = keep.nonzero(as_tuple=True)
        return i, j


class AllTripletsMiner(_Miner):
    """Every valid triplet ``(a, p, n)``, in lexicographic order.

    Valid means ``a != p``, ``labels[a] == labels[p]`` and
    ``labels[a] != labels[n]``. A batch with ``P`` classes of ``K`` samples
    has ``P K (K - 1) (P - 1) K`` of them, so memory grows as ``n**3``
    (a boolean ``(n, n, n)`` mask: 16 MB for ``n = 256``).
    """

    def _mine(self, dist, labels):
        positive, negative = pair_masks(labels)
        valid = positive[:, :, None] & negative[:, None, :]
        a, p, n = valid.nonzero(as_tuple=True)
        return a, p, n


class BatchHardMiner(_Miner):
    """Batch-hard mining: per anchor, its hardest positive and hardest negative.

    For each anchor ``a`` that has at least one positive and one negative in
    the batch, returns the triplet ``(a, argmax_p dist[a, p],
    argmin_n dist[a, n])`` (Hermans, Beyer & Leibe, 2017). Anchors come in
    increasing order; ties go to the lowest index. At most ``n`` triplets.

    References
    ----------
    .. [1] A. Hermans, L. Beyer, B. Leibe. "In Defense of the Triplet Loss for
       Person Re-Identification". arXiv:1703.07737, 2017.
    """

    def _mine(self, dist, labels):
        positive, negative = pair_masks(labels)
        inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
        hardest_pos = torch.where(positive, dist, -inf).argmax(dim=1)
        hardest_neg = torch.where(negative, dist, inf).argmin(dim=1)
        anchors = (positive.any(dim=1) & negative.any(dim=1)).nonzero(as_tuple=True)[0]
        return anchors, hardest_pos[anchors], hardest_neg[anchors]


class SemiHardMiner(_Miner):
    """Semi-hard triplets: negatives farther than the positive, within the margin.

    Returns every valid triplet ``(a, p, n)`` (lexicographic order) with
    ``dist[a, p] < dist[a, n] < dist[a, p] + margin`` (Schroff, Kalenichenko
    & Philbin, 2015, eq. 4): the negative is not closer than the positive, yet
    still violates the margin, so the triplet loss is in ``(0, margin)``.

    Parameters
    ----------
    margin : float, default=0.2
        The triplet margin ``m``; must be > 0.

    Raises
    ------
    TypeError, ValueError
        If ``margin`` is not a finite number > 0.

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin. "FaceNet: A Unified
       Embedding for Face Recognition and Clustering". CVPR 2015.
    """

    def __init__(self, margin=0.2):
        self.margin = check_number("margin", margin, low=0.0, low_inclusive=False)

    @classmethod
    def for_margin(cls, margin):
        """Semi-hard with respect to the loss's own margin."""
        return cls(margin)

    def _mine(self, dist, labels):
        positive, negative = pair_masks(labels)
        d_ap = dist[:, :, None]
        d_an = dist[:, None, :]
        valid = positive[:, :, None] & negative[:, None, :]
        valid &= (d_an > d_ap) & (d_an < d_ap + self.margin)
        a, p, n = valid.nonzero(as_tuple=True)
        return a, p, n


#: Pair miners by the name :class:`skmeta.losses.ContrastiveLoss` accepts.
PAIR_MINERS = {
    "all": AllPairsMiner,
    "margin": PairMarginMiner,
}

#: Triplet miners by the name :class:`skmeta.losses.TripletMarginLoss` accepts.
TRIPLET_MINERS = {
    "all": AllTripletsMiner,
    "hard": BatchHardMiner,
    "semi-hard": SemiHardMiner,
}


def get_miner(miner, miners, margin):
    """Return a miner from a name or a callable.

    Parameters
    ----------
    miner : str or callable
        A key of ``miners``, or a callable ``miner(dist, labels)`` returning
        index tensors, returned as it is.
    miners : dict of str to type
        The registry the name is looked up in: :data:`PAIR_MINERS` or
        :data:`TRIPLET_MINERS`.
    margin : float
        The loss's margin, given to the miner class's ``for_margin``.

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        If ``miner`` is a name not in ``miners``.
    TypeError
        If ``miner`` is neither a string nor a callable.
    """
    if isinstance(miner, str):
        if miner not in miners:
            raise ValueError(
                f"Unknown miner {miner!r}; expected one of {sorted(miners)} or a "
                "callable (dist, labels) -> index tensors."
            )
        return miners[miner].for_margin(margin)
    if callable(miner):
        return miner
    raise TypeError(
        f"miner must be a name in {sorted(miners)} or a callable; got "
        f"{type(miner).__name__}."
    )
