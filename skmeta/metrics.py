r"""Retrieval metrics for embeddings: precision@1, R-precision, MAP@R.

As defined by Musgrave, Belongie & Lim (2020), "A Metric Learning Reality
Check". Every sample is a query in turn; its neighbours are all *other*
samples sorted by increasing distance to it (the query itself is excluded).
For a query of label :math:`c`, :math:`R` is the number of other samples with
label :math:`c`, and :math:`\mathrm{rel}_k = 1` when the :math:`k`-th
neighbour has label :math:`c`.

- precision@1: :math:`\mathrm{rel}_1`;
- R-precision: :math:`\frac{1}{R} \sum_{k=1}^{R} \mathrm{rel}_k`;
- MAP@R: :math:`\frac{1}{R} \sum_{k=1}^{R} P(k)\,\mathrm{rel}_k` with
  :math:`P(k) = \frac{1}{k}\sum_{i=1}^{k} \mathrm{rel}_i`.

Each metric is the mean over the queries. **Queries with R = 0** (the only
sample of their label) have no correct answer and are **excluded from all
three metrics**, as in the paper's reference code
(pytorch-metric-learning's ``AccuracyCalculator``); a ``ValueError`` is
raised when no query remains.

Computation is exact: the full pairwise distance matrix, one chunk of
queries at a time (``chunk_size`` queries per chunk, by default as many as
keep the working memory under about 256 MB), in float64 with torch (or in
the dtype of a distance module's parameters, e.g. a trained Mahalanobis).
**Ties** between neighbours at equal distance are broken deterministically
by a stable sort: the neighbour with the lower sample index ranks first.
"""

import numbers

import numpy as np
import torch

from .distances import get_distance

__all__ = [
    "METRICS",
    "mean_average_precision_at_r",
    "precision_at_1",
    "r_precision",
    "retrieval_scorer",
    "retrieval_scores",
]

#: Working memory budget per chunk, in bytes.
_MEMORY_BUDGET = 256 * 2**20
#: Bytes held per (query, sample) entry of a chunk: the distance matrix, the
#: sort's values and indices, and the temporaries of the distance computation.
_BYTES_PER_ENTRY = 64


def _check_chunk_size(chunk_size):
    if chunk_size is not None and (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, numbers.Integral)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be None or an int >= 1; got {chunk_size!r}.")


def _check_inputs(embeddings, labels, chunk_size):
    try:
        X = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "embeddings must be an array-like of floats; got "
            f"{type(embeddings).__name__}."
        ) from exc
    if X.ndim != 2:
        raise ValueError(
            "embeddings must be 2-D of shape (n_samples, n_features); got shape "
            f"{X.shape}."
        )
    if not np.isfinite(X).all():
        raise ValueError("embeddings must be finite; got NaN or infinite values.")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"labels must have shape ({X.shape[0]},) to match embeddings; got "
            f"shape {y.shape}."
        )
    _check_chunk_size(chunk_size)
    _, y = np.unique(y, return_inverse=True)
    return X, y.reshape(-1)


def _nearest_others(dist, queries, k):
    """Indices ``(c, k)`` of the ``k`` nearest other samples of each query.

    Equivalent to a stable sort of each row of ``dist`` (ties to the lower
    index) with the query itself removed, but sorts only the candidates: the
    entries no farther than the row's ``k``-th smallest, ties included.
    """
    c, n = dist.shape
    rows = torch.arange(c, device=dist.device)
    dist[rows, queries] = float("inf")
    kth = dist.topk(k, dim=1, largest=False).values[:, -1:]
    candidate = dist <= kth
    candidate[rows, queries] = False  # in case distances overflowed to inf
    counts = candidate.sum(1)
    # Row-major nonzero: candidates of a row come in increasing sample index.
    row, col = candidate.nonzero(as_tuple=True)
    pos = torch.arange(len(row), device=dist.device) - (counts.cumsum(0) - counts)[row]
    width = int(counts.max())
    cand_dist = torch.full(
        (c, width), float("inf"), dtype=dist.dtype, device=dist.device
    )
    cand_idx = torch.zeros((c, width), dtype=torch.int64, device=dist.device)
    cand_dist[row, pos] = dist[row, col]
    cand_idx[row, pos] = col
    order = torch.sort(cand_dist, dim=1, stable=True).indices[:, :k]
    return cand_idx.gather(1, order)


