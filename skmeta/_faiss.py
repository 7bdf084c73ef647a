"""faiss indexes of EmbeddingNeighbors: built, searched, serialized, checked.

:class:`_FaissIndex` builds ``IndexFlat``, ``IndexIVFFlat`` or
``IndexHNSWFlat`` over the references and searches it; it pickles, and
saves, through ``faiss.serialize_index``. :func:`_check_faiss_bytes` reads
such bytes, which may come from an untrusted file, with the layout of
faiss's ``impl/index_write.cpp`` before faiss is given them, so that a
corrupted index is a ValueError rather than a crash or a read out of bounds.
faiss is imported only when an index is built or read (the ``faiss`` extra).
"""

import numpy as np

#: Distances faiss computes, by name.
_FAISS_DISTANCES = ("cosine", "euclidean", "sqeuclidean")


def _import_faiss(algorithm):
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            f"algorithm={algorithm!r} needs faiss: pip install faiss-cpu "
            "(or skmeta[faiss]); algorithm='exact' needs nothing more."
        ) from exc
    return faiss


class _FaissIndex:
    """A faiss index over the references; pickles through serialize_index."""

    def __init__(self, reference, distance, algorithm, params):
        faiss = _import_faiss(algorithm)
        self.distance, self.algorithm, self.params = distance, algorithm, params
        n, dim = reference.shape
        metric = faiss.METRIC_INNER_PRODUCT if distance == "cosine" else faiss.METRIC_L2
        if algorithm == "faiss-flat":
            index = faiss.IndexFlat(dim, metric)
        elif algorithm == "faiss-ivf":
            nlist = min(n, params["nlist"] or max(1, round(np.sqrt(n))))
            quantizer = faiss.IndexFlat(dim, metric)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
            index.cp.min_points_per_centroid = 1  # small sets: no warning
            index.nprobe = params["nprobe"]
            index.set_direct_map_type(faiss.DirectMap.Array)  # for rows()
        else:
            index = faiss.IndexHNSWFlat(dim, params["M"], metric)
            index.hnsw.efConstruction = params["ef_construction"]
        if not index.is_trained:
            # k-means on a fixed random sample of 64 references per cell
            # (faiss warns below 39).
            sample = np.random.default_rng(0).choice(n, min(n, 64 * nlist), False)
            index.train(self._as_float32(reference[np.sort(sample)]))
        for start in range(0, n, 2**16):  # float32 copies one block at a time
            index.add(self._as_float32(reference[start : start + 2**16]))
        self.index = index

    def _as_float32(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.distance == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(norms > 0, norms, 1)
        return x

    def rows(self, rows):
        """The references of the slice ``rows``, as stored (float32, unit
        norm for the cosine distance)."""
        return self.index.reconstruct_n(rows.start, rows.stop - rows.start)

    def search(self, queries, k, block=None):
        """``k`` nearest references (``-1`` and ``inf`` where none was found)."""
        if self.algorithm == "faiss-hnsw":
            self.index.hnsw.efSearch = max(self.params["ef_search"], k)
        d, i = self.index.search(self._as_float32(queries), k)
        d = d.astype(np.float64)
        if self.distance == "cosine":
            d = 1.0 - d
        elif self.distance == "euclidean":
            d = np.sqrt(np.maximum(d, 0.0))
        d[i < 0] = np.inf
        return d, i.astype(np.int64)

    def to_bytes(self):
        """The index as faiss serializes it, a uint8 array."""
        return _import_faiss(self.algorithm).serialize_index(self.index)

    @classmethod
    def from_bytes(cls, data, distance, algorithm, params):
        """The index that :meth:`to_bytes` gave ``data``, searching with
        ``params`` (``nprobe`` included)."""
        self = cls.__new__(cls)
        state = {"index": data, "distance": distance, "algorithm": algorithm}
        self.__setstate__({**state, "params": params})
        if algorithm == "faiss-ivf":
            self.index.nprobe = params["nprobe"]
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state["index"] = self.to_bytes()
        return state

    def __setstate__(self, state):
        faiss = _import_faiss(state["algorithm"])
        data = np.asarray(state["index"], dtype=np.uint8)
        self.__dict__.update(state, index=faiss.deserialize_index(data))


def _all_finite(array, block=2**20):
    """Whether every value of ``array`` is finite, ``block`` values at a time."""
    rows = max(1, block // max(1, int(np.prod(array.shape[1:]))))
    return all(
        np.isfinite(array[start : start + rows]).all()
        for start in range(0, len(array), rows)
    )


class _FaissReader:
    """A cursor over the bytes of a serialized faiss index.

    Each read is bounded by the bytes left, so that a corrupted size can
    never describe more data than the bytes hold. Values are little-endian,
    as faiss writes them on the platforms it supports.
    """

    def __init__(self, data):
        self.data, self.pos = data, 0

    def error(self, what):
        return ValueError(
            f"not an index EmbeddingNeighbors.fit builds here: {what} "
            f"(at byte {self.pos} of {len(self.data)})."
        )

    def array(self, dtype, count, what):
        """The next ``count`` values of ``dtype``, a view of the bytes."""
        dtype = np.dtype(dtype)
        if count * dtype.itemsize > len(self.data) - self.pos:
            raise self.error(f"{what}: {count} values run past the end")
        end = self.pos + count * dtype.itemsize
        values = self.data[self.pos : end].view(dtype)
        self.pos = end
        return values

    def scalar(self, dtype, what):
        return self.array(dtype, 1, what)[0].item()

    def vector(self, dtype, what):
        """A vector as faiss writes one: its size (uint64), then its values."""
        return self.array(dtype, self.scalar("<u8", f"the size of {what}"), what)

    def fourcc(self, expected, what):
        code = bytes(self.array("S4", 1, what)[0])
        if code != expected:
            raise self.error(f"{what} is {code!r}, expected {expected!r}")

    def header(self, metric, n, d, what):
        """``write_index_header``: d, ntotal, two unused, is_trained, metric."""
        got_d, got_n = self.scalar("<i4", what), self.scalar("<i8", what)
        self.array("<i8", 2, what)
        trained, got_metric = self.scalar("u1", what), self.scalar("<i4", what)
        if (got_d, got_n, trained, got_metric) != (d, n, 1, metric):
            raise self.error(
                f"{what} has d={got_d}, ntotal={got_n}, is_trained={trained}, "
                f"metric_type={got_metric}; expected d={d}, ntotal={n}, "
                f"is_trained=1, metric_type={metric}"
            )

    def flat(self, metric, n, d, what):
        """An ``IndexFlat`` of ``n`` finite vectors of ``d`` values."""
        self.fourcc(b"IxFI" if metric == 0 else b"IxF2", what)
        self.header(metric, n, d, what)
        vectors = self.vector("<f4", f"the vectors of {what}")
        if vectors.size != n * d or not _all_finite(vectors):
            raise self.error(
                f"{what} holds {vectors.size} values, expected {n * d} finite ones"
            )

    def ivf(self, metric, n, d):
        """An ``IndexIVFFlat`` with a direct map (rows() reconstructs)."""
        self.fourcc(b"IwFl", "the index")
        self.header(metric, n, d, "the index")
        nlist = self.scalar("<u8", "nlist")
        self.scalar("<u8", "nprobe")  # set from algorithm_params when loaded
        if not 1 <= nlist <= min(n, 2**31 - 1):
            raise self.error(f"nlist={nlist} cells for {n} references")
        self.flat(metric, nlist, d, "the coarse quantizer")
        if self.scalar("u1", "the direct map's type") != 1:
            raise self.error("the direct map is not an array (type 1)")
        direct = self.vector("<i8", "the direct map")
        self.fourcc(b"ilar", "the inverted lists")
        got = (self.scalar("<u8", "nlist"), self.scalar("<u8", "code size"))
        if got != (nlist, 4 * d) or len(direct) != n:
            raise self.error(
                f"inverted lists of (nlist, code size) {got} and a direct map of "
                f"{len(direct)}; expected {(nlist, 4 * d)} and {n}"
            )
        layout = bytes(self.array("S4", 1, "the lists' layout")[0])
        sizes = self.vector("<u8", "the lists' sizes")
        if layout == b"full" and len(sizes) == nlist:
            lists = np.arange(nlist, dtype=np.uint64)
        elif layout == b"sprs" and len(sizes) % 2 == 0:  # (list, size) pairs
            lists, sizes = sizes[0::2], sizes[1::2]
        else:
            raise self.error(f"{len(sizes)} sizes laid out as {layout!r}")
        if len(lists) and (lists.max() >= nlist or np.any(lists[1:] <= lists[:-1])):
            raise self.error(f"the lists are not increasing numbers below {nlist}")
        # The ids of the lists in order, and the direct map they imply: list
        # number << 32 | offset in the list, by id (faiss's lo_build).
        ids, located, total = np.empty(n, np.int64), np.empty(n, np.int64), 0
        for number, size in zip(lists.tolist(), sizes.tolist(), strict=True):
            if size > n - total:
                raise self.error(f"list {number} of {size} over {n} references")
            vectors = self.array("<f4", size * d, f"the vectors of list {number}")
            if not _all_finite(vectors):
                raise self.error(f"list {number} holds values that are not finite")
            ids[total : total + size] = self.array("<i8", size, f"ids of {number}")
            located[total : total + size] = (number << 32) + np.arange(size)
            total += size
        if total != n or not np.array_equal(np.sort(ids), np.arange(n)):
            raise self.error(f"the lists' ids are not the references 0 to {n - 1}")
        if not np.array_equal(direct[ids], located):
            raise self.error("the direct map disagrees with the lists")

    def hnsw(self, metric, n, d):
        """An ``IndexHNSWFlat``: a graph whose every link can be followed."""
        self.fourcc(b"IHNf", "the index")
        self.header(metric, n, d, "the index")
        self.vector("<f8", "assign_probas")  # read when adding only
        cum = self.vector("<i4", "cum_nneighbor_per_level").astype(np.int64)
        levels = self.vector("<i4", "levels").astype(np.int64)
        offsets = self.vector("<u8", "offsets")
        neighbors = self.vector("<i4", "neighbors")
        entry, max_level = self.scalar("<i4", "entry"), self.scalar("<i4", "level")
        self.array("<i4", 2, "efConstruction, efSearch")  # set at each search
        # upper_beam: 1 as faiss writes it (faiss < 1.9 sizes a search by it).
        if self.scalar("<i4", "upper_beam") != 1:
            raise self.error("upper_beam is not 1")
        self.flat(metric, n, d, "the storage")
        n_levels = len(cum) - 1
        if n_levels < 1 or cum[0] != 0 or np.any(np.diff(cum) < 0):
            raise self.error("cum_nneighbor_per_level is not 0 then non-decreasing")
        if len(levels) != n or levels.min() < 1 or levels.max() > n_levels:
            raise self.error(f"levels are not {n} values in [1, {n_levels}]")
        if len(offsets) != n + 1 or offsets.max() > len(neighbors):
            raise self.error(f"offsets are not {n + 1} values <= {len(neighbors)}")
        offsets = offsets.astype(np.int64)
        if (
            offsets[0] != 0
            or offsets[-1] != len(neighbors)
            or np.any(np.diff(offsets) != cum[levels])
        ):
            raise self.error("offsets do not follow the nodes' levels")
        if len(neighbors) and not -1 <= neighbors.min() <= neighbors.max() < n:
            raise self.error(f"a neighbour outside [-1, {n})")
        if not 0 <= entry < n or max_level != levels[entry] - 1:
            raise self.error(f"entry point {entry} at level {max_level}")
        # A node's links at level l lead to nodes at level l or above.
        for level in range(1, int(levels.max())):
            nodes = np.flatnonzero(levels > level)
            links = offsets[nodes, None] + np.arange(cum[level], cum[level + 1])
            linked = neighbors[links]
            if np.any(levels[linked[linked >= 0]] <= level):
                raise self.error(f"a link at level {level} to a node below it")


def _check_faiss_bytes(data, algorithm, distance, n, d):
    """Check a serialized faiss index before faiss reads it.

    ``data`` must be exactly the index :meth:`EmbeddingNeighbors.fit` builds
    for ``algorithm`` over ``n`` references of ``d`` features for
    ``distance``, as ``faiss.serialize_index`` writes it (the layout of
    faiss's ``impl/index_write.cpp``, unchanged from faiss 1.7 to 1.15): each
    size within the bytes left, every vector finite, and what a search
    follows (the IVF lists and direct map, the HNSW graph's links, levels
    and entry point) consistent, so that faiss reads and searches it without
    reading out of bounds.

    Raises
    ------
    ValueError
        Naming what is wrong and where, if anything is.
    """
    reader = _FaissReader(data)
    metric = 0 if distance == "cosine" else 1  # METRIC_INNER_PRODUCT, METRIC_L2
    if n < 1 or n * d * 4 > len(data):
        raise reader.error(f"{n} references of {d} float32 values cannot fit")
    if algorithm == "faiss-flat":
        reader.flat(metric, n, d, "the index")
    elif algorithm == "faiss-ivf":
        reader.ivf(metric, n, d)
    else:
        reader.hnsw(metric, n, d)
    if reader.pos != len(data):
        raise reader.error(f"{len(data) - reader.pos} bytes after the index")
