"""Few-shot model selection: class-disjoint splits and episodic scoring.

Few-shot learning is judged on classes never seen in training, so splits
separate classes, not samples, and a score is the mean query accuracy over
many N-way K-shot episodes of the held-out classes, reported with its 95%
confidence interval as the field does (e.g. Snell et al., 2017; Chen et al.,
2019).
"""

from ._evaluation import (
    EpisodeScores,
    EpisodicScorer,
    evaluate_episodes,
    evaluate_settings,
)
from ._split import ClassKFold, ClassShuffleSplit, TaskSplit

__all__ = [
    "ClassKFold",
    "ClassShuffleSplit",
    "EpisodeScores",
    "EpisodicScorer",
    "TaskSplit",
    "evaluate_episodes",
    "evaluate_settings",
]
