"""Class-disjoint splits: the few-shot classes of a test never seen in training.

Few-shot learning is judged on classes never seen in training, so these
splitters separate classes, not samples (:class:`ClassKFold`,
:class:`ClassShuffleSplit`), or the samples of each task into a support set
and a query set (:class:`TaskSplit`).
"""

from numbers import Integral

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    column_or_1d,
)

from .._arrays import check_labels
from .._sklearn import Interval, validate_params
from ..episodes import check_groups


def _labels_as_groups(y):
    if y is None:
        raise ValueError("A class-disjoint split needs the labels y; got None.")
    return column_or_1d(y, warn=False)


class ClassKFold(GroupKFold):
    """K-fold cross-validation over classes: no class in both train and test.

    Each fold holds out about ``1 / n_splits`` of the classes of ``y`` with
    all their samples, so a few-shot estimator meta-trains on some classes
    and is scored on novel ones. It is :class:`sklearn.model_selection.GroupKFold`
    with the labels as groups, and works as ``cv=`` in ``GridSearchCV`` and
    ``cross_validate``.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2 and at most the number of classes.
    shuffle : bool, default=False
        Shuffle the classes before assigning them to folds.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle; only with ``shuffle=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.model_selection import ClassKFold
    >>> y = np.repeat(list("abcd"), 3)
    >>> train, test = next(ClassKFold(n_splits=2).split(np.zeros(12), y))
    >>> np.unique(y[train]).tolist(), np.unique(y[test]).tolist()
    (['a', 'c'], ['b', 'd'])
    """

    def split(self, X, y=None, groups=None):
        """Yield train and test indices; ``groups`` is ignored, ``y`` required.

        Raises
        ------
        ValueError
            If ``y`` is None or has fewer classes than ``n_splits``.
        """
        return super().split(X, y, groups=_labels_as_groups(y))

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of folds, ``n_splits``."""
        return self.n_splits


class ClassShuffleSplit(GroupShuffleSplit):
    """Random class-disjoint train/test splits.

    Each split holds out a random ``test_size`` of the classes of ``y`` with
    all their samples. It is :class:`sklearn.model_selection.GroupShuffleSplit`
    with the labels as groups, and works as ``cv=`` in ``GridSearchCV`` and
    ``cross_validate``.

    Parameters
    ----------
    n_splits : int, default=5
        Number of re-shuffling and splitting iterations.
    test_size : float, int or None, default=None
        Fraction (float) or number (int) of classes held out; ``None`` means
        the complement of ``train_size``, or 0.2 if both are ``None``.
    train_size : float, int or None, default=None
        Fraction or number of classes to train on; ``None`` means the rest.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.
    """

    def split(self, X, y=None, groups=None):
        """Yield train and test indices; ``groups`` is ignored, ``y`` required.

        Raises
        ------
        ValueError
            If ``y`` is None, or the sizes leave no class on a side.
        """
        return super().split(X, y, groups=_labels_as_groups(y))


class TaskSplit:
    """One meta-test task per group: a few samples of each class, then the rest.

    The cold-start protocol (a few of a new user's ratings, then everything
    else the user rated): for each group with more than ``k_shot`` samples
    of every class of ``y``, ``k_shot`` random samples of each class are the
    support set and all the group's other samples the query set. Groups that
    have fewer are left out (:meth:`get_n_splits` counts those kept), so that
    every query set holds every class and a ROC AUC is defined. Where
    :func:`evaluate_episodes` draws many small episodes, this scores each
    group once, on all its samples.

    Parameters
    ----------
    k_shot : int, default=5
        Support samples of each class in each task.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of the support samples.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.model_selection import TaskSplit
    >>> y = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    >>> users = np.array(["ann"] * 4 + ["bob"] * 4)
    >>> [(len(s), len(q)) for s, q in TaskSplit(k_shot=1).split(None, y, users)]
    [(2, 2), (2, 2)]
    """

    @validate_params(
        {
            "k_shot": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(self, k_shot=5, random_state=None):
        self.k_shot = k_shot
        self.random_state = random_state

    def __repr__(self):
        return f"TaskSplit(k_shot={self.k_shot}, random_state={self.random_state!r})"

    def split(self, X, y, groups):
        """Yield the support and query indices of each group's task.

        Parameters
        ----------
        X : object
            Ignored; present for the scikit-learn splitter API.
        y : array-like of shape (n_samples,)
            Class labels.
        groups : array-like of shape (n_samples,)
            The task of each sample, of one sortable type.

        Yields
        ------
        support : ndarray of shape (n_classes * k_shot,), dtype int64
            Indices into ``y``, class-major, classes in sorted order.
        query : ndarray of shape (n_group_samples - n_classes * k_shot,), \
dtype int64
            The group's other samples, in increasing order.

        Raises
        ------
        ValueError
            If ``y`` or ``groups`` is not 1-D class labels, or their lengths
            differ.
        """
        y, groups = self._check(y, groups)
        rng = check_random_state(self.random_state)
        classes = np.unique(y)
        for rows in self._eligible(y, groups, classes):
            support = np.concatenate(
                [
                    rng.choice(rows[y[rows] == c], self.k_shot, replace=False)
                    for c in classes
                ]
            )
            yield support.astype(np.int64), np.setdiff1d(rows, support)

    def get_n_splits(self, X=None, y=None, groups=None):
        """The number of tasks: groups with more than ``k_shot`` of every class.

        Parameters
        ----------
        X : object, default=None
            Ignored; there for scikit-learn's splitter API.
        y : array-like of shape (n_samples,)
            Labels.
        groups : array-like of shape (n_samples,)
            The group (task) of each sample.

        Returns
        -------
        int
            The splits :meth:`split` yields.

        Raises
        ------
        ValueError
            If ``y`` or ``groups`` is missing, or as :meth:`split`.
        """
        y, groups = self._check(y, groups)
        return sum(1 for _ in self._eligible(y, groups, np.unique(y)))

    def _check(self, y, groups):
        missing = [name for name, v in (("y", y), ("groups", groups)) if v is None]
        if missing:
            raise ValueError(
                "TaskSplit needs the labels y and the groups; got "
                + " and ".join(f"{name}=None" for name in missing)
                + "."
            )
        y = check_labels(y)
        return y, check_groups(check_labels(groups, "groups"), y)

    def _eligible(self, y, groups, classes):
        """The sorted rows of each group (in group order) with enough of each class."""
        order = np.argsort(groups, kind="stable")
        _, starts = np.unique(groups[order], return_index=True)
        for rows in np.split(order, starts[1:]):
            counts = np.array([np.sum(y[rows] == c) for c in classes])
            if counts.min() > self.k_shot:
                yield np.sort(rows)
