"""Specification of SemiSupervisedPrototypicalClassifier (Ren et al., 2018)."""

import copy
import math

import numpy as np
import pytest
import torch

from skmeta import PrototypicalClassifier, SemiSupervisedPrototypicalClassifier
from skmeta.distances import SquaredEuclidean
from skmeta.fewshot.semi_supervised import (
    SemiSupervisedPrototypicalNetwork,
    soft_kmeans_with_distractor,
    unlabelled_mask,
)

FAST = dict(max_epochs=2, episodes_per_epoch=5, random_state=0)


def _refine(prototypes, counts, z, log_scale=0.0, n_steps=1):
    return soft_kmeans_with_distractor(
        torch.tensor(prototypes, dtype=torch.float32),
        torch.tensor(counts),
        torch.tensor(z, dtype=torch.float32).reshape(-1, 2),
        SquaredEuclidean(),
        torch.tensor(log_scale),
        n_steps,
    ).numpy()


@pytest.fixture(scope="module")
def partly_labelled(digits):
    """The base digits with 60 % of their labels replaced by -1."""
    y = digits.y_base.copy()
    y[np.random.RandomState(0).rand(len(y)) < 0.6] = -1
    return digits.X_base, y


@pytest.fixture(scope="module")
def fitted(partly_labelled):
    return SemiSupervisedPrototypicalClassifier(**FAST).fit(*partly_labelled)


# The refinement, by hand.


def test_an_unlabelled_point_pulls_the_prototype_it_is_near():
    # Prototypes (0, 0) and (10, 0) of 1 shot; one unlabelled point (1, 0).
    # Weights: softmax of (-1, -81, distractor -1/e^0 - 0 = -1): the
    # distractor (scale 1, at the origin) is as near as class 0.
    w = np.exp([-1.0, -81.0, -1.0])
    w /= w.sum()
    expected_0 = w[0] * np.array([1.0, 0.0]) / (1 + w[0])
    expected_1 = (np.array([10.0, 0.0]) + w[1] * np.array([1.0, 0.0])) / (1 + w[1])
    refined = _refine([[0, 0], [10, 0]], [1, 1], [1, 0])
    np.testing.assert_allclose(refined, [expected_0, expected_1], rtol=1e-6)
    assert 0.3 < refined[0, 0] < 0.4  # pulled by about a third of the way


def test_a_wide_distractor_cluster_leaves_near_points_to_the_classes():
    # With a scale of e^5, the distractor's logit at (9, 0) is
    # -81 e^-10 - 5 ~ -5.004; class 0's is -81 and class 1's -1.
    refined = _refine([[0, 0], [10, 0]], [1, 1], [[9, 0]], log_scale=5.0)
    logits = np.array([-81.0, -1.0, -81 * math.exp(-10) - 5.0])
    w = np.exp(logits - logits.max())
    w /= w.sum()
    np.testing.assert_allclose(
        refined[1], (np.array([10.0, 0]) + w[1] * np.array([9.0, 0])) / (1 + w[1])
    )
    assert w[1] > 0.98


def test_a_far_point_goes_to_the_distractor_and_moves_no_prototype():
    # (100, 100) is 2e4 from the origin and ~1.8e4 from the prototypes; with a
    # scale of e^5 the distractor's logit is about -5.9: all its weight.
    refined = _refine([[0, 0], [10, 0]], [1, 1], [[100, 100]], log_scale=5.0)
    np.testing.assert_allclose(refined, [[0, 0], [10, 0]], atol=1e-6)


def test_more_steps_move_the_prototype_further_toward_its_cluster():
    z = [[2, 0], [2.5, 0], [3, 0]]
    one = _refine([[0, 0], [20, 0]], [1, 1], z, log_scale=5.0, n_steps=1)
    three = _refine([[0, 0], [20, 0]], [1, 1], z, log_scale=5.0, n_steps=3)
    assert 0 < one[0, 0] < three[0, 0] < 2.5
    np.testing.assert_allclose(one[1], [20, 0], atol=1e-6)


