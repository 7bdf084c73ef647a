"""Few-shot classifiers on features far from the origin, in float32.

Features with a large common offset (pretrained embeddings, raw sensor
values) must be compared as well as near the origin: the nearest-prototype
rule of :class:`PrototypicalClassifier` with an identity backbone is
scikit-learn's :class:`~sklearn.neighbors.NearestCentroid`, whatever the
offset. The squared distance taken as ``|a|^2 - 2 a.b + |b|^2`` without
centring lost the differences from an offset of about 1e4 (training accuracy
0.96 at 1e4, 0.045 at 1e5 and 0.035 at 1e6 on these data).
"""

import numpy as np
import pytest
from sklearn.neighbors import NearestCentroid

from skmeta import MatchingClassifier, PrototypicalClassifier
from skmeta.distances import DISTANCES

OFFSETS = [0.0, 1e3, 1e4, 1e5, 1e6]
UNTRAINED = dict(backbone="identity", max_epochs=0, random_state=0)


def well_separated(offset, n_classes=20, n_per_class=10, dim=8, seed=0):
    """20 classes x 10 samples in float32, class means 10 apart, plus offset.

    The class means are orthogonal to the offset direction (1, ..., 1), so
    that cosine distances, which see only directions, separate them too.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 10.0, (n_classes, dim))
    means -= means.mean(axis=1, keepdims=True)
    noise = rng.normal(0.0, 1.0, (n_classes, n_per_class, dim))
    X = (means[:, None, :] + noise).reshape(-1, dim) + offset
    return X.astype(np.float32), np.repeat(np.arange(n_classes), n_per_class)


@pytest.mark.parametrize("offset", OFFSETS)
def test_the_reference_nearest_centroid_is_right_at_every_offset(offset):
    X, y = well_separated(offset)
    assert NearestCentroid().fit(X, y).score(X, y) == 1.0


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("distance", sorted(DISTANCES))
def test_prototypical_training_accuracy_does_not_depend_on_an_offset(distance, offset):
    X, y = well_separated(offset)
    clf = PrototypicalClassifier(distance=distance, **UNTRAINED).fit(X, y)
    predicted = clf.predict(X)
    np.testing.assert_array_equal(predicted, y)
    if distance in ("sqeuclidean", "euclidean"):  # the same rule as sklearn's
        reference = NearestCentroid().fit(X, y).predict(X)
        np.testing.assert_array_equal(predicted, reference)


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize(
    "distance", sorted(set(DISTANCES) - {"cosine"})
)  # cosine: see below
def test_matching_training_accuracy_does_not_depend_on_an_offset(distance, offset):
    X, y = well_separated(offset)
    clf = MatchingClassifier(distance=distance, **UNTRAINED).fit(X, y)
    assert clf.score(X, y) == 1.0


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e4])
def test_matching_cosine_attention_resolves_offsets_to_1e4(offset):
    # Cosine similarities are not translation invariant: with an offset c
    # they all tend to 1, apart by about (spread / c)^2 (1e-6 at 1e4 here).
    # Divided by the temperature 0.1, differences below float32's 1e-7 at 1
    # leave the attention uniform: from 1e5 that is the model, not rounding.
    X, y = well_separated(offset)
    assert MatchingClassifier(**UNTRAINED).fit(X, y).score(X, y) == 1.0


@pytest.mark.parametrize("scale", [1e19, 1e-30])
def test_prototypical_cosine_sees_directions_of_huge_and_tiny_features(scale):
    # |x|^2 overflows float32 at 1e19 and underflows at 1e-30
    X, y = well_separated(0.0)
    clf = PrototypicalClassifier(distance="cosine", **UNTRAINED).fit(X * scale, y)
    np.testing.assert_array_equal(clf.predict(X * scale), y)
    np.testing.assert_allclose(
        clf.decision_function(X * scale),
        PrototypicalClassifier(distance="cosine", **UNTRAINED)
        .fit(X, y)
        .decision_function(X),
        rtol=1e-5,
        atol=1e-6,
    )
