r"""Retrieval metrics for embeddings: precision@1, R-precision, MAP@R, recall@k.

As defined by Musgrave, Belongie & Lim (2020), "A Metric Learning Reality
Check", and for recall@k by Oh Song et al. (2016). Each query's neighbours are
the reference samples sorted by increasing distance to it. Without a
reference set, every sample is a query in turn and the references are all
*other* samples (leave-one-out: the query itself is excluded); with one, the
queries (new samples) search the references (a stored gallery), the way
retrieval is used. For a query of label :math:`c`, :math:`R` is the number of
references with label :math:`c` (other than the query itself), and
:math:`\mathrm{rel}_k = 1` when the :math:`k`-th neighbour has label
:math:`c`.

- precision@1: :math:`\mathrm{rel}_1`;
- R-precision: :math:`\frac{1}{R} \sum_{k=1}^{R} \mathrm{rel}_k`;
- MAP@R: :math:`\frac{1}{R} \sum_{k=1}^{R} P(k)\,\mathrm{rel}_k` with
  :math:`P(k) = \frac{1}{k}\sum_{i=1}^{k} \mathrm{rel}_i`;
- recall@k: :math:`\max_{i \le k} \mathrm{rel}_i`, whether one of the
  :math:`k` nearest has the query's label.

Each metric is the mean over the queries. **Queries with R = 0** (no
reference of their label) have no correct answer and are **excluded from all
metrics**, as in the paper's reference code (pytorch-metric-learning's
``AccuracyCalculator``, whose values these equal); a ``ValueError`` is raised
when no query remains.

The search is :class:`skmeta.neighbors.EmbeddingNeighbors`: by default exact,
in chunks of queries against blocks of references, with a working set of
about 64 MB whatever the number of references, in float64 with torch (or in
the dtype of a distance module's parameters, e.g. a trained Mahalanobis).
**Ties** between neighbours at equal distance are broken deterministically:
the reference with the lower index ranks first. ``algorithm="faiss-flat"``
(exact, float32), ``"faiss-ivf"`` or ``"faiss-hnsw"`` (approximate) search
with faiss instead, for large reference sets.
"""

import numbers

import numpy as np
import torch

from ._validation import is_count
from .distances import get_distance
from .neighbors import EmbeddingNeighbors

__all__ = [
    "METRICS",
    "mean_average_precision_at_r",
    "precision_at_1",
    "r_precision",
    "retrieval_scorer",
    "retrieval_scores",
]


def _check_chunk_size(chunk_size):
    if chunk_size is not None and not is_count(chunk_size):
        raise ValueError(f"chunk_size must be None or an int >= 1; got {chunk_size!r}.")


def _check_embeddings(embeddings, name):
    """``embeddings`` as a finite 2-D float array; float32 is kept (no copy)."""
    try:
        X = np.asarray(embeddings)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be an array-like of floats; got {type(embeddings).__name__}."
        ) from exc
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features); got shape {X.shape}."
        )
    for start in range(0, len(X), 2**16):  # no n x d boolean copy at once
        if not np.isfinite(X[start : start + 2**16]).all():
            raise ValueError(f"{name} must be finite; got NaN or infinite values.")
    return X


def _check_labels(labels, n, name, embeddings_name):
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match {embeddings_name}; got "
            f"shape {y.shape}."
        )
    return y


def _check_k(k, available):
    """``k`` as a tuple of distinct ints in [1, available], in the given order."""
    ks = [k] if isinstance(k, numbers.Integral) else ([] if k is None else k)
    try:
        ks = list(dict.fromkeys(ks))
    except TypeError as exc:
        raise TypeError(
            f"k must be None, an int or a sequence of ints; got {k!r}."
        ) from exc
    for value in ks:
        if not is_count(value, high=available):
            raise ValueError(
                f"k must be None or ints in [1, {available}] (the number of "
                f"references a query can retrieve); got {k!r}."
            )
    return tuple(int(value) for value in ks)


