"""scikit-learn's own estimator checks, on every estimator of skmeta."""

from helpers import EMBEDDERS, FEW_SHOT, UNSUPERVISED, own_params
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmeta import SemiSupervisedPrototypicalClassifier

# Every estimator with its default parameters; only the length of training is
# lowered (and the seed fixed, so that a run repeats). The checks fit dozens of
# times on small data with classes of 3 to 5 samples and 2 to 4 classes: the
# defaults must cope (n_way=None, n_query=None, k_shot=None for Reptile,
# small_classes="replace" for the embedders). One check is expected to fail, for
# the reason written in _expected_failed.
FEW_SHOT_LENGTH = dict(max_epochs=2, episodes_per_epoch=5, random_state=0)
ESTIMATORS = [cls(**own_params(cls, FEW_SHOT_LENGTH)) for cls in FEW_SHOT]
ESTIMATORS += [
    cls(max_epochs=1, batches_per_epoch=3, random_state=0)
    for cls in EMBEDDERS + UNSUPERVISED
]


def _expected_failed(estimator):
    """The checks an estimator fails by design, each with its reason."""
    if isinstance(estimator, SemiSupervisedPrototypicalClassifier):
        return {
            "check_classifiers_classes": "it fits labels [-1, 1], and -1 marks "
            "an unlabelled sample, as in scikit-learn's LabelSpreading and "
            "SelfTrainingClassifier, which the check exempts by name"
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
