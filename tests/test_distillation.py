"""Specification of DistilledEmbedder: a student that matches a fitted teacher.

test_common.py runs the shared contract (parameters, NotFittedError) on it;
scikit-learn's checks run here, where the teacher they need is built.
"""

import copy

import numpy as np
import pytest
import torch
from helpers import assert_same_weights, weights
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from skmeta import DistilledEmbedder, PrototypicalClassifier
from skmeta.embedding.distillation import DistillationLoss, soft_targets
from skmeta.persistence import load, save

FAST = dict(max_epochs=2, batches_per_epoch=5, train_batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def teacher(digits):
    """A Prototypical MLP teacher, 64-wide embeddings over the 5 base digits."""
    return PrototypicalClassifier(
        backbone_params={"hidden_dims": (64,)},
        max_epochs=1,
        episodes_per_epoch=5,
        random_state=0,
    ).fit(digits.X_base, digits.y_base)


# The loss, by hand.


def test_soft_targets_are_the_softmax_of_log_probabilities_over_t():
    p = np.array([[0.7, 0.2, 0.1, 0.0]])
    by_hand = np.sqrt(p) / np.sqrt(p).sum()  # T = 2: p ** (1/2), normalised
    np.testing.assert_allclose(soft_targets(p, 2.0), by_hand, rtol=1e-6)
    np.testing.assert_allclose(soft_targets(p, 1.0), p, rtol=1e-6)
    assert soft_targets(p, 2.0)[0, 3] == 0  # an impossible class stays so
    flat = soft_targets(p, 1e6)[0, :3]
    np.testing.assert_allclose(flat, 1 / 3, rtol=1e-4)  # T -> inf: uniform


@pytest.mark.parametrize(
    "proba, match",
    [
        (np.array([0.5, 0.5]), "2-D"),
        (np.array([[0.5, np.nan]]), "finite"),
        (np.array([[1.5, -0.5]]), ">= 0"),
        (np.array([[0.0, 0.0]]), "positive"),
    ],
)
def test_soft_targets_refuse_what_is_not_probabilities(proba, match):
    with pytest.raises(ValueError, match=match):
        soft_targets(proba, 2.0)


def test_the_probability_loss_is_t_squared_kl_plus_the_weighted_cross_entropy():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    s = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    T = 2.0
    p_T = p ** (1 / T) / (p ** (1 / T)).sum(1, keepdims=True)
    q_T = np.exp(s / T) / np.exp(s / T).sum(1, keepdims=True)
    kl = np.mean(np.sum(p_T * np.log(p_T / q_T), axis=1))  # per sample, mean
    logits, labels = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0])
    ce = -np.mean(np.log(np.exp(logits[[0, 1], labels]) / np.exp(logits).sum(1)))
    outputs = torch.tensor(s, dtype=torch.float32), torch.tensor(logits).float()
    targets = torch.from_numpy(soft_targets(p, T)), torch.from_numpy(labels)
    loss = DistillationLoss("probabilities", temperature=T, alpha=0.25)
    np.testing.assert_allclose(
        float(loss(outputs, targets)), 0.25 * T**2 * kl + 0.75 * ce, rtol=1e-5
    )
    unlabelled = outputs[0], outputs[1][:, :0]  # no classifier: KL alone
    np.testing.assert_allclose(float(loss(unlabelled, targets)), T**2 * kl, rtol=1e-5)


