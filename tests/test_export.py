"""ONNX export: the graph run in ONNX Runtime gives the estimator's outputs."""

import json

import numpy as np
import pytest
from helpers import assert_same_weights, weights
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestCentroid
from torch import nn

from skmeta import (
    MAMLClassifier,
    MatchingClassifier,
    MetricEmbedder,
    PrototypicalClassifier,
    RelationClassifier,
    ReptileClassifier,
    TransferClassifier,
    TripletEmbedder,
)
from skmeta.export import to_onnx

pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

#: One training epoch of two episodes (or batches): the weights need not be
#: good, only fixed, for the graph to be compared with the estimator.
TINY = dict(max_epochs=1, episodes_per_epoch=2, random_state=0)
SMALL_CONV4 = dict(backbone_params=dict(hidden_channels=8, out_channels=8))


def _session(path):
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def _run(path, X):
    """The graph's output for X, and its metadata."""
    session = _session(str(path))
    (out,) = session.run(None, {"input": X})
    return out, session.get_modelmeta().custom_metadata_map


def _assert_serves(clf, path, X, rtol=0.0):
    """The file at ``path`` gives ``clf``'s scores and predictions on X[:1], X[:37]."""
    for n in (1, 37):
        scores, meta = _run(path, X[:n])
        assert scores.shape == (n, len(clf.classes_))
        np.testing.assert_allclose(
            scores, clf.decision_function(X[:n]), rtol=rtol, atol=1e-5
        )
        labels = np.asarray(json.loads(meta["classes"]))
        np.testing.assert_array_equal(labels[scores.argmax(1)], clf.predict(X[:n]))


@pytest.fixture(scope="module")
def digit_labels(digits):
    """The base digits' labels as strings: the metadata must carry them."""
    return np.char.add("digit-", digits.y_base.astype(str))


