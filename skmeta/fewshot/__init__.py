"""Few-shot classifiers meta-trained on N-way K-shot episodes, and regressors."""

from .maml import MAMLClassifier, MAMLRegressor
from .matching import MatchingClassifier
from .prototypical import PrototypicalClassifier
from .relation import RelationClassifier
from .reptile import ReptileClassifier, ReptileRegressor
from .semi_supervised import SemiSupervisedPrototypicalClassifier
from .transfer import TransferClassifier

#: The few-shot classifiers by the name the ``skmeta`` command and the
#: benchmarks know them by. A new method is one class and its entry here.
CLASSIFIERS = {
    "prototypical": PrototypicalClassifier,
    "matching": MatchingClassifier,
    "relation": RelationClassifier,
    "maml": MAMLClassifier,
    "reptile": ReptileClassifier,
    "transfer": TransferClassifier,
    "semi-supervised": SemiSupervisedPrototypicalClassifier,
}

#: The few-shot regressors by name, meta-trained on tasks given by ``groups``.
REGRESSORS = {
    "maml": MAMLRegressor,
    "reptile": ReptileRegressor,
}

__all__ = [
    "CLASSIFIERS",
    "REGRESSORS",
    "MAMLClassifier",
    "MAMLRegressor",
    "MatchingClassifier",
    "PrototypicalClassifier",
    "RelationClassifier",
    "ReptileClassifier",
    "SemiSupervisedPrototypicalClassifier",
    "ReptileRegressor",
    "TransferClassifier",
]
