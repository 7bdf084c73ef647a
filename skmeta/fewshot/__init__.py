"""Few-shot classifiers meta-trained on N-way K-shot episodes."""

from .matching import MatchingClassifier
from .prototypical import PrototypicalClassifier
from .relation import RelationClassifier

__all__ = ["MatchingClassifier", "PrototypicalClassifier", "RelationClassifier"]
