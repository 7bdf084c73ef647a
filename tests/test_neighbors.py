"""Specifications of skmeta.neighbors.EmbeddingNeighbors."""

import builtins
import pickle

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

import skmeta.neighbors
from skmeta.distances import Euclidean
from skmeta.neighbors import EmbeddingNeighbors

try:
    import faiss  # noqa: F401

    FAISS = ["faiss-flat", "faiss-ivf", "faiss-hnsw"]
except ImportError:
    FAISS = []

needs_faiss = pytest.mark.skipif(not FAISS, reason="faiss is not installed")


@parametrize_with_checks(
    [EmbeddingNeighbors()] + [EmbeddingNeighbors(algorithm=a) for a in FAISS]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


class RecordingEuclidean(Euclidean):
    """The Euclidean distance, recording the shapes it was called on."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, a, b):
        self.shapes.append((len(a), len(b)))
        return super().forward(a, b)


@pytest.mark.parametrize(
    "distance", ["euclidean", "sqeuclidean", "cosine", "manhattan"]
)
def test_exact_equals_scikit_learn_nearest_neighbors(distance):
    rng = np.random.default_rng(0)
    reference, queries = rng.normal(size=(300, 6)), rng.normal(size=(40, 6))
    expected = NearestNeighbors(n_neighbors=7, metric=distance).fit(reference)
    nn = EmbeddingNeighbors(7, distance=distance).fit(reference)
    for X in (queries, None):  # None: each reference, itself excluded
        d, i = nn.kneighbors(X)
        d_expected, i_expected = expected.kneighbors(X)
        assert d.shape == i.shape == (300 if X is None else 40, 7)
        np.testing.assert_array_equal(i, i_expected)
        np.testing.assert_allclose(d, d_expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(
        nn.kneighbors(queries, 3, return_distance=False),
        expected.kneighbors(queries, 3, return_distance=False),
    )


def test_exact_search_holds_a_chunk_times_a_block(monkeypatch):
    # A budget of 4096 entries: chunks of 5 queries see blocks of at most
    # 4096 // 5 - (k + 1) -> 1024 references (the floor), never all 3000.
    monkeypatch.setattr(skmeta.neighbors, "_MEMORY_BUDGET", 4096 * 64)
    rng = np.random.default_rng(1)
    reference, queries = rng.normal(size=(3000, 4)), rng.normal(size=(25, 4))
    distance = RecordingEuclidean()
    nn = EmbeddingNeighbors(4, distance=distance, chunk_size=5).fit(reference)
    d, i = nn.kneighbors(queries)
    assert max(a for a, _ in distance.shapes) == 5
    assert max(b for _, b in distance.shapes) == 1024
    d_expected, i_expected = (
        NearestNeighbors(n_neighbors=4).fit(reference).kneighbors(queries)
    )
    np.testing.assert_array_equal(i, i_expected)
    np.testing.assert_allclose(d, d_expected, rtol=1e-10)


def test_ties_go_to_the_lower_reference_index(monkeypatch):
    reference = np.zeros((2500, 2))
    reference[::2] = 1.0  # even indices at (1, 1), odd at (0, 0)
    # Leave-one-out: reference 0 skips itself; 2, 4 are the nearest others.
    i = EmbeddingNeighbors(2).fit(reference).kneighbors()[1]
    np.testing.assert_array_equal(i[:2], [[2, 4], [3, 5]])
    # Duplicates spread over blocks of 1024: the merge keeps index order.
    monkeypatch.setattr(skmeta.neighbors, "_MEMORY_BUDGET", 2048 * 64)
    nn = EmbeddingNeighbors(3, chunk_size=2).fit(reference)
    d, i = nn.kneighbors([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(i, [[1, 3, 5], [0, 2, 4]])
    np.testing.assert_array_equal(d, 0.0)  # no gradient clamp at 1e-6


def test_float32_references_are_kept_without_a_copy():
    reference = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    nn = EmbeddingNeighbors(2).fit(reference)
    assert nn._index_arrays()["reference"] is reference
    d, _ = nn.kneighbors(reference[:4])
    assert d.dtype == np.float64


def test_pickle_round_trip_of_the_exact_index():
    rng = np.random.default_rng(3)
    reference, queries = rng.normal(size=(100, 5)), rng.normal(size=(10, 5))
    nn = EmbeddingNeighbors(3, distance="cosine").fit(reference)
    loaded = pickle.loads(pickle.dumps(nn))
    for got, expected in zip(
        loaded.kneighbors(queries), nn.kneighbors(queries), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


@needs_faiss
@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
def test_faiss_flat_equals_exact_search(distance):
    rng = np.random.default_rng(4)
    reference, queries = rng.normal(size=(500, 8)), rng.normal(size=(30, 8))
    exact = EmbeddingNeighbors(5, distance=distance).fit(reference)
    flat = EmbeddingNeighbors(5, distance=distance, algorithm="faiss-flat")
    flat.fit(reference)
    for X in (queries, None):
        d, i = flat.kneighbors(X)
        d_exact, i_exact = exact.kneighbors(X)
        np.testing.assert_array_equal(i, i_exact)
        np.testing.assert_allclose(d, d_exact, rtol=1e-4, atol=1e-5)  # float32


def clusters(n_clusters, per_cluster, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_clusters, dim))
    y = np.repeat(np.arange(n_clusters), per_cluster)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


@needs_faiss
@pytest.mark.parametrize("algorithm", ["faiss-ivf", "faiss-hnsw"])
def test_approximate_indexes_find_most_exact_neighbours(algorithm):
    reference, _ = clusters(50, 40, 16, seed=5)
    queries, _ = clusters(50, 2, 16, seed=5)
    _, i_exact = EmbeddingNeighbors(10).fit(reference).kneighbors(queries)
    approx = EmbeddingNeighbors(10, algorithm=algorithm).fit(reference)
    _, i = approx.kneighbors(queries)
    found = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(i, i_exact, strict=True)]
    )
    assert found > 0.9


@needs_faiss
@pytest.mark.parametrize("algorithm", ["faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_faiss_index_survives_pickle_and_index_arrays(algorithm):
    reference, _ = clusters(10, 20, 8, seed=6)
    nn = (
        EmbeddingNeighbors(4, algorithm=algorithm, algorithm_params={"nprobe": 2})
        if algorithm == "faiss-ivf"
        else EmbeddingNeighbors(4, algorithm=algorithm)
    )
    nn.fit(reference)
    expected = nn.kneighbors(reference[:7])
    arrays = nn._index_arrays()
    assert arrays["faiss_index"].dtype == np.uint8
    loaded = pickle.loads(pickle.dumps(nn))
    restored = unfitted_like(nn)
    restored._load_index_arrays(arrays)
    for other in (loaded, restored):
        for got, want in zip(other.kneighbors(reference[:7]), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    if algorithm == "faiss-ivf":
        assert loaded._index.index.nprobe == 2


def unfitted_like(nn):
    """An estimator of ``nn``'s parameters and sizes, without its index: what
    skmeta.persistence.load builds before it restores the index."""
    restored = EmbeddingNeighbors(**nn.get_params())
    restored.n_samples_fit_ = nn.n_samples_fit_
    restored.n_features_in_ = nn.n_features_in_
    return restored


def small_faiss_indexes():
    """Fitted faiss indexes of 20 references of 4 features, and their bytes:
    each algorithm, the cosine distance, and inverted lists laid out sparse
    (most lists empty, faiss's "sprs" layout)."""
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(20, 4)).astype(np.float32)
    cases = [
        ("faiss-flat", "euclidean", None, reference),
        ("faiss-ivf", "euclidean", {"nlist": 4, "nprobe": 2}, reference),
        ("faiss-ivf", "cosine", {"nlist": 10}, np.repeat(reference[:2], 10, 0)),
        ("faiss-hnsw", "euclidean", {"M": 2}, reference),
    ]
    return [
        EmbeddingNeighbors(
            3, distance=distance, algorithm=algorithm, algorithm_params=params
        ).fit(X)
        for algorithm, distance, params, X in cases
    ]


@needs_faiss
@pytest.mark.parametrize(
    "nn",
    small_faiss_indexes() if FAISS else [],
    ids=lambda nn: f"{nn.algorithm}-{nn.distance}",
)
def test_a_corrupted_faiss_index_is_a_value_error_not_a_crash(nn):
    # Every length cut short, and a byte flipped at every third position
    # (headers, sizes, graph links, list ids, vectors): each is refused
    # before faiss reads it, or gives a search within the references.
    # (A crash of faiss would end the test process.)
    blob = nn._index_arrays()["faiss_index"]
    queries = np.random.default_rng(8).normal(size=(4, 4))
    for length in range(len(blob)):
        with pytest.raises(ValueError, match="not an index EmbeddingNeighbors"):
            unfitted_like(nn)._load_index_arrays({"faiss_index": blob[:length]})
    refused = 0
    for position in range(0, len(blob), 3):
        flipped = blob.copy()
        flipped[position] ^= 0xFF
        restored = unfitted_like(nn)
        try:
            restored._load_index_arrays({"faiss_index": flipped})
        except ValueError:
            refused += 1
            continue
        for X in (queries, None):
            d, i = restored.kneighbors(X)
            assert i.shape == (20 if X is None else 4, 3)
            assert np.all((i >= -1) & (i < 20))
            assert not np.isnan(d).any()
    assert 0 < refused < len(range(0, len(blob), 3))


@needs_faiss
def test_restored_index_must_fit_the_estimator():
    reference = np.random.default_rng(9).normal(size=(20, 4))
    flat = EmbeddingNeighbors(3, algorithm="faiss-flat").fit(reference)
    blob = flat._index_arrays()["faiss_index"]
    other = unfitted_like(flat)
    other.n_samples_fit_ = 19
    with pytest.raises(ValueError, match="ntotal=20.*expected .*ntotal=19"):
        other._load_index_arrays({"faiss_index": blob})
    cosine = unfitted_like(flat).set_params(distance="cosine")
    with pytest.raises(ValueError, match=r"the index is b'IxF2', expected b'IxFI'"):
        cosine._load_index_arrays({"faiss_index": blob})
    hnsw = unfitted_like(flat).set_params(algorithm="faiss-hnsw")
    with pytest.raises(ValueError, match=r"the index is b'IxF2', expected b'IHNf'"):
        hnsw._load_index_arrays({"faiss_index": blob})
    with pytest.raises(ValueError, match="one array, 'reference'; got.*faiss_index"):
        unfitted_like(flat).set_params(algorithm="exact")._load_index_arrays(
            {"faiss_index": blob}
        )


def test_restored_references_must_fit_the_estimator():
    reference = np.random.default_rng(10).normal(size=(20, 4))
    nn = EmbeddingNeighbors(3).fit(reference)
    with pytest.raises(ValueError, match=r"shape \(20, 4\).*got float64 of shape"):
        unfitted_like(nn)._load_index_arrays({"reference": reference[:, :3]})
    with pytest.raises(ValueError, match="got int64"):
        unfitted_like(nn)._load_index_arrays({"reference": np.zeros((20, 4), int)})
    reference[3, 1] = np.inf
    with pytest.raises(ValueError, match="not all finite"):
        unfitted_like(nn)._load_index_arrays({"reference": reference})


def test_errors_name_the_parameter(monkeypatch):
    reference = np.zeros((4, 2))
    nn = EmbeddingNeighbors(2).fit(reference)
    with pytest.raises(ValueError, match=r"n_neighbors must be an int in \[1, 4\]"):
        nn.kneighbors(reference, 5)
    with pytest.raises(ValueError, match=r"in \[1, 3\] \(the references other"):
        nn.kneighbors(None, 4)
    with pytest.raises(ValueError, match="2 features"):
        nn.kneighbors(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"take \['M', .*got \['nprobe'\]"):
        EmbeddingNeighbors(algorithm="faiss-hnsw", algorithm_params={"nprobe": 1}).fit(
            reference
        )
    for bad in ("lots", 0, True, 2.0):
        with pytest.raises(
            ValueError, match=r"algorithm_params\['nprobe'\] must be an int >= 1; "
        ):
            EmbeddingNeighbors(
                algorithm="faiss-ivf", algorithm_params={"nprobe": bad}
            ).fit(reference)
    with pytest.raises(ValueError, match="takes distance in .*got 'manhattan'"):
        EmbeddingNeighbors(algorithm="faiss-flat", distance="manhattan").fit(reference)
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        EmbeddingNeighbors(algorithm="faiss-flat").fit(reference)
