"""Nearest-neighbour search over embeddings: exact in chunks, or through faiss.

:class:`EmbeddingNeighbors` stores reference embeddings (a gallery, the output
of any embedder's ``transform``) and answers ``kneighbors`` queries in the
shape of scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`.

**Exact search** holds a bounded working set: queries are taken in chunks, and
each chunk is compared with the references one block at a time, keeping the
``k`` nearest found so far; only the references closer than the current
``k``-th are merged into them. Working memory is about ``_MEMORY_BUDGET``
bytes whatever the number of references: a chunk never holds the distances of
all queries to all references, nor those of one chunk to all references
unless they fit. Distances are computed by :mod:`skmeta.distances` in float64
(or in the dtype of a distance module's parameters, e.g. a trained
Mahalanobis), and **ties** go to the reference of lower index, as a stable
sort of each query's distances would order them.

**faiss** (``pip install faiss-cpu``, the ``faiss`` extra) serves large
galleries: ``"faiss-flat"`` is exact (``IndexFlatL2`` / ``IndexFlatIP``, in
float32), ``"faiss-ivf"`` (an inverted file over k-means cells,
``IndexIVFFlat``; Jégou et al., 2011) and ``"faiss-hnsw"`` (a hierarchical
navigable small-world graph, ``IndexHNSWFlat``; Malkov & Yashunin, 2018) are
approximate. They support the ``"euclidean"``, ``"sqeuclidean"`` and
``"cosine"`` distances (cosine as the inner product of unit vectors). Ties
among them are ordered as faiss returns them.
"""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from ._faiss import _FAISS_DISTANCES, _all_finite, _check_faiss_bytes, _FaissIndex
from ._sklearn import Interval, StrOptions, _fit_context
from ._validation import is_count
from .distances import get_distance

__all__ = ["ALGORITHMS", "EmbeddingNeighbors"]

#: Working memory budget of one chunk of an exact search, in bytes.
_MEMORY_BUDGET = 64 * 2**20
#: Bytes held per (query, reference) entry of a chunk: the distances, the
#: candidate mask, indices and the temporaries of the distance computation.
_BYTES_PER_ENTRY = 64

#: Parameters of each algorithm (``algorithm_params``) and their defaults.
#: ``nlist=None`` means ``round(sqrt(n_references))`` cells.
ALGORITHMS = {
    "exact": {},
    "faiss-flat": {},
    "faiss-ivf": {"nlist": None, "nprobe": 64},
    "faiss-hnsw": {"M": 32, "ef_construction": 40, "ef_search": 128},
}