def _rankings(X, y, distance, chunk_size):
    """Yield, per chunk of queries, (R, rel) for the queries with R > 0.

    ``R`` has shape (c,); ``rel`` is bool (c, max R): whether the k-th nearest
    other sample has the query's label.
    """
    n = X.shape[0]
    module = get_distance(distance, X.shape[1])
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float64
    device = param.device if param is not None else torch.device("cpu")
    emb = torch.as_tensor(X, dtype=dtype, device=device)
    labels = torch.as_tensor(y, device=device)
    counts = torch.bincount(labels)
    R_all = counts[labels] - 1
    if chunk_size is None:
        chunk_size = max(1, _MEMORY_BUDGET // (_BYTES_PER_ENTRY * max(n, 1)))
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            queries = torch.arange(start, min(start + chunk_size, n), device=device)
            queries = queries[R_all[queries] > 0]
            if len(queries) == 0:
                continue
            R = R_all[queries]
            dist = module(emb[queries], emb)
            neighbours = _nearest_others(dist, queries, int(R.max()))
            rel = labels[neighbours] == labels[queries][:, None]
            yield R, rel


def _per_query_scores(R, rel):
    """precision@1, R-precision and AP@R of each query, float64 (c,) each."""
    k = rel.shape[1]
    ranks = torch.arange(1, k + 1, device=rel.device)
    within = ranks[None, :] <= R[:, None]
    rel = rel & within
    relf = rel.to(torch.float64)
    Rf = R.to(torch.float64)
    p1 = relf[:, 0]
    r_prec = relf.sum(1) / Rf
    precision_at_k = relf.cumsum(1) / ranks.to(torch.float64)
    ap = (precision_at_k * relf).sum(1) / Rf
    return p1, r_prec, ap


def retrieval_scores(embeddings, labels, *, distance="euclidean", chunk_size=None):
    """Compute precision@1, R-precision and MAP@R in one pass.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Float embeddings; every row is a query and a database item.
    labels : array-like of shape (n_samples,)
        Class of each sample, any hashable values that numpy can sort.
    distance : str or torch.nn.Module, default="euclidean"
        A name of :data:`skmeta.distances.DISTANCES` or a distance module;
        smaller means closer.
    chunk_size : int or None, default=None
        Number of queries whose distance row is held at once. ``None`` picks
        the largest chunk that keeps the working memory under about 256 MB.

    Returns
    -------
    scores : dict
        ``{"precision_at_1": float, "r_precision": float, "map_at_r": float}``,
        each in [0, 1], the mean over the queries with R > 0.

    Raises
    ------
    TypeError
        If ``embeddings`` is not numeric, or ``distance`` neither a name nor a
        module.
    ValueError
        If ``embeddings`` is not 2-D or not finite, ``labels`` does not have
        shape ``(n_samples,)``, ``chunk_size`` is not a positive int,
        ``distance`` is an unknown name, or no query has R > 0 (every label
        occurs once).

    References
    ----------
    .. [1] K. Musgrave, S. Belongie, S.-N. Lim. "A Metric Learning Reality
       Check". ECCV 2020.
    """
    X, y = _check_inputs(embeddings, labels, chunk_size)
    totals = np.zeros(3)
    n_queries = 0
    for R, rel in _rankings(X, y, distance, chunk_size):
        for t, scores in enumerate(_per_query_scores(R, rel)):
            totals[t] += float(scores.sum())
        n_queries += len(R)
    if n_queries == 0:
        raise ValueError(
            "labels must give at least one query another sample of its label "
            "(R > 0); got no label that occurs more than once."
        )
    means = totals / n_queries
    return {
        "precision_at_1": float(means[0]),
        "r_precision": float(means[1]),
        "map_at_r": float(means[2]),
    }


def precision_at_1(embeddings, labels, *, distance="euclidean", chunk_size=None):
    """Fraction of queries whose nearest other sample has their label.

    Queries that are the only sample of their label are excluded; ties go to
    the lower sample index. See :func:`retrieval_scores` for the parameters
    and errors.

    Returns
    -------
    float in [0, 1]
    """
    return retrieval_scores(
        embeddings, labels, distance=distance, chunk_size=chunk_size
    )["precision_at_1"]


def r_precision(embeddings, labels, *, distance="euclidean", chunk_size=None):
    """Mean over queries of the fraction of their R nearest that share their label.

    ``R`` is the number of other samples with the query's label; queries with
    ``R = 0`` are excluded; ties go to the lower sample index. See
    :func:`retrieval_scores` for the parameters and errors.

    Returns
    -------
    float in [0, 1]
    """
    return retrieval_scores(
        embeddings, labels, distance=distance, chunk_size=chunk_size
    )["r_precision"]


def mean_average_precision_at_r(
    embeddings, labels, *, distance="euclidean", chunk_size=None
):
    """MAP@R: mean over queries of the average precision within the R nearest.

    For a query with ``R`` other samples of its label,
    ``AP@R = (1/R) sum_{k<=R} P(k) rel_k`` where ``P(k)`` is the precision
    of the ``k`` nearest and ``rel_k`` whether the ``k``-th shares the label.
    It is 1 exactly when the ``R`` nearest are all of the query's label.
    Queries with ``R = 0`` are excluded; ties go to the lower sample index.
    See :func:`retrieval_scores` for the parameters and errors.

    Returns
    -------
    float in [0, 1]
    """
    return retrieval_scores(
        embeddings, labels, distance=distance, chunk_size=chunk_size
    )["map_at_r"]


#: Retrieval metrics by the name :func:`retrieval_scorer` accepts.
METRICS = {
    "precision_at_1": precision_at_1,
    "r_precision": r_precision,
    "map_at_r": mean_average_precision_at_r,
}


class _RetrievalScorer:
    """``scorer(estimator, X, y)``: the retrieval metric of ``estimator.transform(X)``.

    A class rather than a closure so that it pickles (``GridSearchCV`` with
    ``n_jobs > 1``).
    """

    def __init__(self, metric, distance, chunk_size):
        self.metric = metric
        self.distance = distance
        self.chunk_size = chunk_size

    def __call__(self, estimator, X, y):
        embeddings = estimator.transform(X)
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().cpu().numpy()
        return float(
            METRICS[self.metric](
                embeddings, y, distance=self.distance, chunk_size=self.chunk_size
            )
        )

    def __repr__(self):
        return (
            f"retrieval_scorer(metric={self.metric!r}, distance={self.distance!r}, "
            f"chunk_size={self.chunk_size!r})"
        )


def retrieval_scorer(metric="map_at_r", *, distance="euclidean", chunk_size=None):
    """Make a scikit-learn scorer from a retrieval metric.

    The scorer embeds ``X`` with ``estimator.transform(X)`` and returns the
    metric of those embeddings with labels ``y`` (greater is better), so
    ``GridSearchCV(embedder, grid, scoring=retrieval_scorer(), cv=...)``
    picks hyperparameters such as ``margin`` or ``embedding_dim`` by
    retrieval quality. With a class-disjoint splitter, each test fold holds
    classes unseen in training: the held-out-class protocol of Musgrave et
    al. (2020).

    Parameters
    ----------
    metric : {"map_at_r", "r_precision", "precision_at_1"}, default="map_at_r"
        The metric, a key of :data:`METRICS`.
    distance : str or torch.nn.Module, default="euclidean"
        Distance between embeddings, as for the metric functions.
    chunk_size : int or None, default=None
        As for the metric functions.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``; picklable.

    Raises
    ------
    ValueError
        If ``metric`` is not a key of :data:`METRICS`, or ``chunk_size`` is
        not None or a positive int. Errors of the metric itself (e.g. a test
        fold where every label occurs once) are raised when scoring.
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}; got {metric!r}.")
    _check_chunk_size(chunk_size)
    get_distance(distance, 1)  # fail now on an unknown distance, not when scoring
    return _RetrievalScorer(metric, distance, chunk_size)
