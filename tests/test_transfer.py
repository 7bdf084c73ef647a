"""Specification of TransferClassifier: Baseline, Baseline++, SimpleShot, RFS."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from skmeta import TransferClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.fewshot.transfer import CosineClassifier, TransferNetwork, _MiniBatches
from skmeta.model_selection import evaluate_episodes

FAST = dict(max_epochs=2, random_state=0)


def test_pre_training_is_cross_entropy_over_every_base_class(digits):
    clf = TransferClassifier(**FAST).fit(digits.X_base, digits.y_base)
    assert isinstance(clf.module_, TransferNetwork)
    assert clf.module_.classifier.out_features == clf.n_base_classes_ == 5
    losses = clf.history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    logits = clf.module_(torch.from_numpy(digits.X_base[:3]))
    assert logits.shape == (3, 5)


@pytest.mark.parametrize(
    "symmetries, n_base_classes",
    [
        ({"rotations": True}, 16),
        ({"flips": True}, 8),
        ({"rotations": True, "flips": True}, 32),
    ],
)
def test_rotations_and_flips_multiply_the_base_classes(
    tiny_images, symmetries, n_base_classes
):
    X, y = tiny_images
    clf = TransferClassifier(**symmetries, max_epochs=1, random_state=0).fit(X, y)
    assert clf.n_base_classes_ == n_base_classes and clf.prototypes_.shape == (4, 64)


def test_cosine_classifier_is_scaled_cosine_similarity():
    head = CosineClassifier(3, 2, scale=10.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 2.0, 0]]))
    z = torch.tensor([[3.0, 0, 0], [1.0, 1.0, 0]])
    expected = 10 * torch.tensor([[1.0, 0.0], [2**-0.5, 2**-0.5]])
    torch.testing.assert_close(head(z), expected)


def test_baseline_plus_plus_trains_the_cosine_classifier(digits):
    clf = TransferClassifier(base_classifier="cosine", scale=5.0, **FAST)
    clf.fit(digits.X_base, digits.y_base)
    assert isinstance(clf.module_.classifier, CosineClassifier)
    assert clf.module_.classifier.scale == 5.0


def test_centroid_head_is_simpleshot_nearest_mean_of_centred_normalised_features(
    digits,
):
    clf = TransferClassifier(**FAST).fit(digits.X_base, digits.y_base)
    z_base = clf.transform(digits.X_base)
    np.testing.assert_allclose(clf.feature_mean_, z_base.mean(0), rtol=1e-4, atol=1e-6)

    def cl2n(z):
        z = z - z_base.mean(0)
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    clf.adapt(digits.X_novel[:40], digits.y_novel[:40])
    support = cl2n(clf.transform(digits.X_novel[:40]))
    means = np.stack([support[digits.y_novel[:40] == c].mean(0) for c in clf.classes_])
    queries = cl2n(clf.transform(digits.X_novel[40:]))
    expected = clf.classes_[((queries[:, None] - means) ** 2).sum(2).argmin(1)]
    np.testing.assert_array_equal(clf.predict(digits.X_novel[40:]), expected)


def test_logistic_head_is_scikit_learns_logistic_regression(digits):
    clf = TransferClassifier("logistic", normalization=None, **FAST)
    clf.fit(digits.X_base, digits.y_base)
    clf.adapt(digits.X_novel[:60], digits.y_novel[:60])
    reference = LogisticRegression(max_iter=1000).fit(
        clf.transform(digits.X_novel[:60]), digits.y_novel[:60]
    )
    queries = clf.transform(digits.X_novel[60:])
    np.testing.assert_allclose(
        clf.predict_proba(digits.X_novel[60:]),
        reference.predict_proba(queries),
        rtol=1e-3,
        atol=1e-5,
    )
    # Two classes: scikit-learn's single row of coefficients.
    pair = np.isin(digits.y_novel, [5, 6])
    clf.adapt(digits.X_novel[pair][:20], digits.y_novel[pair][:20])
    assert clf.head_coef_.shape == (1, 64)
    assert set(clf.predict(digits.X_novel[pair])) <= {5, 6}


def test_head_params_reach_the_logistic_regression(digits):
    clf = TransferClassifier("logistic", head_params={"C": 1e-6}, **FAST)
    clf.fit(digits.X_base, digits.y_base)
    # Almost no fit at all: every class about equally likely.
    np.testing.assert_allclose(clf.predict_proba(digits.X_base[:5]), 0.2, atol=0.01)


def test_a_class_of_one_sample_trains(digits):
    X = np.concatenate([digits.X_base, digits.X_novel[:1]])
    y = np.concatenate([digits.y_base, digits.y_novel[:1]])
    clf = TransferClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert len(clf.classes_) == 6 and clf.support_counts_[-1] == 1


def test_pre_training_needs_two_base_classes(tiny_images):
    # Over one class the cross-entropy is 0: nothing would be trained.
    X, y = tiny_images
    one = y == 0
    with pytest.raises(ValueError, match="at least 2 of them.*y has one class"):
        TransferClassifier(max_epochs=1, random_state=0).fit(X[one], y[one])
    # Rotations make 4 classes of one: that trains.
    clf = TransferClassifier(rotations=True, max_epochs=1, random_state=0)
    assert clf.fit(X[one], y[one]).n_base_classes_ == 4


def test_mini_batches_cover_the_data_once_per_epoch():
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = _MiniBatches(X, y, 4, None)
    seen = [b for b in batches]
    assert len(batches) == len(seen) == 3
    assert sorted(torch.cat([b[1] for b in seen]).tolist()) == list(range(10))
    for x, labels in seen:
        torch.testing.assert_close(x[:, 0].long(), labels)


def test_transductive_steps_need_the_centroid_head(digits):
    clf = TransferClassifier("logistic", transductive_steps=1, **FAST)
    with pytest.raises(ValueError, match="needs head='centroid'"):
        clf.fit(digits.X_base, digits.y_base)


def test_validation_centres_on_the_training_classes(digits):
    clf = TransferClassifier(validation_fraction=0.4, **FAST)
    clf.fit(digits.X_base, digits.y_base)
    assert np.isfinite(clf.history_[:, "valid_loss"]).all()
    assert len(clf.classes_) == 5  # the support set is every class of y


def test_pre_training_beats_the_untrained_backbone_on_novel_omniglot_classes():
    data = load_omniglot_minimal()

    def accuracy(max_epochs):
        clf = TransferClassifier(max_epochs=max_epochs, random_state=0)
        clf.fit(data.X_base, data.y_base)
        return evaluate_episodes(
            clf, data.X_novel, data.y_novel, n_query=5, n_episodes=60, random_state=0
        ).mean

    # Measured: 45.5% untrained, 65.9% after 2 passes (44 mini-batches).
    assert accuracy(2) > accuracy(0) + 0.1
