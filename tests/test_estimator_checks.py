"""scikit-learn's own estimator checks, on every estimator of skmeta."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmeta import PrototypicalClassifier

# Fast settings: the checks fit dozens of times on small data (some classes
# have 3 samples), so one support and one query per class, few episodes.
FAST = dict(max_epochs=2, episodes_per_epoch=5, k_shot=1, n_query=1)

ESTIMATORS = [PrototypicalClassifier(**FAST)]

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
