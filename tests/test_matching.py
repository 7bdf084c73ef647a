"""Specification of MatchingClassifier (Vinyals et al., 2016)."""

import numpy as np
import pytest
import torch
from helpers import FEW_SHOT_TRAINED as FAST
from torch import nn

from skmeta import MatchingClassifier, PrototypicalClassifier
from skmeta.backbones import Conv4
from skmeta.distances import Manhattan
from skmeta.fewshot.matching import MatchingNetwork


@pytest.fixture(scope="module")
def fitted(digits):
    return MatchingClassifier(**FAST).fit(digits.X_base, digits.y_base)


@pytest.fixture(scope="module")
def fitted_fce(digits):
    return MatchingClassifier(fce=True, **FAST).fit(digits.X_base, digits.y_base)


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _tiny_fit(**params):
    """An identity-embedding classifier on 2-D data; nothing to train."""
    X = np.random.RandomState(0).normal(size=(12, 2)).astype(np.float32)
    return MatchingClassifier(backbone=nn.Identity(), max_epochs=0, **params).fit(
        X, np.repeat([0, 1], 6)
    )


# The math.


def test_identity_embedding_one_shot_predicts_the_cosine_nearest_example(digits):
    clf = MatchingClassifier(backbone=nn.Identity(), **FAST).fit(
        digits.X_base, digits.y_base
    )
    shots = [np.flatnonzero(digits.y_novel == c)[0] for c in np.unique(digits.y_novel)]
    X_s, y_s = digits.X_novel[shots], digits.y_novel[shots]
    clf.adapt(X_s, y_s)
    cosine = _unit(digits.X_novel) @ _unit(X_s).T
    np.testing.assert_array_equal(
        clf.predict(digits.X_novel), y_s[cosine.argmax(axis=1)]
    )


def test_class_probability_is_the_attention_on_its_shots():
    # Two shots of "a" (cosine 0.6 with the query: the norm does not count),
    # one of "b" (cosine 0.8): P(a) = (e^0.6 + e^0.6) / (e^0.6 + e^0.6 + e^0.8).
    clf = _tiny_fit(temperature=1.0).adapt(
        [[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], ["a", "a", "b"]
    )
    query = np.array([[0.6, 0.8]], np.float32)
    e = np.exp([0.6, 0.6, 0.8])
    expected = np.array([[e[0] + e[1], e[2]]]) / e.sum()
    np.testing.assert_allclose(clf.predict_proba(query), expected, rtol=1e-5)
    np.testing.assert_allclose(
        clf.decision_function(query), np.log(expected[:, 1] / expected[:, 0]), 1e-5
    )
    assert clf.predict(query)[0] == "a"  # although the nearest shot is "b"'s


def test_temperature_divides_the_cosine():
    clf = _tiny_fit(temperature=0.5).adapt([[1.0, 0.0], [0.0, 1.0]], [0, 1])
    e = np.exp(np.array([0.6, 0.8]) / 0.5)
    np.testing.assert_allclose(
        clf.predict_proba([[0.6, 0.8]]), [e / e.sum()], rtol=1e-5
    )


def test_squared_euclidean_one_shot_equals_prototypical_networks(digits):
    # Snell et al. (2017, §2.4): with one shot per class the support sample
    # is the prototype, so the attention mass of a class is the softmax of
    # negative squared distances.
    shots = [np.flatnonzero(digits.y_novel == c)[0] for c in np.unique(digits.y_novel)]
    X_s, y_s = digits.X_novel[shots], digits.y_novel[shots]
    identity = dict(backbone=nn.Identity(), max_epochs=0)
    matching = MatchingClassifier(
        distance="sqeuclidean", temperature=1.0, **identity
    ).fit(digits.X_base, digits.y_base)
    proto = PrototypicalClassifier(**identity).fit(digits.X_base, digits.y_base)
    matching.adapt(X_s, y_s)
    proto.adapt(X_s, y_s)
    Xq = digits.X_novel[:50] / 16  # smaller distances: probabilities not all 0/1
    np.testing.assert_allclose(
        matching.predict_proba(Xq), proto.predict_proba(Xq), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_array_equal(
        matching.predict(digits.X_novel), proto.predict(digits.X_novel)
    )


def test_distance_module_gives_attention_by_negative_distance():
    net = MatchingNetwork(nn.Identity(), 2, temperature=2.0, distance=Manhattan())
    support = net.encode_support(
        torch.tensor([[0.0, 0.0], [3.0, 1.0]]), torch.tensor([0, 1])
    )
    attention = net.attention(support, torch.tensor([[1.0, 0.0]]))
    # L1 distances 1 and 3, divided by the temperature 2.
    e = torch.exp(-torch.tensor([1.0, 3.0]) / 2)
    torch.testing.assert_close(attention, (e / e.sum())[None])
    assert not torch.allclose(support.g.norm(dim=1), torch.ones(2))  # kept raw


@pytest.mark.parametrize("fce", [False, True])
def test_attention_weights_are_positive_and_sum_to_one(fce):
    torch.manual_seed(0)
    net = MatchingNetwork(nn.Identity(), 4, fce=fce, fce_steps=3)
    z = torch.randn(9, 4)
    support = net.encode_support(z[:6], torch.tensor([0, 0, 1, 1, 2, 2]))
    attention = net.attention(support, z[6:])
    assert attention.shape == (3, 6)
    assert torch.all(attention > 0)
    torch.testing.assert_close(attention.sum(1), torch.ones(3))
    # The class probabilities are the attention summed over each class's shots.
    torch.testing.assert_close(
        net.query_logits(support, z[6:]).exp(),
        attention.view(3, 3, 2).sum(2),
    )


@pytest.mark.parametrize("distance", [None, Manhattan()])
def test_attention_into_a_buffer_equals_the_softmax(distance):
    torch.manual_seed(0)
    net = MatchingNetwork(nn.Identity(), 5, temperature=0.1, distance=distance)
    z = torch.randn(40, 5)
    support = net.encode_support(z[:30], torch.arange(30) % 3)
    buffer = torch.full((10, 30), float("nan"))
    attention = net.attention(support, z[30:], out=buffer)
    assert attention.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(attention, net.attention(support, z[30:]))
    torch.testing.assert_close(
        net.query_logits(support, z[30:], out=buffer),
        net.query_logits(support, z[30:]),
    )


def test_attention_buffer_is_float32_under_autocast_and_does_not_overflow():
    # 100,000 equal similarities: their exp sum is 1e5, above float16's 65504.
    net = MatchingNetwork(nn.Identity(), 4)
    labels = torch.zeros(100_000, dtype=torch.long)
    support = net.encode_support(torch.ones(100_000, 4), labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention = net.attention(
            support, torch.ones(2, 4), out=torch.empty(2, 100_000)
        )
    torch.testing.assert_close(attention, torch.full((2, 100_000), 1e-5))


def test_predictions_do_not_depend_on_the_chunks_of_queries(digits):
    # 2**20 attention entries per chunk at least: 100 support samples give
    # chunks of batch_size queries; the last, shorter chunk uses the buffer's
    # first rows.
    clf = MatchingClassifier(backbone=nn.Identity(), max_epochs=0, batch_size=7)
    clf.fit(digits.X_base[:100], digits.y_base[:100])
    Xq = digits.X_novel[:30]
    whole = clf.set_params(batch_size=64).predict_proba(Xq)
    chunked = clf.set_params(batch_size=7).predict_proba(Xq)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_forward_returns_log_probabilities_of_the_query_rows():
    net = MatchingNetwork(nn.Identity(), 2, temperature=1.0)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.2, 1.0]])
    out = net(x, torch.tensor([0, 1, -1, -1]))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
    assert out.argmax(1).tolist() == [0, 1]
    assert MatchingClassifier._criterion is nn.NLLLoss