def test_the_embedding_loss_is_the_mean_squared_error():
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    loss = DistillationLoss("embedding")(
        (student, student[:, :0]), (teacher, torch.tensor([-1, -1]))
    )
    assert float(loss) == pytest.approx((0 + 4 + 9 + 0) / 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target": "logits"}, "target"),
        ({"temperature": 0}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_the_loss_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillationLoss(**kwargs)


# Learning from the teacher.


def test_the_student_converges_to_the_teachers_embeddings(digits, teacher):
    student = DistilledEmbedder(
        teacher, max_epochs=4, batches_per_epoch=50, lr=3e-3, random_state=0
    )

    def unexplained(model, X):  # the teacher's embeddings' variance, a fraction
        Z_teacher = teacher.transform(X)
        return np.mean((model.transform(X) - Z_teacher) ** 2) / Z_teacher.var(0).mean()

    untrained = copy.copy(student).set_params(max_epochs=0).fit(digits.X_base)
    student.fit(digits.X_base)
    assert student.n_steps_ == 200
    assert (
        unexplained(student, digits.X_base)
        < 0.1
        < 1
        < unexplained(untrained, digits.X_base)
    )
    # Unseen digits too, less closely (901 training samples).
    assert unexplained(student, digits.X_novel) < 0.3
    assert isinstance(student.module_.head, nn.Identity)  # 64 wide, as the teacher


def test_the_student_learns_the_teachers_soft_predictions(digits, teacher):
    student = DistilledEmbedder(
        teacher, target="probabilities", **{**FAST, "max_epochs": 6}
    ).fit(digits.X_base)
    with torch.no_grad():
        logits = student.module_.head(
            torch.from_numpy(student.transform(digits.X_base))
        )
    agree = np.mean(logits.argmax(1).numpy() == teacher.predict(digits.X_base))
    assert agree > 0.9, agree
    assert student.module_.head.out_features == len(teacher.classes_)


def test_a_linear_projection_maps_a_narrower_student_to_the_teacher(digits, teacher):
    student = DistilledEmbedder(teacher, embedding_dim=8, **FAST).fit(digits.X_base)
    assert student.transform(digits.X_novel).shape == (len(digits.X_novel), 8)
    head = student.module_.head
    assert (head.in_features, head.out_features) == (8, 64)


def test_labels_add_a_classifier_and_alpha_one_leaves_the_distillation_alone(
    digits, teacher
):
    alone = DistilledEmbedder(teacher, **FAST).fit(digits.X_base)
    labelled = DistilledEmbedder(teacher, alpha=1.0, **FAST).fit(
        digits.X_base, digits.y_base
    )
    assert alone.module_.classifier is None and not hasattr(alone, "classes_")
    assert labelled.module_.classifier.out_features == 5
    np.testing.assert_array_equal(labelled.classes_, np.unique(digits.y_base))
    assert_same_weights(labelled.module_.backbone, weights(alone.module_.backbone))
    mixed = DistilledEmbedder(teacher, alpha=0.5, **FAST).fit(
        digits.X_base, digits.y_base
    )
    assert not np.allclose(
        mixed.transform(digits.X_novel), alone.transform(digits.X_novel)
    )


def test_the_teacher_is_not_changed(digits, teacher):
    # A fresh copy: its support set is computed at its first prediction.
    fresh = copy.deepcopy(teacher)
    state, attributes, params = weights(fresh.module_), set(vars(fresh)), None
    params = fresh.get_params()
    for target in ("embedding", "probabilities"):
        DistilledEmbedder(fresh, target=target, **FAST).fit(
            digits.X_base, digits.y_base
        )
    assert_same_weights(fresh.module_, state)
    assert set(vars(fresh)) == attributes  # not even the support set computed
    assert fresh.get_params() == params
    np.testing.assert_array_equal(
        fresh.predict_proba(digits.X_novel), teacher.predict_proba(digits.X_novel)
    )


def test_same_seed_same_student(digits, teacher):
    def fit(seed):
        student = DistilledEmbedder(teacher, **{**FAST, "random_state": seed})
        return student.fit(digits.X_base).transform(digits.X_novel)

    np.testing.assert_array_equal(fit(0), fit(0))
    assert not np.allclose(fit(0), fit(1))


def test_any_fitted_transformer_teaches_and_images_train_a_conv4_student(digits):
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 16, 16), dtype=np.float32)
    pca = PCA(6).fit(X.reshape(len(X), -1))
    flat = FunctionTransformer(lambda X: pca.transform(X.reshape(len(X), -1)))
    student = DistilledEmbedder(
        flat, backbone_params={"hidden_channels": 8}, embedding_dim=4, **FAST
    ).fit(X)
    assert student.transform(X).shape == (40, 4)
    assert student.module_.head.out_features == 6


