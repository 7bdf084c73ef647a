"""Deep metric learning embedders: scikit-learn transformers.

Each embedder trains a backbone with one metric learning loss on P x K batches
(:class:`skmeta.batches.ClassBalancedBatchSampler`), or without labels on two
random views of each sample (:class:`SelfSupervisedEmbedder`), and
``transform`` returns the embeddings, float32 of shape ``(n_samples,
embedding_dim)``, for any downstream model.
"""

from ._base import MetricEmbedder, MetricNetwork
from .contrastive import ContrastiveEmbedder
from .distillation import DistillationNetwork, DistilledEmbedder
from .margin_softmax import ArcFaceEmbedder, CosFaceEmbedder
from .npair import NPairEmbedder
from .self_supervised import SelfSupervisedEmbedder, SelfSupervisedNetwork
from .triplet import TripletEmbedder

#: The embedders by name: the presets, the generic one, then the one that
#: learns without labels and the one that learns from a teacher.
EMBEDDERS = {
    "triplet": TripletEmbedder,
    "contrastive": ContrastiveEmbedder,
    "npair": NPairEmbedder,
    "arcface": ArcFaceEmbedder,
    "cosface": CosFaceEmbedder,
    "metric": MetricEmbedder,
    "self-supervised": SelfSupervisedEmbedder,
    "distilled": DistilledEmbedder,
}

__all__ = [
    "EMBEDDERS",
    "ArcFaceEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "DistillationNetwork",
    "DistilledEmbedder",
    "MetricEmbedder",
    "MetricNetwork",
    "NPairEmbedder",
    "SelfSupervisedEmbedder",
    "SelfSupervisedNetwork",
    "TripletEmbedder",
]