def test_embedder_graph_returns_the_embeddings_of_transform(digits, tmp_path):
    embedder = TripletEmbedder(max_epochs=1, batches_per_epoch=2, random_state=0)
    embedder.fit(digits.X_base, digits.y_base)
    path = tmp_path / "embedder.onnx"
    to_onnx(embedder, path)
    for n in (1, 37):
        z, meta = _run(path, digits.X_novel[:n])
        assert z.shape == (n, embedder.embedding_dim)
        np.testing.assert_allclose(z, embedder.transform(digits.X_novel[:n]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)  # normalised
    assert meta["output"] == "embeddings"
    assert meta["estimator"] == "TripletEmbedder"
    assert "classes" not in meta


def test_learned_mahalanobis_embeddings_are_projected_in_the_graph(digits, tmp_path):
    embedder = MetricEmbedder(
        loss="triplet",
        loss_params=dict(distance="mahalanobis"),
        max_epochs=1,
        batches_per_epoch=2,
        random_state=0,
    ).fit(digits.X_base, digits.y_base)
    to_onnx(embedder, tmp_path / "m.onnx")
    z, _ = _run(tmp_path / "m.onnx", digits.X_novel[:37])
    np.testing.assert_allclose(z, embedder.transform(digits.X_novel[:37]), atol=1e-5)


def test_prototypical_graph_scores_and_labels_on_tabular_data(
    digits, digit_labels, tmp_path
):
    clf = PrototypicalClassifier(**TINY).fit(digits.X_base, digit_labels)
    path = tmp_path / "proto.onnx"
    to_onnx(clf, path)
    _assert_serves(clf, path, digits.X_novel)
    _, meta = _run(path, digits.X_novel[:1])
    assert json.loads(meta["classes"]) == [f"digit-{d}" for d in range(5)]
    assert meta["output"] == "scores"


def test_prototypical_graph_on_conv4_images(tiny_images, tmp_path):
    X, y = tiny_images
    clf = PrototypicalClassifier(**TINY, **SMALL_CONV4, test_time_views=1).fit(X, y)
    to_onnx(clf, tmp_path / "conv4.onnx")
    # Squared distances of about 30: float32 rounding is relative to them.
    _assert_serves(clf, tmp_path / "conv4.onnx", X, rtol=1e-5)


def test_test_time_views_are_averaged_in_the_graph(tiny_images, tmp_path):
    X, y = tiny_images
    clf = PrototypicalClassifier(**TINY, **SMALL_CONV4, test_time_views=3).fit(X, y)
    to_onnx(clf, tmp_path / "views.onnx")
    _assert_serves(clf, tmp_path / "views.onnx", X, rtol=1e-5)
    # The views matter, so the comparison above can fail: queries embedded
    # without them score otherwise against the same prototypes.
    graph_scores = _run(tmp_path / "views.onnx", X[:5])[0]
    clf.set_params(test_time_views=1)
    assert not np.allclose(graph_scores, clf.decision_function(X[:5]), atol=1e-3)


@pytest.mark.parametrize(
    "params",
    [
        dict(distance="euclidean"),
        dict(distance="cosine"),
        dict(distance="mahalanobis"),
        dict(normalization="centered-l2"),
        dict(transductive_steps=2),
    ],
    ids=["euclidean", "cosine", "mahalanobis", "centered-l2", "transductive"],
)
def test_distances_and_normalizations_are_exported(digits, params, tmp_path):
    clf = PrototypicalClassifier(**TINY, **params).fit(digits.X_base, digits.y_base)
    to_onnx(clf, tmp_path / "p.onnx")
    _assert_serves(clf, tmp_path / "p.onnx", digits.X_novel)


@pytest.mark.parametrize("head", ["centroid", "logistic"])
def test_transfer_classifier_heads_are_exported(digits, head, tmp_path):
    clf = TransferClassifier(head=head, max_epochs=1, random_state=0)
    clf.fit(digits.X_base, digits.y_base)
    to_onnx(clf, tmp_path / "t.onnx")
    _assert_serves(clf, tmp_path / "t.onnx", digits.X_novel)


def test_an_export_after_adapt_carries_the_new_prototypes(digits, tmp_path):
    clf = PrototypicalClassifier(**TINY).fit(digits.X_base, digits.y_base)
    to_onnx(clf, tmp_path / "base.onnx")
    clf.adapt(digits.X_novel[:50], digits.y_novel[:50])
    to_onnx(clf, tmp_path / "novel.onnx")
    queries = digits.X_novel[50:]
    _assert_serves(clf, tmp_path / "novel.onnx", queries)
    _, meta = _run(tmp_path / "novel.onnx", queries[:1])
    assert json.loads(meta["classes"]) == [5, 6, 7, 8, 9]
    # The file written before adapt keeps the base classes' prototypes.
    base_scores, base_meta = _run(tmp_path / "base.onnx", queries[:37])
    assert json.loads(base_meta["classes"]) == [0, 1, 2, 3, 4]
    assert not np.allclose(base_scores, clf.decision_function(queries[:37]))


def test_two_classes_give_one_score_column_each(digits, tmp_path):
    two = digits.y_base < 2
    clf = PrototypicalClassifier(**TINY).fit(digits.X_base[two], digits.y_base[two])
    to_onnx(clf, tmp_path / "two.onnx")
    scores, _ = _run(tmp_path / "two.onnx", digits.X_novel[:37])
    assert scores.shape == (37, 2)
    # decision_function's binary form is the difference of the two logits.
    np.testing.assert_allclose(
        scores[:, 1] - scores[:, 0],
        clf.decision_function(digits.X_novel[:37]),
        atol=1e-5,
    )


def test_export_leaves_the_estimator_unchanged(tiny_images, tmp_path):
    X, y = tiny_images
    clf = PrototypicalClassifier(**TINY, **SMALL_CONV4, test_time_views=1).fit(X, y)
    before, mode, scores = weights(clf.module_), clf.module_.training, clf._logits(X)
    attributes = set(vars(clf))
    to_onnx(clf, tmp_path / "p.onnx")
    assert_same_weights(clf.module_, before)
    assert clf.module_.training == mode
    assert set(vars(clf)) == attributes
    np.testing.assert_array_equal(clf._logits(X), scores)


def test_manhattan_distance_is_refused_and_nothing_is_written(digits, tmp_path):
    # torch's exporter turns cdist(p=1) into sum((a - b) ** 1): no |.|.
    clf = PrototypicalClassifier(**TINY, distance="manhattan")
    clf.fit(digits.X_base, digits.y_base)
    with pytest.raises(RuntimeError, match="distance='manhattan'"):
        to_onnx(clf, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


class _FixedBatch(nn.Module):
    """A backbone that reads the batch size as a Python number (len)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 8)

    def forward(self, x):
        return self.linear(x.reshape(len(x), 64))


def test_a_batch_size_fixed_by_the_trace_is_caught(digits, tmp_path):
    embedder = MetricEmbedder(
        backbone=_FixedBatch(), max_epochs=1, batches_per_epoch=2, random_state=0
    ).fit(digits.X_base, digits.y_base)
    with pytest.raises(RuntimeError, match="batch"):
        to_onnx(embedder, tmp_path / "f.onnx")
    assert not (tmp_path / "f.onnx").exists()


@pytest.mark.parametrize(
    "cls", [MatchingClassifier, RelationClassifier, MAMLClassifier, ReptileClassifier]
)
def test_other_few_shot_classifiers_are_not_implemented(cls, tmp_path):
    with pytest.raises(NotImplementedError, match="PrototypicalClassifier"):
        to_onnx(cls(), tmp_path / "x.onnx")


def test_non_skmeta_estimators_and_unfitted_ones_are_refused(digits, tmp_path):
    fitted = NearestCentroid().fit([[0.0], [1.0], [2.0]], [0, 1, 1])
    with pytest.raises(TypeError, match="not an skmeta estimator"):
        to_onnx(fitted, tmp_path / "x.onnx")
    with pytest.raises(NotFittedError):
        to_onnx(PrototypicalClassifier(), tmp_path / "x.onnx")


@pytest.mark.parametrize(
    "opset, error", [(8, ValueError), (16.0, TypeError), (True, TypeError)]
)
def test_opset_is_checked(digits, opset, error, tmp_path):
    clf = PrototypicalClassifier(max_epochs=0).fit(digits.X_base, digits.y_base)
    with pytest.raises(error, match="opset"):
        to_onnx(clf, tmp_path / "x.onnx", opset=opset)


def test_an_explicit_opset_is_written(digits, tmp_path):
    import onnx

    clf = PrototypicalClassifier(max_epochs=0).fit(digits.X_base, digits.y_base)
    to_onnx(clf, tmp_path / "x.onnx", opset=17)
    model = onnx.load(tmp_path / "x.onnx")
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]
    _assert_serves(clf, tmp_path / "x.onnx", digits.X_novel)


def test_graph_input_has_a_free_batch_axis(tiny_images, tmp_path):
    import onnx

    X, y = tiny_images
    clf = PrototypicalClassifier(**TINY, **SMALL_CONV4, test_time_views=1).fit(X, y)
    to_onnx(clf, tmp_path / "p.onnx")
    (graph_input,) = onnx.load(tmp_path / "p.onnx").graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
