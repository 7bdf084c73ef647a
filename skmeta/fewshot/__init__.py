"""Few-shot classifiers meta-trained on N-way K-shot episodes."""

from .prototypical import PrototypicalClassifier

__all__ = ["PrototypicalClassifier"]