def _per_query_scores(R, rel, ks):
    """precision@1, R-precision, AP@R and recall@k of each query, float64 (c,)."""
    ranks = np.arange(1, rel.shape[1] + 1)
    at_r = rel & (ranks[None, :] <= R[:, None])
    precision_at_k = np.cumsum(at_r, 1) / ranks
    return [
        rel[:, 0].astype(np.float64),
        at_r.sum(1) / R,
        (precision_at_k * at_r).sum(1) / R,
        *(rel[:, :k].any(1).astype(np.float64) for k in ks),
    ]


def retrieval_scores(
    query_embeddings,
    query_labels,
    reference_embeddings=None,
    reference_labels=None,
    *,
    distance="euclidean",
    k=None,
    chunk_size=None,
    algorithm="exact",
    algorithm_params=None,
):
    """Compute precision@1, R-precision, MAP@R (and recall@k) in one pass.

    Parameters
    ----------
    query_embeddings : array-like of shape (n_queries, n_features)
        Float embeddings of the queries (float32 is searched without a
        float64 copy of the whole array).
    query_labels : array-like of shape (n_queries,)
        Class of each query, any hashable values that numpy can sort.
    reference_embeddings : array-like of shape (n_references, n_features) \
            or None, default=None
        The gallery searched. ``None``: leave-one-out over the queries, each
        searching all the others.
    reference_labels : array-like of shape (n_references,) or None, \
            default=None
        Class of each reference; given exactly when
        ``reference_embeddings`` is.
    distance : str or torch.nn.Module, default="euclidean"
        A name of :data:`skmeta.distances.DISTANCES` or a distance module;
        smaller means closer.
    k : int, sequence of int or None, default=None
        The ``k`` of recall@k, one key ``"recall_at_{k}"`` each (e.g.
        ``k=(1, 10)``); ``None`` computes no recall.
    chunk_size : int or None, default=None
        Number of queries searched at once. ``None`` picks the largest chunk
        whose exact search works in about 64 MB.
    algorithm : {"exact", "faiss-flat", "faiss-ivf", "faiss-hnsw"}, \
            default="exact"
        The search, as for :class:`skmeta.neighbors.EmbeddingNeighbors`;
        the faiss ones need ``faiss-cpu``.
    algorithm_params : dict or None, default=None
        The search's parameters, as for
        :class:`~skmeta.neighbors.EmbeddingNeighbors`.

    Returns
    -------
    scores : dict
        ``{"precision_at_1": float, "r_precision": float, "map_at_r": float}``
        and ``"recall_at_{k}"`` for each ``k``, each in [0, 1], the mean over
        the queries with R > 0.

    Raises
    ------
    TypeError
        If embeddings are not numeric, or ``distance`` neither a name nor a
        module.
    ValueError
        If embeddings are not 2-D or not finite, labels do not match their
        embeddings, only one of ``reference_embeddings`` and
        ``reference_labels`` is given, queries and references differ in
        features, ``chunk_size`` is not a positive int, a ``k`` is not in
        ``[1, n_references]`` (``n_queries - 1`` in leave-one-out),
        ``distance`` is an unknown name (or not one faiss computes), or no
        query has R > 0 (no query label among the other references).
    ImportError
        If a faiss algorithm is asked for and faiss is not installed.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie, S.-N. Lim. "A Metric Learning Reality
       Check". ECCV 2020.
    .. [2] H. Oh Song, Y. Xiang, S. Jegelka, S. Savarese. "Deep Metric
       Learning via Lifted Structured Feature Embedding". CVPR 2016
       (recall@k).
    """
    Q = _check_embeddings(query_embeddings, "query_embeddings")
    yq = _check_labels(query_labels, len(Q), "query_labels", "query_embeddings")
    loo = reference_embeddings is None
    if loo != (reference_labels is None):
        raise ValueError(
            "reference_embeddings and reference_labels must be given together; "
            f"got only {'reference_labels' if loo else 'reference_embeddings'}."
        )
    if loo:
        ref, yr = Q, yq
    else:
        ref = _check_embeddings(reference_embeddings, "reference_embeddings")
        yr = _check_labels(
            reference_labels, len(ref), "reference_labels", "reference_embeddings"
        )
        if ref.shape[1] != Q.shape[1]:
            raise ValueError(
                "reference_embeddings must have the features of query_embeddings "
                f"({Q.shape[1]}); got {ref.shape[1]}."
            )
    _check_chunk_size(chunk_size)
    ks = _check_k(k, len(ref) - loo)
    _, codes = np.unique(np.concatenate([yq, yr]), return_inverse=True)
    codes = codes.reshape(-1)
    yq, yr = codes[: len(yq)], codes[len(yq) :]
    R = np.bincount(yr, minlength=codes.max() + 1)[yq] - loo
    # Queries by increasing R, so that a chunk's queries need similar k.
    queries = np.flatnonzero(R > 0)
    queries = queries[np.argsort(R[queries], kind="stable")]
    if len(queries) == 0:
        raise ValueError(
            "query_labels must give at least one query a reference of its label "
            "other than itself (R > 0); got none."
        )
    nn = EmbeddingNeighbors(
        distance=distance,
        algorithm=algorithm,
        algorithm_params=algorithm_params,
        chunk_size=chunk_size,
    ).fit(ref)
    largest = max([int(R.max()), *ks])
    chunk = chunk_size or nn._chunk_rows(len(queries), largest + 1)
    totals = np.zeros(3 + len(ks))
    for start in range(0, len(queries), chunk):
        rows = queries[start : start + chunk]
        n_neighbors = max([int(R[rows].max()), *ks])
        _, neighbours = nn._search(Q[rows], n_neighbors, rows if loo else None)
        rel = (neighbours >= 0) & (yr[neighbours] == yq[rows][:, None])
        for t, scores in enumerate(_per_query_scores(R[rows], rel, ks)):
            totals[t] += scores.sum()
    means = totals / len(queries)
    names = ["precision_at_1", "r_precision", "map_at_r"]
    names += [f"recall_at_{value}" for value in ks]
    return {name: float(mean) for name, mean in zip(names, means, strict=True)}