def test_predict_proba_rows_sum_to_one_and_agree_with_predict(fitted, digits):
    proba = fitted.predict_proba(digits.X_novel)
    assert proba.shape == (len(digits.X_novel), 5)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(
        fitted.classes_[proba.argmax(1)], fitted.predict(digits.X_novel)
    )


def test_support_set_keeps_every_sample_not_prototypes(fitted, digits):
    np.testing.assert_allclose(
        fitted.support_embeddings_, fitted.transform(digits.X_base), atol=1e-6
    )
    np.testing.assert_array_equal(
        fitted.classes_[fitted.support_labels_], digits.y_base
    )


# Full context embeddings.


def test_fce_support_embedding_depends_on_the_whole_support_set():
    torch.manual_seed(0)
    net = MatchingNetwork(nn.Identity(), 4, fce=True).eval()
    z = torch.randn(4, 4)
    y = torch.tensor([0, 0, 1, 1])
    g = net.encode_support(z, y).g
    z_other = z.clone()
    z_other[3] += 1.0
    g_other = net.encode_support(z_other, y).g
    assert not torch.allclose(g[0], g_other[0])  # x_0 unchanged, context changed
    without_fce = MatchingNetwork(nn.Identity(), 4).encode_support(z, y).g
    torch.testing.assert_close(without_fce, nn.functional.normalize(z, dim=1))


def test_fce_trains_its_lstms_and_changes_the_model(fitted_fce, fitted, digits):
    untrained = MatchingClassifier(fce=True, **{**FAST, "max_epochs": 0})
    untrained.fit(digits.X_base, digits.y_base)
    for name in ("support_lstm", "query_lstm"):
        trained = getattr(fitted_fce.module_, name).state_dict()
        initial = getattr(untrained.module_, name).state_dict()
        assert any(not torch.equal(trained[k], initial[k]) for k in trained)
    assert fitted.module_.support_lstm is None
    assert not np.allclose(
        fitted_fce.transform(digits.X_novel), fitted.transform(digits.X_novel)
    )
    assert not np.allclose(
        fitted_fce.predict_proba(digits.X_novel), fitted.predict_proba(digits.X_novel)
    )
    assert fitted_fce.score(digits.X_base, digits.y_base) > 0.8


# The estimator contract.


def test_transform_returns_the_context_free_embeddings(fitted, digits):
    Z = fitted.transform(digits.X_novel)
    assert Z.shape == (len(digits.X_novel), 64) and Z.dtype == np.float32
    assert fitted.get_feature_names_out().shape == (64,)


def test_images_get_conv4(tiny_images):
    X, y = tiny_images
    clf = MatchingClassifier(n_query=2, max_epochs=1, episodes_per_epoch=2)
    clf.set_params(random_state=0, fce=True).fit(X, y)
    assert isinstance(clf.module_.backbone, Conv4)
    assert clf.transform(X).shape == (40, 64)
    assert clf.predict(X).shape == (40,)


# Errors.


@pytest.mark.parametrize(
    ("name", "value"),
    [("temperature", 0), ("fce_steps", 0), ("fce", "yes"), ("distance", "hamming")],
)
def test_invalid_parameters(digits, name, value):
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        MatchingClassifier(**{name: value}).fit(digits.X_base, digits.y_base)


def test_adapt_with_another_feature_shape(fitted, digits):
    with pytest.raises(ValueError, match="features"):
        fitted.adapt(digits.X_novel[:, :10], digits.y_novel)


def test_fewer_classes_than_n_way(digits):
    with pytest.raises(ValueError, match="n_way=6 is more than the 5 classes"):
        MatchingClassifier(n_way=6, **FAST).fit(digits.X_base, digits.y_base)