def _chunk_rows(n_queries, n_references, k):
    """Queries per chunk of a search keeping ``k`` neighbours per query.

    All references in one block where that leaves a chunk of at least 1024
    queries (or all of them) within ``_MEMORY_BUDGET``; otherwise chunks of
    up to 1024 queries against blocks of at least 4096 references.
    """
    entries = max(1, _MEMORY_BUDGET // _BYTES_PER_ENTRY)
    chunk = entries // (n_references + k)
    if chunk >= min(n_queries, 1024):
        return max(1, min(chunk, n_queries))
    return max(1, min(n_queries, 1024, entries // (k + 4096)))


def _block_rows(n_rows, n_references, k):
    """References per block for a chunk of ``n_rows`` queries keeping ``k``.

    A chunk holds about ``n_rows * (k + block)`` entries: they fit
    ``_MEMORY_BUDGET``, with blocks of at least 1024 references.
    """
    entries = max(1, _MEMORY_BUDGET // _BYTES_PER_ENTRY)
    return max(1, min(n_references, max(1024, entries // max(n_rows, 1) - k)))


def _merge(best_d, best_i, d, i, k):
    """The ``k`` smallest of ``best`` and ``(d, i)`` by (distance, index).

    ``best`` is sorted and all its indices are lower than those of ``i``,
    whose rows are in increasing index: a stable sort of the concatenation
    orders ties by index.
    """
    all_d = torch.cat((best_d, d), 1)
    all_i = torch.cat((best_i, i), 1)
    order = torch.sort(all_d, dim=1, stable=True).indices[:, :k]
    return all_d.gather(1, order), all_i.gather(1, order)


def _closer(d, start, threshold, inclusive=False):
    """Entries of ``d`` below ``threshold`` (per row), packed to the left.

    Returns ``(d, i)`` of shape ``(c, width)``: per row, the entries whose
    distance is strictly below the row's threshold in increasing column order
    (indices offset by ``start``), padded with ``inf`` and ``-1``. Entries
    equal to the threshold rank after the current ``k``-th (a lower index),
    so they can never enter the ``k`` nearest; with ``inclusive`` (the
    threshold is the block's own ``k``-th smallest) they are kept too.
    """
    mask = d <= threshold if inclusive else d < threshold
    counts = mask.sum(1)
    width = int(counts.max()) if len(counts) else 0
    row, col = mask.nonzero(as_tuple=True)
    pos = torch.arange(len(row)) - (counts.cumsum(0) - counts)[row]
    out_d = torch.full((d.shape[0], width), float("inf"), dtype=d.dtype)
    out_i = torch.full((d.shape[0], width), -1, dtype=torch.int64)
    out_d[row, pos] = d[row, col]
    out_i[row, pos] = col + start
    return out_d, out_i


class _ExactIndex:
    """The references and a distance module; exact search block by block."""

    def __init__(self, reference, distance):
        self.reference = reference
        self.distance = distance

    def rows(self, rows):
        """The references of the slice ``rows``."""
        return self.reference[rows]

    def _dtype_device(self):
        param = next(self.distance.parameters(), None)
        if param is None:
            return torch.float64, torch.device("cpu")
        return param.dtype, param.device

    def _prepare(self, q):
        """What the blocks of a search share about the queries ``q``."""
        return q

    def _scores(self, prepared, ref):
        """Values ranking the block ``ref`` for each query, smaller nearer."""
        return self.distance(prepared, ref)

    def _distances(self, prepared, scores):
        """The distances of the kept ``scores``."""
        return scores

    def search(self, queries, k, block):
        """``k`` nearest references of ``queries``: float64 and int64 ``(c, k)``."""
        dtype, device = self._dtype_device()
        prepared = self._prepare(torch.as_tensor(queries, device=device).to(dtype))
        best_d = torch.empty((len(queries), 0), dtype=dtype)
        best_i = torch.empty((len(queries), 0), dtype=torch.int64)
        with torch.no_grad():
            for start in range(0, len(self.reference), block):
                ref = self.reference[start : start + block]
                ref = torch.as_tensor(ref, device=device).to(dtype)
                d = self._scores(prepared, ref).cpu()
                if best_d.shape[1] < k:  # not k yet: the block's k nearest
                    # and its ties, never a sort of the whole block.
                    kth = torch.topk(d, min(k, d.shape[1]), 1, largest=False)
                    d, i = _closer(d, start, kth.values[:, -1:], inclusive=True)
                else:
                    d, i = _closer(d, start, best_d[:, -1:])
                best_d, best_i = _merge(best_d, best_i, d, i, k)
            best_d = self._distances(prepared, best_d)
        return best_d.to(torch.float64).numpy(), best_i.numpy()


class _SquaredL2Index(_ExactIndex):
    r"""Exact search for the (squared) Euclidean distance, one product a block.

    Ranks each query's references by
    :math:`\|b'\|^2 / 2 - a' \cdot b'` (one ``addmm``), which differs from
    the squared distance :math:`\|a' - b'\|^2 / 2` by a constant per query;
    ``a' = a - c`` and ``b' = b - c`` are centred on the mean ``c`` of all
    references, as :mod:`skmeta.distances` centres, so that an offset common
    to all points does not eat the differences. The kept neighbours get
    :math:`2 (\|a'\|^2 / 2 + \text{rank value})`, clamped at 0, and its
    root where ``root``: no root over every entry, and no clamp at 1e-6 as
    :class:`~skmeta.distances.Euclidean` has for its gradient.
    """

    def __init__(self, reference, distance, root):
        super().__init__(reference, distance)
        self.root = root
        total = np.zeros(reference.shape[1])
        for start in range(0, len(reference), 2**16):
            total += reference[start : start + 2**16].sum(0, dtype=np.float64)
        self.center = torch.as_tensor(total / max(len(reference), 1))

    def _prepare(self, q):
        q = q - self.center
        return q, (q * q).sum(1, keepdim=True) / 2

    def _scores(self, prepared, ref):
        ref = ref - self.center
        return torch.addmm((ref * ref).sum(1) / 2, prepared[0], ref.T, alpha=-1)

    def _distances(self, prepared, scores):
        squared = (scores + prepared[1]).clamp_min_(0).mul_(2)
        return squared.sqrt_() if self.root else squared


def _without_self(d, i, queries):
    """Drop each query's own index from its ``k + 1`` neighbours (or the last).

    The ``k + 1`` nearest of all references, less the query itself, are its
    ``k`` nearest others; where the query is not among them (duplicates ranked
    before it), the first ``k`` are.
    """
    is_self = i == queries[:, None]
    is_self[~is_self.any(1), -1] = True
    shape = (len(i), i.shape[1] - 1)
    return d[~is_self].reshape(shape), i[~is_self].reshape(shape)


class EmbeddingNeighbors(BaseEstimator):
    """Nearest reference embeddings of query embeddings, exact or with faiss.

    The retrieval step after an embedder: ``fit`` stores a gallery of
    embeddings (the index), ``kneighbors`` returns the nearest ones of each
    query as scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors` does.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours ``kneighbors`` returns by default.
    distance : str or torch.nn.Module, default="euclidean"
        A name of :data:`skmeta.distances.DISTANCES` or a distance module
        (exact search only); smaller means closer. faiss algorithms take
        ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
    algorithm : {"exact", "faiss-flat", "faiss-ivf", "faiss-hnsw"}, \
            default="exact"
        ``"exact"``: chunked search in torch, ties to the lower index.
        ``"faiss-flat"``: faiss's exact search in float32. ``"faiss-ivf"``,
        ``"faiss-hnsw"``: faiss's approximate indexes, for large galleries.
    algorithm_params : dict or None, default=None
        Overrides of the algorithm's parameters, :data:`ALGORITHMS`:
        ``"faiss-ivf"`` takes ``nlist`` (k-means cells, default
        ``round(sqrt(n_references))``) and ``nprobe`` (cells visited per
        query, default 64); ``"faiss-hnsw"`` takes ``M`` (graph degree, 32),
        ``ef_construction`` (40) and ``ef_search`` (128, raised to
        ``n_neighbors`` where smaller).
    chunk_size : int or None, default=None
        Number of queries searched at once. ``None`` picks the largest chunk
        whose exact search works in about 64 MB.

    Attributes
    ----------
    n_features_in_ : int
        Embedding dimension of the references.
    n_samples_fit_ : int
        Number of references.
    distance_ : torch.nn.Module
        The distance module of exact search (also set for faiss).

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : The same interface, exact search
        with scikit-learn's metrics.
    skmeta.metrics.retrieval_scores : Retrieval metrics over this search.

    Notes
    -----
    A saved estimator carries its index: :func:`skmeta.persistence.save`
    writes the references, or a faiss index as the bytes of
    ``faiss.serialize_index``, as raw arrays (pickle too), and
    :func:`skmeta.persistence.load` checks them before faiss reads them.

    ``"euclidean"`` and ``"sqeuclidean"`` neighbours are ranked by the
    squared distance, centred on the references' mean as
    :mod:`skmeta.distances` centres, with one matrix product a block; the
    Euclidean distance is its root: a query equal to a reference is at 0,
    not at the 1e-6 to which :class:`skmeta.distances.Euclidean` clamps for
    its gradient.

    References
    ----------
    .. [1] J. Johnson, M. Douze, H. Jégou. "Billion-scale similarity search
       with GPUs". IEEE Transactions on Big Data, 2019 (faiss).
    .. [2] H. Jégou, M. Douze, C. Schmid. "Product quantization for nearest
       neighbor search". IEEE TPAMI 33(1), 2011 (the inverted file).
    .. [3] Y. A. Malkov, D. A. Yashunin. "Efficient and robust approximate
       nearest neighbor search using Hierarchical Navigable Small World
       graphs". IEEE TPAMI 42(4), 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.neighbors import EmbeddingNeighbors
    >>> gallery = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> nn = EmbeddingNeighbors(n_neighbors=2).fit(gallery)
    >>> distances, indices = nn.kneighbors([[0.9, 0.0]])
    >>> indices
    array([[1, 0]])
    >>> distances.round(2)
    array([[0.1, 0.9]])
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "distance": [str, torch.nn.Module],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "algorithm_params": [dict, None],
        "chunk_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_neighbors=5,
        *,
        distance="euclidean",
        algorithm="exact",
        algorithm_params=None,
        chunk_size=None,
    ):
        self.n_neighbors = n_neighbors
        self.distance = distance
        self.algorithm = algorithm
        self.algorithm_params = algorithm_params
        self.chunk_size = chunk_size

    def _validated_params(self):
        """The algorithm's parameters, checked with the distance.

        Returns :data:`ALGORITHMS`' entry updated by ``algorithm_params``, each
        value an int >= 1 (``nlist`` also None); raises ValueError naming the
        key or the distance otherwise (see :meth:`fit`).
        """
        params = dict(ALGORITHMS[self.algorithm])
        unknown = set(self.algorithm_params or {}) - set(params)
        if unknown:
            raise ValueError(
                f"algorithm_params for algorithm={self.algorithm!r} take "
                f"{sorted(params) or 'no keys'}; got {sorted(unknown)}."
            )
        params.update(self.algorithm_params or {})
        for key, value in params.items():
            if (value is None and key == "nlist") or is_count(value):
                continue
            raise ValueError(
                f"algorithm_params[{key!r}] must be an int >= 1"
                f"{' or None' if key == 'nlist' else ''}; got {value!r}."
            )
        if self.algorithm != "exact" and self.distance not in _FAISS_DISTANCES:
            raise ValueError(
                f"algorithm={self.algorithm!r} takes distance in "
                f"{list(_FAISS_DISTANCES)}; got {self.distance!r}."
            )
        return params

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Store the reference embeddings ``X`` (build the index).

        Parameters
        ----------
        X : array-like of shape (n_references, n_features)
            Reference embeddings; float32 stays float32 (no copy).
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self : EmbeddingNeighbors

        Raises
        ------
        ValueError
            If ``X`` is not 2-D, empty or not finite, a parameter is out of
            range, ``algorithm_params`` has a key the algorithm does not
            take or a value that is not an int >= 1, or a faiss algorithm is
            given a distance faiss lacks.
        ImportError
            If a faiss algorithm is asked for and faiss is not installed.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        params = self._validated_params()
        distance_ = get_distance(self.distance, X.shape[1])
        if self.algorithm == "exact":
            index = self._exact_index(X, distance_)
        else:
            index = _FaissIndex(X, self.distance, self.algorithm, params)
        self.distance_, self._index = distance_, index
        self.n_samples_fit_ = X.shape[0]
        return self

    def _index_arrays(self):
        """The fitted index as arrays, for saving without pickle.

        ``{"reference": X}`` for exact search (the references as fitted),
        ``{"faiss_index": uint8 array}`` (``faiss.serialize_index``) for
        faiss. :meth:`_load_index_arrays` restores it.
        """
        check_is_fitted(self)
        if isinstance(self._index, _ExactIndex):
            return {"reference": self._index.reference}
        return {"faiss_index": self._index.to_bytes()}

    def _exact_index(self, X, distance_):
        if self.distance in ("euclidean", "sqeuclidean"):
            return _SquaredL2Index(X, distance_, root=self.distance == "euclidean")
        return _ExactIndex(X, distance_)

    def _load_index_arrays(self, arrays):
        """Restore the index from :meth:`_index_arrays`' output, checked.

        The estimator has the parameters it was fitted with and its
        ``n_samples_fit_`` and ``n_features_in_``; this sets ``distance_``
        and the index as :meth:`fit` would. The arrays may come from an
        untrusted file: each is checked before it is used, a faiss index
        before faiss reads it (:func:`_check_faiss_bytes`), so that a
        corrupted one is a ValueError rather than a crash of faiss.

        Parameters
        ----------
        arrays : dict of str to ndarray
            ``{"reference": float32 or float64 (n_samples_fit_,
            n_features_in_)}`` for ``algorithm="exact"``, ``{"faiss_index":
            1-D uint8}`` otherwise.

        Raises
        ------
        ValueError
            If a parameter is invalid (as in :meth:`fit`), the arrays are not
            the one ``algorithm`` keeps, the references are not finite or of
            another shape or dtype, or the faiss index is not one that
            :meth:`fit` builds over ``n_samples_fit_`` references of
            ``n_features_in_`` features with this ``distance``.
        ImportError
            If the index is faiss's and faiss is not installed.
        """
        params = self._validated_params()
        exact = self.algorithm == "exact"
        name = "reference" if exact else "faiss_index"
        if list(arrays) != [name]:
            raise ValueError(
                f"algorithm={self.algorithm!r} keeps its index in one array, "
                f"{name!r}; got {sorted(arrays)}."
            )
        array, shape = arrays[name], (self.n_samples_fit_, self.n_features_in_)
        if exact:
            if array.dtype not in (np.float32, np.float64) or array.shape != shape:
                raise ValueError(
                    f"expected float32 or float64 of shape {shape} "
                    f"(n_samples_fit_, n_features_in_); got {array.dtype} of "
                    f"shape {array.shape}."
                )
            if not _all_finite(array):
                raise ValueError("not all finite, as fit requires.")
        elif array.dtype != np.uint8 or array.ndim != 1:
            raise ValueError(
                f"expected 1-D uint8 bytes; got {array.dtype} of shape {array.shape}."
            )
        else:
            _check_faiss_bytes(array, self.algorithm, self.distance, *shape)
        distance_ = get_distance(self.distance, self.n_features_in_)
        if exact:
            index = self._exact_index(array, distance_)
        else:
            try:
                index = _FaissIndex.from_bytes(
                    array, self.distance, self.algorithm, params
                )
            except RuntimeError as error:  # what faiss raises reading an index
                raise ValueError(f"faiss cannot read it: {error}") from error
        self.distance_, self._index = distance_, index

    def _search(self, X, k, queries=None):
        """``k`` nearest of one chunk ``X``, excluding ``queries`` (own indices)."""
        block = _block_rows(len(X), self.n_samples_fit_, k + 1)
        if queries is None:
            return self._index.search(X, k, block)
        d, i = self._index.search(X, k + 1, block)
        return _without_self(d, i, queries)

    def _chunk_rows(self, n_queries, k):
        """Queries per chunk by default, keeping ``k`` neighbours each.

        faiss reads all references once per call and bounds its own working
        memory: its chunks are bounded by their ``(chunk, k)`` results only.
        """
        if self.algorithm == "exact":
            return _chunk_rows(n_queries, self.n_samples_fit_, k)
        return max(1, min(n_queries, _MEMORY_BUDGET // _BYTES_PER_ENTRY // k))

    def _chunks(self, n_queries, k):
        """Slices of at most the chunk size over ``n_queries`` queries."""
        chunk = self.chunk_size or self._chunk_rows(n_queries, k + 1)
        return (slice(s, min(s + chunk, n_queries)) for s in range(0, n_queries, chunk))

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Nearest references of each query, nearest first.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features) or None, default=None
            Query embeddings. ``None`` queries every reference with itself
            excluded (leave-one-out), as scikit-learn does.
        n_neighbors : int or None, default=None
            Number of neighbours; ``None`` means ``self.n_neighbors``.
        return_distance : bool, default=True
            Whether to return the distances too.

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors), float64
            Distances to the neighbours, as ``distance`` defines them
            (Euclidean: not squared). Only when ``return_distance``.
        indices : ndarray of shape (n_queries, n_neighbors), int64
            Row indices of the neighbours in the references. An approximate
            faiss index that finds fewer gives ``-1`` (distance ``inf``).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            If ``X`` is not 2-D, not finite, or has another number of features
            than the references, or ``n_neighbors`` is not an int in
            ``[1, n_references]`` (``n_references - 1`` when ``X`` is None).
        """
        check_is_fitted(self)
        n_neighbors = self.n_neighbors if n_neighbors is None else n_neighbors
        available = self.n_samples_fit_ - (X is None)
        if not is_count(n_neighbors, high=available):
            raise ValueError(
                f"n_neighbors must be an int in [1, {available}] (the references"
                f"{' other than the query' if X is None else ''}); "
                f"got {n_neighbors!r}."
            )
        loo = X is None
        if not loo:
            X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        n_queries = self.n_samples_fit_ if loo else len(X)
        distances = np.empty((n_queries, n_neighbors))
        indices = np.empty((n_queries, n_neighbors), dtype=np.int64)
        for rows in self._chunks(n_queries, n_neighbors):
            if loo:
                own = np.arange(rows.start, rows.stop)
                d, i = self._search(self._index.rows(rows), n_neighbors, own)
            else:
                d, i = self._search(X[rows], n_neighbors)
            distances[rows], indices[rows] = d, i
        return (distances, indices) if return_distance else indices