def precision_at_1(
    query_embeddings,
    query_labels,
    reference_embeddings=None,
    reference_labels=None,
    **kwargs,
):
    """Fraction of queries whose nearest reference has their label.

    Queries without a reference of their label are excluded; ties go to the
    lower reference index. The parameters (``distance``, ``chunk_size``,
    ``algorithm``, ``algorithm_params`` by keyword) and errors are those of
    :func:`retrieval_scores`.

    Returns
    -------
    float in [0, 1]
    """
    return retrieval_scores(
        query_embeddings, query_labels, reference_embeddings, reference_labels, **kwargs
    )["precision_at_1"]


def r_precision(
    query_embeddings,
    query_labels,
    reference_embeddings=None,
    reference_labels=None,
    **kwargs,
):
    """Mean over queries of the fraction of their R nearest that share their label.

    ``R`` is the number of references with the query's label (other than
    the query itself); queries with ``R = 0`` are excluded; ties go to the
    lower reference index. The parameters and errors are those of
    :func:`retrieval_scores`.

    Returns
    -------
    float in [0, 1]
    """
    return retrieval_scores(
        query_embeddings, query_labels, reference_embeddings, reference_labels, **kwargs
    )["r_precision"]


def mean_average_precision_at_r(
    query_embeddings,
    query_labels,
    reference_embeddings=None,
    reference_labels=None,
    **kwargs,
):
    """MAP@R: mean over queries of the average precision within the R nearest.

    For a query with ``R`` references of its label,
    ``AP@R = (1/R) sum_{k<=R} P(k) rel_k`` where ``P(k)`` is the precision
    of the ``k`` nearest and ``rel_k`` whether the ``k``-th shares the label.
    It is 1 exactly when the ``R`` nearest are all of the query's label.
    Queries with ``R = 0`` are excluded; ties go to the lower reference
    index. The parameters and errors are those of :func:`retrieval_scores`.

    Returns
    -------
    float in [0, 1]
    """
    return retrieval_scores(
        query_embeddings, query_labels, reference_embeddings, reference_labels, **kwargs
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
