"""skmeta: metric-based meta-learning and deep metric learning for scikit-learn."""

from .batches import ClassBalancedBatchSampler
from .embedding import (
    ArcFaceEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    NPairEmbedder,
    TripletEmbedder,
)
from .episodes import EpisodeSampler
from .fewshot import MatchingClassifier, PrototypicalClassifier, RelationClassifier

__version__ = "0.1.0.dev0"

__all__ = [
    "ArcFaceEmbedder",
    "ClassBalancedBatchSampler",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "EpisodeSampler",
    "MatchingClassifier",
    "NPairEmbedder",
    "PrototypicalClassifier",
    "RelationClassifier",
    "TripletEmbedder",
    "__version__",
]