def test_no_unlabelled_sample_leaves_the_prototypes_as_they_are():
    refined = _refine([[0, 0], [10, 0]], [1, 1], np.zeros((0, 2)))
    np.testing.assert_array_equal(refined, [[0, 0], [10, 0]])


def test_the_training_episode_refines_before_classifying_the_queries():
    net = SemiSupervisedPrototypicalNetwork(
        torch.nn.Identity(), SquaredEuclidean(), distractor_scale=math.exp(5)
    )
    x = torch.tensor([[0.0, 0], [10, 0], [1, 0], [9, 0], [2, 0]])
    y = torch.tensor([0, 1, -1, -1, -2])  # support, support, queries, unlabelled
    refined = _refine([[0, 0], [10, 0]], [1, 1], [[2, 0]], log_scale=5.0)
    expected = -((x[2:4, None] - torch.from_numpy(refined)[None]) ** 2).sum(-1)
    torch.testing.assert_close(net(x, y), expected)
    net(x, y).sum().backward()
    assert net.log_distractor_scale.grad is not None  # the scale is learned


# y == -1.


def test_unlabelled_mask_follows_scikit_learns_convention():
    np.testing.assert_array_equal(unlabelled_mask([0, -1, 2]), [0, 1, 0])
    np.testing.assert_array_equal(unlabelled_mask([0.0, -1.0]), [0, 1])
    mixed = np.array(["a", -1, "b"], dtype=object)
    np.testing.assert_array_equal(unlabelled_mask(mixed), [0, 1, 0])
    np.testing.assert_array_equal(unlabelled_mask(np.array(["a", "b"])), [0, 0])
    with pytest.raises(ValueError, match="object array"):
        unlabelled_mask(["a", -1])  # NumPy makes it the strings "a", "-1"


