"""Specifications of the retrieval metrics in skmeta.metrics."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, KFold

import skmeta.neighbors
from skmeta.distances import Mahalanobis
from skmeta.metrics import (
    METRICS,
    mean_average_precision_at_r,
    precision_at_1,
    r_precision,
    retrieval_scorer,
    retrieval_scores,
)


def brute_force(X, y, distance="euclidean", ref=None, y_ref=None, ks=()):
    """Musgrave et al.'s definitions (and recall@k), one query at a time, in
    plain Python: leave-one-out without ``ref``, queries ``X`` against ``ref``
    with it."""
    X = np.asarray(X, dtype=float)
    loo = ref is None
    ref, y_ref = (X, list(y)) if loo else (np.asarray(ref, dtype=float), list(y_ref))
    p1, rp, ap, recall = [], [], [], {k: [] for k in ks}
    for q in range(len(X)):
        if distance == "euclidean":
            d = [float(np.sqrt(((X[q] - r) ** 2).sum())) for r in ref]
        else:  # cosine
            d = [
                1 - float(X[q] @ r) / np.linalg.norm(X[q]) / np.linalg.norm(r)
                for r in ref
            ]
        candidates = (j for j in range(len(ref)) if not (loo and j == q))
        others = sorted(candidates, key=lambda j: (d[j], j))
        R = sum(1 for j in others if y_ref[j] == y[q])
        if R == 0:
            continue
        rel = [y_ref[j] == y[q] for j in others]
        p1.append(float(rel[0]))
        rp.append(sum(rel[:R]) / R)
        ap.append(sum(sum(rel[: k + 1]) / (k + 1) for k in range(R) if rel[k]) / R)
        for k in ks:
            recall[k].append(float(any(rel[:k])))
    return [np.mean(p1), np.mean(rp), np.mean(ap)] + [np.mean(recall[k]) for k in ks]


# Points on a line (1 feature):
#   index:  0    1    2    3    4    5
#   x:      0    1    1.5  3    3.2  100
#   label:  A    A    B    A    B    C  (C is alone: R = 0, excluded)
LINE_X = [[0.0], [1.0], [1.5], [3.0], [3.2], [100.0]]
LINE_Y = ["A", "A", "B", "A", "B", "C"]


def test_hand_computed_line_example():
    # q0 (A): neighbours 1A, 2B, ...; R=2, rel=[1,0] -> p1 1, rp 1/2, AP 1/2.
    # q1 (A): 2B, 0A, ...;       R=2, rel=[0,1] -> p1 0, rp 1/2, AP 1/4.
    # q2 (B): 1A, 0A, 3A, 4B;    R=1, rel=[0]   -> 0, 0, 0.
    # q3 (A): 4B, 2B, 1A, 0A;    R=2, rel=[0,0] -> 0, 0, 0.
    # q4 (B): 3A, 2B, ...;       R=1, rel=[0]   -> 0, 0, 0.
    # q5 (C): R=0, excluded. Means over 5 queries.
    scores = retrieval_scores(LINE_X, LINE_Y)
    assert scores == pytest.approx(
        {"precision_at_1": 1 / 5, "r_precision": 1 / 5, "map_at_r": 0.75 / 5}
    )
    assert precision_at_1(LINE_X, LINE_Y) == pytest.approx(0.2)
    assert r_precision(LINE_X, LINE_Y) == pytest.approx(0.2)
    assert mean_average_precision_at_r(LINE_X, LINE_Y) == pytest.approx(0.15)


def test_map_at_r_rewards_ranking_while_r_precision_does_not():
    X = [[0.0], [1.0], [2.0], [3.0]]
    y = ["A", "A", "B", "A"]
    # q0 (A): 1A, 2B, 3A; R=2, rel=[1,0] -> rp 1/2, AP 1/2.
    # q1 (A): 0A and 2B tie at 1 (0 first), 3A; rel=[1,0] -> rp 1/2, AP 1/2.
    # q2 (B): R=0, excluded.
    # q3 (A): 2B, 1A, 0A; rel=[0,1] -> rp 1/2, AP (1/2)(1/2) = 1/4.
    scores = retrieval_scores(X, y)
    assert scores["precision_at_1"] == pytest.approx(2 / 3)
    assert scores["r_precision"] == pytest.approx(1 / 2)
    assert scores["map_at_r"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 4) / 3)


def test_perfectly_separated_clusters_score_one():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]])
    y = np.repeat(np.arange(4), 6)
    X = centres[y] + rng.normal(size=(24, 2))
    assert retrieval_scores(X, y) == {
        "precision_at_1": 1.0,
        "r_precision": 1.0,
        "map_at_r": 1.0,
    }


def test_ties_go_to_the_lower_sample_index():
    # Query 0 at x=0 has neighbours at distance 1 on both sides.
    # Layout 1: index 1 is B, index 2 is A -> B ranks first.
    #   q0 rel [0]; q1 (B, R=1): 0A first -> 0; q2 (A): 0A -> 1; q3 (B): 2A -> 0.
    assert precision_at_1([[0.0], [-1.0], [1.0], [10.0]], list("ABAB")) == 0.25
    # Layout 2: same points with labels of 1 and 2 swapped -> A ranks first.
    #   q0 -> 1; q1 (A): 0A -> 1; q2 (B): 0A -> 0; q3 (B): 1A -> 0.
    assert precision_at_1([[0.0], [1.0], [-1.0], [10.0]], list("AABB")) == 0.5


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_agrees_with_brute_force(distance, chunk_size):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 6, size=40)
    y[0] = 99  # a lone label, excluded
    expected = brute_force(X, y, distance)
    scores = retrieval_scores(X, y, distance=distance, chunk_size=chunk_size)
    assert [scores["precision_at_1"], scores["r_precision"], scores["map_at_r"]] == (
        pytest.approx(list(expected))
    )


def test_agrees_with_brute_force_under_many_ties():
    # Ties between duplicates of 5 distinct points, whose computed distances
    # are equal; distinct points at equal exact distances (points of a grid)
    # are ordered by the rounding of the distance computation, not by index.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 2))[rng.integers(0, 5, size=30)]
    y = rng.integers(0, 3, size=30)
    scores = retrieval_scores(X, y, chunk_size=4)
    expected = brute_force(X, y)
    assert [scores["precision_at_1"], scores["r_precision"], scores["map_at_r"]] == (
        pytest.approx(list(expected))
    )


def test_accepts_a_distance_module_and_any_hashable_labels():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 4)).tolist()
    y_int = [i % 3 for i in range(20)]
    y_str = [f"cls{i % 3}" for i in range(20)]
    y_tuple = np.empty(20, dtype=object)  # 1-D array of tuples
    y_tuple[:] = [("cls", i % 3) for i in range(20)]
    reference = retrieval_scores(X, y_int)
    assert retrieval_scores(X, y_str) == reference
    assert retrieval_scores(X, y_tuple) == reference
    # An untrained Mahalanobis distance is the squared Euclidean one, which
    # ranks neighbours as the Euclidean one does.
    assert retrieval_scores(X, y_int, distance=Mahalanobis(4)) == pytest.approx(
        reference
    )
    assert retrieval_scores(X, y_int, distance="sqeuclidean") == reference


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 5))
    y = rng.integers(0, 5, size=50)
    reference = retrieval_scores(X, y, chunk_size=50)
    for chunk_size in (1, 3, 49, 1000):
        scores = retrieval_scores(X, y, chunk_size=chunk_size)
        assert scores == pytest.approx(reference, abs=1e-12)


def test_metric_errors_name_the_parameter():
    X = np.zeros((4, 2))
    y = [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"embeddings must be 2-D.*got shape \(4,\)"):
        precision_at_1(np.zeros(4), y)
    with pytest.raises(ValueError, match="embeddings must be finite"):
        r_precision(np.full((4, 2), np.nan), y)
    with pytest.raises(TypeError, match="embeddings must be an array-like of floats"):
        r_precision([["a", "b"]] * 4, y)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\).*\(3,\)"):
        mean_average_precision_at_r(X, y[:3])
    with pytest.raises(
        ValueError, match="chunk_size must be None or an int >= 1; got 0"
    ):
        retrieval_scores(X, y, chunk_size=0)
    with pytest.raises(ValueError, match="Unknown distance 'l2'"):
        retrieval_scores(X, y, distance="l2")
    with pytest.raises(ValueError, match=r"R > 0\); got none"):
        retrieval_scores(X, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="given together; got only reference_labels"):
        retrieval_scores(X, y, reference_labels=y)
    with pytest.raises(ValueError, match=r"features of query_embeddings \(2\); got 3"):
        retrieval_scores(X, y, np.zeros((4, 3)), y)
    with pytest.raises(ValueError, match=r"reference_labels must have shape \(4,\)"):
        retrieval_scores(X, y, X, y[:2])
    with pytest.raises(ValueError, match=r"k must be None or ints in \[1, 3\]"):
        retrieval_scores(X, y, k=4)  # leave-one-out: 3 others
    with pytest.raises(ValueError, match=r"k must be None or ints in \[1, 4\]"):
        retrieval_scores(X, y, X, y, k=[1, 0])
    with pytest.raises(TypeError, match="k must be None, an int or a sequence"):
        retrieval_scores(X, y, k=1.5)
    with pytest.raises(ValueError, match=r"k must be None or ints in \[1, 3\]"):
        retrieval_scores(X, y, k=[True])  # a bool is not a count
    with pytest.raises(ValueError, match="chunk_size must be None or an int >= 1"):
        retrieval_scores(X, y, chunk_size=True)
    # numpy ints are counts.
    assert "recall_at_2" in retrieval_scores(X, y, k=np.int64(2), chunk_size=np.int8(2))


def test_recall_at_k_by_hand_on_the_line():
    # Nearest others (see test_hand_computed_line_example), queries with R > 0:
    # q0 (A): 1A       -> recall@1 1, @2 1, @4 1
    # q1 (A): 2B, 0A   -> 0, 1, 1
    # q2 (B): 1A, 0A, 3A, 4B -> 0, 0, 1
    # q3 (A): 4B, 2B, 1A     -> 0, 0, 1
    # q4 (B): 3A, 2B   -> 0, 1, 1
    scores = retrieval_scores(LINE_X, LINE_Y, k=[1, 2, 4])
    assert list(scores) == [
        "precision_at_1",
        "r_precision",
        "map_at_r",
        "recall_at_1",
        "recall_at_2",
        "recall_at_4",
    ]
    assert scores["recall_at_1"] == scores["precision_at_1"] == pytest.approx(0.2)
    assert scores["recall_at_2"] == pytest.approx(3 / 5)
    assert scores["recall_at_4"] == pytest.approx(1.0)
    assert retrieval_scores(LINE_X, LINE_Y, k=2)["recall_at_2"] == pytest.approx(0.6)


def test_query_against_reference_by_hand():
    # Reference on a line: 0A 1A 1.5B 3A; queries at 0.9 (A), 1.6 (B), 50 (C).
    # q 0.9 (A): 1A, 1.5B, 0A, 3A; R=3, rel=[1,0,1] -> p1 1, rp 2/3,
    #   AP (1 + 2/3)/3 = 5/9; recall@2 1.
    # q 1.6 (B): 1.5B; R=1 -> 1, 1, 1; recall@2 1.
    # q 50 (C): no reference of label C: R=0, excluded.
    ref_X, ref_y = [[0.0], [1.0], [1.5], [3.0]], ["A", "A", "B", "A"]
    scores = retrieval_scores(
        [[0.9], [1.6], [50.0]], ["A", "B", "C"], ref_X, ref_y, k=2
    )
    assert scores == pytest.approx(
        {
            "precision_at_1": 1.0,
            "r_precision": (2 / 3 + 1) / 2,
            "map_at_r": (5 / 9 + 1) / 2,
            "recall_at_2": 1.0,
        }
    )
    # A query equal to a reference is not excluded: it finds itself, and
    # precision@1 is whether their labels agree (3 of 4 here).
    assert precision_at_1(ref_X, ["A", "B", "B", "A"], ref_X, ref_y) == 0.75


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_query_against_reference_agrees_with_brute_force(distance):
    rng = np.random.default_rng(7)
    ref, y_ref = rng.normal(size=(60, 3)), rng.integers(0, 5, size=60)
    X, y = rng.normal(size=(25, 3)), rng.integers(0, 6, size=25)  # 5: no match
    scores = retrieval_scores(X, y, ref, y_ref, distance=distance, k=(1, 5))
    expected = brute_force(X, y, distance, ref, y_ref, ks=(1, 5))
    assert list(scores.values()) == pytest.approx(expected)


def test_blocks_of_references_do_not_change_the_result(monkeypatch):
    # A 4096-entry budget: blocks of 1024 references, chunks of a few
    # queries; the k nearest are merged across blocks.
    rng = np.random.default_rng(8)
    ref, y_ref = rng.normal(size=(2500, 2)), rng.integers(0, 400, size=2500)
    X, y = rng.normal(size=(30, 2)), rng.integers(0, 400, size=30)
    expected = retrieval_scores(X, y, ref, y_ref, k=3)
    monkeypatch.setattr(skmeta.neighbors, "_MEMORY_BUDGET", 4096 * 64)
    assert retrieval_scores(X, y, ref, y_ref, k=3) == pytest.approx(expected)
    assert list(expected.values()) == pytest.approx(
        brute_force(X, y, "euclidean", ref, y_ref, ks=(3,))
    )


def test_float32_embeddings_score_as_their_float64_values():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=40)
    assert retrieval_scores(X, y, k=3) == retrieval_scores(X.astype(np.float64), y, k=3)


@pytest.mark.parametrize("algorithm", ["faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_faiss_search_scores_as_exact(algorithm):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(10)
    centres = rng.normal(scale=4.0, size=(20, 8))
    y_ref, y = np.repeat(np.arange(20), 30), np.repeat(np.arange(20), 3)
    ref = centres[y_ref] + rng.normal(size=(600, 8))
    X = centres[y] + rng.normal(size=(60, 8))
    for args in ((X, y), (X, y, ref, y_ref)):
        exact = retrieval_scores(*args, k=(1, 10))
        scores = retrieval_scores(*args, k=(1, 10), algorithm=algorithm)
        tolerance = 1e-12 if algorithm == "faiss-flat" else 0.01
        assert scores == pytest.approx(exact, abs=tolerance)


@pytest.mark.parametrize("reference", [False, True])
def test_equals_pytorch_metric_learning_accuracy_calculator(reference):
    accuracy = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    pytest.importorskip("faiss")  # its default k-nearest-neighbour search
    rng = np.random.default_rng(11)
    X = rng.normal(size=(80, 6)).astype(np.float32)
    y = rng.integers(0, 7, size=80)
    y[0] = 99  # a lone query label, excluded by both
    args = (X[:30], y[:30], X[30:], y[30:]) if reference else (X, y)
    ours = retrieval_scores(*args)
    calculator = accuracy.AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    theirs = calculator.get_accuracy(*args)
    assert ours == pytest.approx(
        {
            "precision_at_1": theirs["precision_at_1"],
            "r_precision": theirs["r_precision"],
            "map_at_r": theirs["mean_average_precision_at_r"],
        },
        abs=1e-12,
    )


# ---------------------------------------------------------------------------
# retrieval_scorer
# ---------------------------------------------------------------------------


class Identity(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)


def test_scorer_transforms_then_scores():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 3))
    y = rng.integers(0, 4, size=30)
    est = Identity().fit(X)
    for name, metric in METRICS.items():
        scorer = retrieval_scorer(name)
        assert scorer(est, X, y) == metric(X, y)
    cosine = retrieval_scorer("r_precision", distance="cosine")
    assert cosine(est, X, y) == r_precision(X, y, distance="cosine")


def test_scorer_pickles():
    scorer = pickle.loads(pickle.dumps(retrieval_scorer("precision_at_1")))
    X = np.array(LINE_X)
    assert scorer(Identity(), X, LINE_Y) == pytest.approx(0.2)
    assert "precision_at_1" in repr(scorer)


def test_grid_search_picks_the_embedding_that_retrieves_best():
    # Feature 0 carries the classes and most of the variance, feature 1 is
    # noise: PCA with one component keeps only the classes, with two it adds
    # the noise back.
    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(5), 12)
    X = np.column_stack([20.0 * y + rng.normal(size=60), rng.normal(scale=15, size=60)])
    search = GridSearchCV(
        PCA(),
        {"n_components": [2, 1]},
        scoring=retrieval_scorer("map_at_r"),
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X, y)
    assert search.best_params_ == {"n_components": 1}
    assert search.best_score_ == pytest.approx(1.0)
    assert search.cv_results_["mean_test_score"][0] < 0.9


def test_scorer_errors():
    with pytest.raises(ValueError, match=r"metric must be one of .*got 'recall'"):
        retrieval_scorer("recall")
    with pytest.raises(ValueError, match="chunk_size must be None or an int"):
        retrieval_scorer(chunk_size=-1)
    with pytest.raises(ValueError, match="Unknown distance"):
        retrieval_scorer(distance="hamming")
