"""Few-shot classifiers meta-trained on N-way K-shot episodes."""

from .maml import MAMLClassifier
from .matching import MatchingClassifier
from .prototypical import PrototypicalClassifier
from .relation import RelationClassifier
from .reptile import ReptileClassifier
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
}

__all__ = [
    "CLASSIFIERS",
    "MAMLClassifier",
    "MatchingClassifier",
    "PrototypicalClassifier",
    "RelationClassifier",
    "ReptileClassifier",
    "TransferClassifier",
]