# A teacher that clone keeps, and saving the student.


def test_clone_forgets_a_fitted_teacher_unless_it_is_frozen(digits, teacher):
    with pytest.raises(NotFittedError, match="teacher.*FrozenEstimator"):
        clone(DistilledEmbedder(teacher, **FAST)).fit(digits.X_base)
    frozen = DistilledEmbedder(FrozenEstimator(teacher), **FAST)
    direct = DistilledEmbedder(teacher, **FAST).fit(digits.X_base)
    np.testing.assert_array_equal(
        clone(frozen).fit(digits.X_base).transform(digits.X_novel),
        direct.transform(digits.X_novel),
    )


def test_the_student_saves_without_its_teacher(digits, teacher, tmp_path):
    student = DistilledEmbedder(teacher, **FAST).fit(digits.X_base)
    with pytest.raises(TypeError, match="params.teacher"):
        save(student, tmp_path / "with_teacher.skmeta")
    save(student.set_params(teacher=None), tmp_path / "student.skmeta")
    restored = load(tmp_path / "student.skmeta")
    np.testing.assert_array_equal(
        restored.transform(digits.X_novel), student.transform(digits.X_novel)
    )


# Errors.


def test_fit_refuses_a_missing_unfitted_or_unsuitable_teacher(digits, teacher):
    X = digits.X_base
    with pytest.raises(ValueError, match="needs a teacher.*teacher=None"):
        DistilledEmbedder(**FAST).fit(X)
    with pytest.raises(NotFittedError, match="teacher PrototypicalClassifier"):
        DistilledEmbedder(PrototypicalClassifier(), **FAST).fit(X)
    with pytest.raises(TypeError, match="teacher.predict_proba.*PCA"):
        DistilledEmbedder(PCA(2).fit(X), target="probabilities", **FAST).fit(X)
    one_row = FunctionTransformer(lambda X: np.zeros((1, 3)))
    with pytest.raises(ValueError, match="one finite row per sample"):
        DistilledEmbedder(one_row, **FAST).fit(X)
    not_finite = FunctionTransformer(lambda X: np.full((len(X), 3), np.nan))
    with pytest.raises(ValueError, match="NaN or inf"):
        DistilledEmbedder(not_finite, **FAST).fit(X)
    flat = FunctionTransformer(lambda X: X[:, 0])
    with pytest.raises(ValueError, match="2-D array"):
        DistilledEmbedder(flat, **FAST).fit(X)
    with pytest.raises(ValueError, match="needs y"):
        DistilledEmbedder(teacher, validation_fraction=0.4, **FAST).fit(X)


def test_a_failed_fit_leaves_the_previous_student(digits, teacher):
    student = DistilledEmbedder(teacher, **FAST).fit(digits.X_base)
    before = student.transform(digits.X_novel)
    with pytest.raises(TypeError):
        student.set_params(target="probabilities", teacher=PCA(2).fit(digits.X_base))
        student.fit(digits.X_base)
    np.testing.assert_array_equal(student.transform(digits.X_novel), before)


def test_validation_on_held_out_classes_scores_the_student(digits, teacher):
    student = DistilledEmbedder(teacher, validation_fraction=0.4, **FAST).fit(
        digits.X_base, digits.y_base
    )
    assert len(student.history_[:, "valid_acc"]) == FAST["max_epochs"]


# scikit-learn's checks: a stateless teacher (the identity) is fitted for any
# data they give, and clone keeps it.
@parametrize_with_checks(
    [
        DistilledEmbedder(
            FunctionTransformer(), max_epochs=1, batches_per_epoch=3, random_state=0
        )
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
