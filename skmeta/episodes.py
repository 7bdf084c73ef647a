"""N-way K-shot episodes: the unit of meta-training and meta-testing.

An episode (Vinyals et al., 2016) draws ``n_way`` classes, then ``k_shot``
labelled examples of each class (the support set) and ``n_query`` further
examples of each class (the query set) to classify. :class:`EpisodeSampler`
draws episodes as index arrays into ``y``, like a scikit-learn splitter draws
train/test indices, so the same sampler serves meta-training, meta-testing and
any data container.
"""

from numbers import Integral

import numpy as np
from sklearn.utils.validation import column_or_1d

from ._sampling import ClassIndex, ClassSampler
from ._sklearn import Interval, validate_params

__all__ = ["EpisodeSampler", "check_groups"]


class EpisodeSampler(ClassSampler):
    """Draw N-way K-shot episodes with Q queries per class from a label array.

    Each episode picks ``n_way`` distinct classes uniformly among the classes
    that have at least ``k_shot + n_query`` samples, then, for each class,
    ``k_shot + n_query`` distinct samples uniformly without replacement: the
    first ``k_shot`` form the support set, the rest the query set. Support and
    query never share a sample.

    With ``groups`` (the task of each sample: the user who rated an item, the
    alphabet of a character), each episode is one task: a group is picked
    uniformly among those with ``n_way`` such classes, then the classes and
    samples within it, so that classes may be shared between tasks (like and
    dislike, for every user) while an episode's samples never mix them. The
    classes of such an episode come in sorted order, so that where
    ``n_way`` is the number of classes every task has (2 for like and
    dislike), its class ``j`` means the same label in every task (a MAML
    head learns what "like" means); without groups their order is random.

    Parameters
    ----------
    n_way : int, default=5
        Classes per episode (N).
    k_shot : int, default=1
        Support samples per class (K).
    n_query : int, default=15
        Query samples per class (Q).
    n_episodes : int, default=100
        Episodes yielded by one call to :meth:`split`.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws. With an int, every call to :meth:`split` yields the
        same episodes; with a ``RandomState`` it goes on from its state.

    See Also
    --------
    skmeta.model_selection.evaluate_episodes : Accuracy over sampled episodes.

    References
    ----------
    .. [1] O. Vinyals, C. Blundell, T. Lillicrap, K. Kavukcuoglu, D. Wierstra.
       "Matching Networks for One Shot Learning". NeurIPS 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.episodes import EpisodeSampler
    >>> y = np.repeat(["cat", "dog", "emu"], 4)
    >>> sampler = EpisodeSampler(n_way=2, k_shot=1, n_query=2, n_episodes=1,
    ...                          random_state=0)
    >>> support, query = next(sampler.split(y=y))
    >>> support.shape, query.shape
    ((2,), (4,))

    Within groups (two users, each with likes and dislikes):

    >>> y = np.tile([1, 1, 1, 0, 0, 0], 2)
    >>> users = np.repeat(["ann", "bob"], 6)
    >>> support, query = next(sampler.split(y=y, groups=users))
    >>> len(set(users[np.concatenate([support, query])]))
    1
    """

    @validate_params(
        {
            "n_way": [Interval(Integral, 1, None, closed="left")],
            "k_shot": [Interval(Integral, 1, None, closed="left")],
            "n_query": [Interval(Integral, 0, None, closed="left")],
            "n_episodes": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(
        self, n_way=5, k_shot=1, n_query=15, n_episodes=100, random_state=None
    ):
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.n_episodes = n_episodes
        self.random_state = random_state

    @property
    def _n_draws(self):
        return self.n_episodes

    def split(self, X=None, y=None, groups=None):
        """Yield the support and query indices of each episode.

        Parameters
        ----------
        X : object, default=None
            Ignored; present for the scikit-learn splitter API.
        y : array-like of shape (n_samples,)
            Class labels, of any hashable type.
        groups : array-like of shape (n_samples,), default=None
            The task (group) of each sample, of any sortable type. Given, each
            episode draws its classes and samples within one group.

        Yields
        ------
        support : ndarray of shape (n_way * k_shot,), dtype int64
            Indices into ``y``, class-major: ``support.reshape(n_way, k_shot)``
            holds one episode class per row.
        query : ndarray of shape (n_way * n_query,), dtype int64
            Indices into ``y``, class-major in the same class order:
            ``query.reshape(n_way, n_query)``.

        Raises
        ------
        ValueError
            If ``y`` is missing or not 1-D, if fewer than ``n_way`` classes
            have at least ``k_shot + n_query`` samples, or, with ``groups``,
            if ``groups`` is not 1-D of the length of ``y`` or no group has
            ``n_way`` such classes.
        """
        return self._draws(y, groups)

    def _class_index(self, y, groups=None):
        """The samples of each class, and the classes an episode may draw.

        Returns a :class:`ClassIndex` and what an episode draws from: without
        groups, an array of the eligible classes' numbers; with groups, the
        index is over the (group, class) cells, and a list of pools, each
        group's eligible cells. Raises the ``ValueError`` of :meth:`split`
        when no group has ``n_way`` classes of ``k_shot + n_query`` samples.
        """
        per_class = self.k_shot + self.n_query
        if groups is None:
            index = ClassIndex(y)
            counts = index.counts
            eligible = np.flatnonzero(counts >= per_class)
            if eligible.size < self.n_way:
                raise ValueError(
                    f"n_way={self.n_way} needs {self.n_way} classes with at least "
                    f"k_shot + n_query = {per_class} samples each; y has "
                    f"{eligible.size} such classes (of {counts.size}"
                    + (
                        f", the smallest with {counts.min()} samples)."
                        if counts.size
                        else ")."
                    )
                )
            return index, eligible
        index, cell_group = _cells(y, groups)
        eligible = np.flatnonzero(index.counts >= per_class)
        # The cells are sorted by group: split the eligible ones where it changes.
        pools = np.split(eligible, np.flatnonzero(np.diff(cell_group[eligible])) + 1)
        pools = [pool for pool in pools if pool.size >= self.n_way]
        if not pools:
            best = np.bincount(cell_group[eligible]).max() if eligible.size else 0
            raise ValueError(
                f"n_way={self.n_way} needs a group with {self.n_way} classes of at "
                f"least k_shot + n_query = {per_class} samples each; none of the "
                f"{cell_group.max() + 1} groups has them (the best has {best})."
            )
        return index, pools

    def _draw(self, index, drawable, rng):
        """One episode: ``n_way`` drawable classes, then samples within each.

        Within groups (``drawable`` a list of pools), a group first; its
        classes then keep their order (its cells are sorted by label), so
        that episode class ``j`` is the group's ``j``-th label of those drawn.
        """
        if isinstance(drawable, list):
            pool = drawable[rng.randint(len(drawable))]
            rows = np.sort(rng.choice(pool, size=self.n_way, replace=False))
        else:
            rows = drawable[rng.choice(len(drawable), size=self.n_way, replace=False)]
        idx = index.draw(rows, self.k_shot + self.n_query, rng)
        return idx[:, : self.k_shot].ravel(), idx[:, self.k_shot :].ravel()


def check_groups(groups, y):
    """Validate the group (task) of each sample against its labels.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        The group of each sample: ints, strings or other hashable values.
    y : array-like of shape (n_samples,)
        The samples' labels; only their number is used.

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If ``groups`` is not 1-D, or does not hold one entry per label.
    """
    groups = column_or_1d(groups, warn=False)
    if len(groups) != len(y):
        raise ValueError(
            f"groups has {len(groups)} entries and y has {len(y)}; groups "
            "needs the group of each sample."
        )
    return groups


def _cells(y, groups):
    """A :class:`ClassIndex` over the (group, class) cells of ``y``, and their groups.

    Returns the index, whose classes are the cells sorted by group, and the
    group number (0 .. n_groups - 1, in sorted order of ``groups``) of each.
    """
    groups = check_groups(groups, y)
    try:
        _, group = np.unique(groups, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"groups must be of one sortable type: {exc}") from exc
    labels, label = np.unique(y, return_inverse=True)
    index = ClassIndex(group.reshape(-1) * len(labels) + label.reshape(-1))
    return index, index.classes // len(labels)
