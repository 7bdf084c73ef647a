"""Few-shot classifiers meta-trained on N-way K-shot episodes."""

from .maml import MAMLClassifier
from .matching import MatchingClassifier
from .prototypical import PrototypicalClassifier
from .relation import RelationClassifier
from .reptile import ReptileClassifier

__all__ = [
    "MAMLClassifier",
    "MatchingClassifier",
    "PrototypicalClassifier",
    "RelationClassifier",
    "ReptileClassifier",
]
