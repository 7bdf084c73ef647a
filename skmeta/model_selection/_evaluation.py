"""Episodic scoring: query accuracy over many N-way K-shot episodes.

A few-shot score is the mean query accuracy over many N-way K-shot episodes
of held-out classes, reported with its 95% confidence interval as the field
does (e.g. Snell et al., 2017; Chen et al., 2019).
"""

import copy
import sys
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils import metadata_routing
from sklearn.utils.metadata_routing import _MetadataRequester
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
)
from tqdm.auto import tqdm

from .._arrays import check_labels
from .._docs import fill_doc
from .._sklearn import Interval, validate_params
from ..episodes import EpisodeSampler, check_groups

#: What evaluate_episodes and EpisodicScorer take to draw their episodes.
_EPISODES = {
    "n_way": [Interval(Integral, 2, None, closed="left")],
    "k_shot": [Interval(Integral, 1, None, closed="left")],
    "n_query": [Interval(Integral, 1, None, closed="left")],
    "n_episodes": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}


#: The shape of the meta-test episodes, in evaluate_episodes and EpisodicScorer.
_EPISODE_SHAPE = """\
    n_way : int, default=5
        Classes per episode.
    k_shot : int, default=1
        Support samples per class.
    n_query : int, default=15
        Query samples per class.
"""


@dataclass(frozen=True)
class EpisodeScores:
    """Query accuracy over meta-test episodes, with its 95% confidence interval.

    Attributes
    ----------
    mean : float
        Mean accuracy over episodes, in [0, 1].
    ci95 : float
        Half-width of the 95% confidence interval of the mean,
        ``1.96 * std / sqrt(n_episodes)`` (population std of the episode
        accuracies), the convention of the few-shot literature.
    accuracies : ndarray of shape (n_episodes,), dtype float64
        Query accuracy of each episode.
    n_way, k_shot, n_query : int
        The episode shape.
    """

    mean: float
    ci95: float
    accuracies: np.ndarray
    n_way: int
    k_shot: int
    n_query: int

    def __str__(self):
        return (
            f"{self.n_way}-way {self.k_shot}-shot: {100 * self.mean:.2f} "
            f"± {100 * self.ci95:.2f} % ({len(self.accuracies)} episodes)"
        )


