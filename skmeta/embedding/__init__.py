"""Deep metric learning embedders: scikit-learn transformers.

Each embedder trains a backbone with one metric learning loss on P x K batches
(:class:`skmeta.batches.ClassBalancedBatchSampler`) and ``transform`` returns
the embeddings, float32 of shape ``(n_samples, embedding_dim)``, for any
downstream model.
"""

from ._base import MetricEmbedder, MetricNetwork
from .contrastive import ContrastiveEmbedder
from .margin_softmax import ArcFaceEmbedder, CosFaceEmbedder
from .npair import NPairEmbedder
from .triplet import TripletEmbedder

#: The embedders by name: the presets, then the generic one.
EMBEDDERS = {
    "triplet": TripletEmbedder,
    "contrastive": ContrastiveEmbedder,
    "npair": NPairEmbedder,
    "arcface": ArcFaceEmbedder,
    "cosface": CosFaceEmbedder,
    "metric": MetricEmbedder,
}

__all__ = [
    "EMBEDDERS",
    "ArcFaceEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "MetricEmbedder",
    "MetricNetwork",
    "NPairEmbedder",
    "TripletEmbedder",
]
