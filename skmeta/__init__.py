"""skmeta: metric-based meta-learning and deep metric learning for scikit-learn."""

from .episodes import EpisodeSampler
from .fewshot import PrototypicalClassifier

__version__ = "0.1.0.dev0"

__all__ = ["EpisodeSampler", "PrototypicalClassifier", "__version__"]