@validate_params(
    {
        "estimator": [object],
        "X": ["array-like"],
        "y": ["array-like"],
        **_EPISODES,
        "groups": ["array-like", None],
        "verbose": ["boolean", None],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(episode_shape=_EPISODE_SHAPE)
def evaluate_episodes(
    estimator,
    X,
    y,
    *,
    n_way=5,
    k_shot=1,
    n_query=15,
    n_episodes=600,
    random_state=None,
    groups=None,
    verbose=None,
):
    """Meta-test a fitted few-shot classifier on N-way K-shot episodes.

    Each episode draws ``n_way`` classes of ``y``, ``k_shot`` support and
    ``n_query`` query samples per class (:class:`skmeta.episodes.EpisodeSampler`);
    the estimator classifies the queries among the episode's classes given
    the support set, and the episode's score is its query accuracy. The
    estimator is not changed. Methods with a fixed embedding embed every
    sample of X once, not once per episode.

    Parameters
    ----------
    estimator : fitted few-shot classifier
        A fitted few-shot classifier of skmeta (for instance
        :class:`skmeta.PrototypicalClassifier`), a fitted
        :class:`~sklearn.pipeline.Pipeline` that ends in one (X goes through
        the other steps first), or any fitted classifier with
        ``score_episodes(X, y, episodes, groups=None)`` (the protocol of
        :meth:`skmeta.PrototypicalClassifier.score_episodes`), or with
        ``adapt(X_support, y_support)`` and ``predict``, which a copy of it
        then does in each episode (slower: nothing is shared between
        episodes).
    X : array-like of shape (n_samples, ...)
        Samples of the novel classes, of the shape the estimator was fitted on.
    y : array-like of shape (n_samples,)
        Their labels.
    {episode_shape}
    n_episodes : int, default=600
        Episodes; the field reports at least 600.
    random_state : int, RandomState instance or None, default=None
        Seeds the episodes.
    groups : array-like of shape (n_samples,), default=None
        The task of each sample (a user, an alphabet). Given, each episode is
        drawn within one group (see :class:`~skmeta.episodes.EpisodeSampler`).
    verbose : bool or None, default=None
        Show a progress bar of the episodes on stderr. None shows it only
        when stderr is a terminal, never in a log file or a pipe.

    Returns
    -------
    EpisodeScores
        Mean accuracy, 95% CI half-width and per-episode accuracies.

    Raises
    ------
    ValueError
        If fewer than ``n_way`` classes (with ``groups``, in any group) have
        ``k_shot + n_query`` samples (checked before anything is embedded),
        if X, y and ``groups`` differ in length, or X has another sample
        shape than in fit.
    TypeError
        If ``estimator`` has no ``adapt`` and ``predict`` (nor is a Pipeline
        ending in such a classifier).
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    """
    return _evaluate(
        estimator,
        X,
        y,
        [(n_way, k_shot)],
        n_query,
        n_episodes,
        random_state,
        groups,
        verbose,
    )[n_way, k_shot]


@validate_params(
    {
        "estimator": [object],
        "X": ["array-like"],
        "y": ["array-like"],
        "settings": [list, tuple],
        **{name: _EPISODES[name] for name in ("n_query", "n_episodes")},
        "random_state": ["random_state"],
        "groups": ["array-like", None],
        "verbose": ["boolean", None],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_settings(
    estimator,
    X,
    y,
    settings,
    *,
    n_query=15,
    n_episodes=600,
    random_state=None,
    groups=None,
    verbose=None,
):
    """Meta-test a fitted few-shot classifier in several N-way K-shot settings.

    :func:`evaluate_episodes` for each ``(n_way, k_shot)`` of ``settings``,
    each drawing its episodes from the same ``random_state``, with the same
    results, but X is embedded once for all of them where the estimator's
    embedding does not change with the episode (every few-shot classifier
    of skmeta, unless it fine-tunes in each episode): the usual table of
    5-way and 20-way, 1-shot and 5-shot costs one embedding of the novel
    classes, not four.

    Parameters
    ----------
    estimator : fitted few-shot classifier
        As for :func:`evaluate_episodes`.
    X : array-like of shape (n_samples, ...)
        Samples of the novel classes, of the shape the estimator was fitted on.
    y : array-like of shape (n_samples,)
        Their labels.
    settings : list of (int, int)
        The ``(n_way, k_shot)`` pairs: ``n_way`` at least 2 classes per
        episode, ``k_shot`` at least 1 support sample per class.
    n_query : int, default=15
        Query samples per class, in every setting.
    n_episodes : int, default=600
        Episodes per setting.
    random_state : int, RandomState instance or None, default=None
        Seeds the episodes of each setting (an int: the same episodes as
        :func:`evaluate_episodes` with that seed).
    groups : array-like of shape (n_samples,), default=None
        The task of each sample; given, each episode is drawn within one group.
    verbose : bool or None, default=None
        Show a progress bar of each setting's episodes on stderr; None shows
        it only when stderr is a terminal.

    Returns
    -------
    dict of (int, int) to EpisodeScores
        The scores of each setting, in the order of ``settings``.

    Raises
    ------
    ValueError
        If ``settings`` is empty or holds anything but ``(n_way, k_shot)``
        pairs of ints in range, or if a setting cannot form one episode (all
        are checked before anything is embedded); and as
        :func:`evaluate_episodes` raises.
    TypeError
        As :func:`evaluate_episodes` raises.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.

    Examples
    --------
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> from skmeta.model_selection import evaluate_settings
    >>> split = load_digits_fewshot()
    >>> clf = PrototypicalClassifier(backbone="mlp", max_epochs=0)
    >>> clf = clf.fit(split.X_base, split.y_base)
    >>> scores = evaluate_settings(
    ...     clf, split.X_novel, split.y_novel, [(3, 1), (3, 5)],
    ...     n_episodes=20, random_state=0,
    ... )
    >>> list(scores)
    [(3, 1), (3, 5)]
    """
    settings = _check_settings(settings)
    return _evaluate(
        estimator,
        X,
        y,
        settings,
        n_query,
        n_episodes,
        random_state,
        groups,
        verbose,
    )


def _check_settings(settings):
    """``settings`` as a list of ``(n_way, k_shot)`` tuples, or a ValueError."""
    checked = []
    for setting in settings:
        pair = tuple(setting) if isinstance(setting, (list, tuple)) else None
        if (
            pair is None
            or len(pair) != 2
            or not all(
                isinstance(v, Integral) and not isinstance(v, bool) for v in pair
            )
            or pair[0] < 2
            or pair[1] < 1
        ):
            raise ValueError(
                "settings must hold (n_way, k_shot) pairs of ints, n_way >= 2 "
                f"and k_shot >= 1; got {setting!r}."
            )
        checked.append((int(pair[0]), int(pair[1])))
    if not checked:
        raise ValueError(
            "settings must hold at least one (n_way, k_shot) pair; got none."
        )
    return checked


def _evaluate(
    estimator, X, y, settings, n_query, n_episodes, random_state, groups, verbose
):
    """The scores of each ``(n_way, k_shot)`` of ``settings``, X embedded once."""
    model = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    episodic = hasattr(model, "score_episodes")
    if not episodic and not (hasattr(model, "adapt") and hasattr(model, "predict")):
        raise TypeError(
            "estimator must be a few-shot classifier (with adapt and predict), "
            f"or a Pipeline that ends in one; got {type(model).__name__}."
        )
    check_is_fitted(estimator)
    if model is not estimator:
        X = estimator[:-1].transform(X)
    y = check_labels(y)
    check_consistent_length(X, y)
    if groups is not None:
        groups = check_groups(check_labels(groups, "groups"), y)
    if verbose is None:
        verbose = sys.stderr.isatty()
    samplers = [
        (_ShownEpisodes if verbose else EpisodeSampler)(
            n_way, k_shot, n_query, n_episodes, random_state
        )
        for n_way, k_shot in settings
    ]
    for sampler in samplers:
        try:
            sampler._class_index(y, groups)  # at once, not after embedding X
        except ValueError as error:
            raise _NoEpisodeError(str(error)) from None
    score = _episode_scoring(model, X)
    results = {}
    for (n_way, k_shot), sampler in zip(settings, samplers, strict=True):
        accuracies = score(y, sampler, groups)
        results[n_way, k_shot] = EpisodeScores(
            mean=float(accuracies.mean()),
            ci95=float(1.96 * accuracies.std() / np.sqrt(len(accuracies))),
            accuracies=accuracies,
            n_way=n_way,
            k_shot=k_shot,
            n_query=n_query,
        )
    return results


def _episode_scoring(model, X):
    """``score(y, sampler, groups)``: the query accuracy of each episode of X.

    skmeta's classifiers embed X once, for every sampler (``_episode_scorer``);
    another estimator with ``score_episodes`` is called with the protocol's
    three arguments where there are no groups; one with only ``adapt`` and
    ``predict`` adapts a copy of itself to each episode.
    """
    if hasattr(model, "_episode_scorer"):
        scorer = model._episode_scorer(X)
        return lambda y, sampler, groups: scorer(y, sampler, groups)[1]
    if hasattr(model, "score_episodes"):

        def score(y, sampler, groups):
            if groups is None:  # the protocol's three arguments, for third parties
                return model.score_episodes(X, y, sampler)[1]
            return model.score_episodes(X, y, sampler, groups=groups)[1]

        return score
    return lambda y, sampler, groups: _adapted_copy_accuracies(
        model, X, y, sampler, groups
    )


class _NoEpisodeError(ValueError):
    """The labels cannot form one episode of the asked shape."""


class _ShownEpisodes(EpisodeSampler):
    """An episode sampler whose ``split`` shows a progress bar on stderr."""

    def split(self, X=None, y=None, groups=None):
        shape = f"{self.n_way}-way {self.k_shot}-shot episodes"
        with tqdm(total=self.n_episodes, desc=shape, unit="episode") as bar:
            for episode in super().split(X, y, groups):
                yield episode
                bar.update()


def _adapted_copy_accuracies(estimator, X, y, sampler, groups):
    """Query accuracy of each episode, adapting a copy of ``estimator`` to it."""
    X = np.asarray(X) if not hasattr(X, "iloc") else X
    accuracies = []
    for support, query in sampler.split(y=y, groups=groups):
        model = copy.deepcopy(estimator).adapt(_take(X, support), y[support])
        accuracies.append(np.mean(model.predict(_take(X, query)) == y[query]))
    return np.asarray(accuracies, dtype=np.float64)


def _take(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


@fill_doc(episode_shape=_EPISODE_SHAPE)
class EpisodicScorer(_MetadataRequester):
    """Scorer for ``GridSearchCV`` and ``cross_validate``: mean episode accuracy.

    ``scorer(estimator, X, y)`` returns the mean query accuracy of
    :func:`evaluate_episodes` on (X, y), the held-out classes of a
    class-disjoint split, without changing the estimator. With an int
    ``random_state`` every candidate is scored on the same episodes.

    A test fold that cannot form one episode (fewer than ``n_way`` classes
    with ``k_shot + n_query`` samples) is a ``ValueError`` that says so. In
    ``GridSearchCV`` and ``cross_validate``, pass ``error_score="raise"`` so
    that it stops the search: scikit-learn catches what a scorer raises and,
    with its default ``error_score=np.nan``, records NaN with the message in
    a "Scoring failed" warning; a search whose every score is NaN still
    returns a ``best_params_``, which then means nothing.

    Tasks by group (each episode within one user, say) need the test fold's
    ``groups``: with scikit-learn's metadata routing on, ask for them with
    ``scorer.set_score_request(groups=True)`` and pass ``groups`` to the
    search's ``fit``, as the estimator's ``set_fit_request(groups=True)``
    does for training. Otherwise episodes are drawn across groups.

    Parameters
    ----------
    {episode_shape}
    n_episodes : int, default=100
        Episodes per call; fewer than for a final report, since model
        selection only compares candidates.
    random_state : int, RandomState instance or None, default=0
        Seeds the episodes.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.model_selection import ClassKFold, EpisodicScorer
    >>> search = GridSearchCV(
    ...     PrototypicalClassifier(max_epochs=1),
    ...     {"embedding_dim": [16, 32]},
    ...     cv=ClassKFold(n_splits=2),
    ...     scoring=EpisodicScorer(n_way=2, k_shot=1, n_episodes=20),
    ...     error_score="raise",
    ... )
    """

    @validate_params(
        _EPISODES,
        prefer_skip_nested_validation=True,
    )
    def __init__(self, n_way=5, k_shot=1, n_query=15, n_episodes=100, random_state=0):
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.n_episodes = n_episodes
        self.random_state = random_state

    def __repr__(self):
        return (
            f"EpisodicScorer(n_way={self.n_way}, k_shot={self.k_shot}, "
            f"n_query={self.n_query}, n_episodes={self.n_episodes}, "
            f"random_state={self.random_state!r})"
        )

    # The scored estimator is an argument, not metadata to route.
    __metadata_request__score = {"estimator": metadata_routing.UNUSED}

    def score(self, estimator, X, y, groups=None):
        """Mean accuracy of ``estimator`` over episodes drawn from (X, y).

        Parameters
        ----------
        estimator : fitted estimator
            Any estimator :func:`evaluate_episodes` takes.
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), default=None
            The task of each sample; given, each episode is drawn within one
            group.

        Returns
        -------
        float
            Mean query accuracy, in [0, 1].

        Raises
        ------
        ValueError
            If (X, y) cannot form one episode: fewer than ``n_way`` classes
            (with ``groups``, in any group) have ``k_shot + n_query`` samples;
            or as :func:`evaluate_episodes`.
        """
        try:
            scores = evaluate_episodes(
                estimator,
                X,
                y,
                n_way=self.n_way,
                k_shot=self.k_shot,
                n_query=self.n_query,
                n_episodes=self.n_episodes,
                random_state=self.random_state,
                groups=groups,
                verbose=False,
            )
        except _NoEpisodeError as error:
            n_classes = len(np.unique(check_labels(y)))
            raise ValueError(
                f"{self!r} cannot draw one episode from these {n_classes} "
                f"classes (a test fold's, in a search): {error} Score fewer "
                "ways (a smaller n_way), shots or queries, or hold out more "
                "classes in each fold (fewer folds, or a larger test_size). In "
                "GridSearchCV and cross_validate, error_score='raise' stops at "
                "such a fold; with their default, error_score=np.nan, it scores "
                "NaN and the search still names a best candidate."
            ) from None
        return scores.mean

    __call__ = score
