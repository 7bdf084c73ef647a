"""skmeta: metric-based meta-learning and deep metric learning for scikit-learn."""

from .batches import ClassBalancedBatchSampler
from .embedding import (
    ArcFaceEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    DistilledEmbedder,
    MetricEmbedder,
    NPairEmbedder,
    SelfSupervisedEmbedder,
    TripletEmbedder,
)
from .episodes import EpisodeSampler
from .fewshot import (
    MAMLClassifier,
    MAMLRegressor,
    MatchingClassifier,
    PrototypicalClassifier,
    RelationClassifier,
    ReptileClassifier,
    ReptileRegressor,
    SemiSupervisedPrototypicalClassifier,
    TransferClassifier,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ArcFaceEmbedder",
    "ClassBalancedBatchSampler",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "DistilledEmbedder",
    "EpisodeSampler",
    "MAMLClassifier",
    "MAMLRegressor",
    "MatchingClassifier",
    "MetricEmbedder",
    "NPairEmbedder",
    "PrototypicalClassifier",
    "RelationClassifier",
    "ReptileClassifier",
    "ReptileRegressor",
    "SemiSupervisedPrototypicalClassifier",
    "SelfSupervisedEmbedder",
    "TransferClassifier",
    "TripletEmbedder",
    "__version__",
]
