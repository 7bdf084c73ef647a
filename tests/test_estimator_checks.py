"""scikit-learn's own estimator checks, on every estimator of skmeta."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmeta import (
    ArcFaceEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    MAMLClassifier,
    MatchingClassifier,
    NPairEmbedder,
    PrototypicalClassifier,
    RelationClassifier,
    ReptileClassifier,
    TripletEmbedder,
)

# Fast settings: the checks fit dozens of times on small data (some classes
# have 3 samples), so one support and one query per class, few episodes.
FAST = dict(max_epochs=2, episodes_per_epoch=5, k_shot=1, n_query=1)

# Embedders: two samples per class in a batch (some of the checks' classes
# have 3 samples), few batches, small embeddings.
FAST_EMBEDDER = dict(
    max_epochs=1, batches_per_epoch=3, n_samples_per_class=2, embedding_dim=8
)

ESTIMATORS = [
    PrototypicalClassifier(**FAST),
    MatchingClassifier(**FAST),
    RelationClassifier(**FAST),
]
# MAML and Reptile: a head of one output per class of y (n_way=None, some
# checks have 2 classes), and enough fine-tuning steps that fit's default
# support (the training data) is learned; Reptile's fine-tuning full-batch.
FAST_GRADIENT = dict(FAST, n_way=None, meta_batch_size=2, n_inner_steps_test=30)
ESTIMATORS += [
    MAMLClassifier(**FAST_GRADIENT),
    ReptileClassifier(**FAST_GRADIENT, inner_lr=1e-2, inner_batch_size=None),
]
ESTIMATORS += [
    cls(**FAST_EMBEDDER)
    for cls in (
        TripletEmbedder,
        ContrastiveEmbedder,
        NPairEmbedder,
        ArcFaceEmbedder,
        CosFaceEmbedder,
    )
]

# Expected failures, each with its reason; none at present.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(
        type(est).__name__, {}
    ),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