def test_fit_learns_the_labelled_classes_and_never_predicts_minus_one(
    fitted, partly_labelled, digits
):
    np.testing.assert_array_equal(fitted.classes_, [0, 1, 2, 3, 4])
    assert -1 not in fitted.predict(digits.X_base)
    # The default support set: labelled means refined with the unlabelled.
    X, y = partly_labelled
    expected, means = _refined_by_hand(fitted, X, y)
    np.testing.assert_allclose(fitted.prototypes_, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(fitted.prototypes_, means)
    np.testing.assert_array_equal(fitted.support_counts_, np.bincount(y[y >= 0]))


def _refined_by_hand(fitted, X, y):
    """The class means of the labelled embeddings, and them refined by the rest."""
    z = torch.from_numpy(fitted.transform(X))
    classes = np.unique(y[y != -1])
    means = torch.stack([z[torch.from_numpy(y == c)].mean(0) for c in classes])
    counts = torch.tensor([np.sum(y == c) for c in classes])
    refined = fitted.module_.refine(means, counts, z[torch.from_numpy(y == -1)])
    return refined.detach().numpy(), means.numpy()


def test_unlabelled_samples_join_every_training_episode(partly_labelled, monkeypatch):
    X, y = partly_labelled
    rows = []
    forward = SemiSupervisedPrototypicalNetwork.forward

    def recording(self, x, y):
        rows.append((len(x), int((y == -2).sum())))
        return forward(self, x, y)

    monkeypatch.setattr(SemiSupervisedPrototypicalNetwork, "forward", recording)
    clf = SemiSupervisedPrototypicalClassifier(
        n_way=3, k_shot=1, n_query=2, n_unlabelled=4, **dict(FAST, max_epochs=1)
    )
    clf.fit(X, y)
    # 3 classes of 1 + 2 labelled rows, and 3 * 4 unlabelled rows.
    assert rows == [(3 * 3 + 12, 12)] * FAST["episodes_per_epoch"]


def test_without_unlabelled_samples_it_is_prototypical_networks(digits):
    semi = SemiSupervisedPrototypicalClassifier(**FAST).fit(
        digits.X_base, digits.y_base
    )
    proto = PrototypicalClassifier(**FAST).fit(digits.X_base, digits.y_base)
    for name, value in proto.module_.state_dict().items():
        torch.testing.assert_close(semi.module_.state_dict()[name], value)
    np.testing.assert_allclose(
        semi.predict_proba(digits.X_novel), proto.predict_proba(digits.X_novel)
    )
    support = slice(0, None, 10)
    semi.adapt(digits.X_novel[support], digits.y_novel[support])
    proto.adapt(digits.X_novel[support], digits.y_novel[support])
    np.testing.assert_array_equal(semi.prototypes_, proto.prototypes_)


def test_n_unlabelled_zero_trains_as_prototypical_networks(partly_labelled):
    X, y = partly_labelled
    semi = SemiSupervisedPrototypicalClassifier(n_unlabelled=0, **FAST).fit(X, y)
    proto = PrototypicalClassifier(**FAST).fit(X[y >= 0], y[y >= 0])
    for name, value in proto.module_.state_dict().items():
        torch.testing.assert_close(semi.module_.state_dict()[name], value)


def test_adapt_refines_the_novel_prototypes_with_its_unlabelled_samples(fitted, digits):
    X, y = digits.X_novel[:60], digits.y_novel[:60].copy()
    y[10:] = -1  # 10 labelled, 50 unlabelled
    semi = copy.deepcopy(fitted).adapt(X, y)
    np.testing.assert_array_equal(semi.classes_, np.unique(y[:10]))
    expected, means = _refined_by_hand(fitted, X, y)
    np.testing.assert_allclose(semi.prototypes_, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(semi.prototypes_, means)
    assert -1 not in semi.predict(digits.X_novel)


def test_adapt_with_string_labels_and_unlabelled_samples(fitted, digits):
    y = np.array([f"digit {v}" for v in digits.y_novel[:30]], dtype=object)
    y[15:] = -1
    semi = copy.deepcopy(fitted).adapt(digits.X_novel[:30], y)
    assert set(semi.predict(digits.X_novel)) <= set(y[:15])


# Errors.


def test_all_unlabelled_is_an_error_in_fit_and_adapt(fitted, digits):
    y = np.full(len(digits.y_base), -1)
    with pytest.raises(ValueError, match="only unlabelled samples"):
        SemiSupervisedPrototypicalClassifier(**FAST).fit(digits.X_base, y)
    before = fitted.prototypes_.copy()
    with pytest.raises(ValueError, match="y_support holds only unlabelled"):
        fitted.adapt(digits.X_novel[:10], np.full(10, -1))
    np.testing.assert_array_equal(fitted.prototypes_, before)  # left as it was


def test_a_class_with_no_labelled_sample_is_not_a_class(fitted, digits):
    # Unlabelled samples of digit 9 make no class 9: predictions are among
    # the labelled classes only.
    y = digits.y_novel[:100].copy()
    y[y == 9] = -1
    semi = copy.deepcopy(fitted).adapt(digits.X_novel[:100], y)
    assert 9 not in semi.classes_ and 9 not in semi.predict(digits.X_novel)


def test_groups_with_unlabelled_samples_is_an_error(partly_labelled):
    X, y = partly_labelled
    with pytest.raises(ValueError, match="groups cannot be given"):
        SemiSupervisedPrototypicalClassifier(**FAST).fit(X, y, groups=y % 2)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_unlabelled": -1}, "n_unlabelled"),
        ({"refinement_steps": 0}, "refinement_steps"),
        ({"distractor_scale": 0.0}, "distractor_scale"),
    ],
)
def test_bad_parameters_are_refused_by_name(params, match, partly_labelled):
    with pytest.raises(ValueError, match=match):
        SemiSupervisedPrototypicalClassifier(**params).fit(*partly_labelled)
