"""The sampling core of episodes and P x K batches: samples drawn within classes.

:class:`ClassIndex` groups the sample indices of each class of a label array
end to end (one array, with each class's start and count), so that memory
is linear in the number of samples whatever the class sizes: a table padded
to the largest class would cost ``n_classes * largest`` (one class of
100,000 samples among 1000 of 100: 800 MB of int64).
"""

import inspect

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d

__all__ = ["ClassIndex", "ClassSampler"]


class ClassSampler:
    """Base of the samplers: draws of classes, then of samples within each.

    A scikit-learn splitter (``split``, ``get_n_splits``). A subclass sets
    ``_n_draws`` (draws per :meth:`split` call), and provides
    ``_class_index(y, *context)``, returning a :class:`ClassIndex` and the classes a
    draw may pick (raising the ``ValueError`` its ``split`` documents), and
    ``_draw(index, drawable, rng)``, returning one draw's indices.
    """

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of draws one ``split`` call yields."""
        return self._n_draws

    def _draws(self, y, *context):
        """The draws of one ``split`` call over labels ``y`` (and ``context``).

        ``context`` goes on to ``_class_index``: the groups of an episode
        sampler.
        """
        if y is None:
            name = type(self).__name__
            raise ValueError(f"{name}.split needs the labels y; got None.")
        index, drawable = self._class_index(column_or_1d(y, warn=False), *context)
        rng = check_random_state(self.random_state)
        for _ in range(self._n_draws):
            yield self._draw(index, drawable, rng)

    def __repr__(self):
        params = inspect.signature(type(self)).parameters
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in params)
        return f"{type(self).__name__}({shown})"


class ClassIndex:
    """The samples of each class of ``y``, grouped without padding.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels of any sortable type.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        The sorted distinct labels.
    counts : ndarray of shape (n_classes,), dtype int64
        Samples of each class.
    """

    #: A class drawn from is padded into a small matrix of random keys when
    #: it has at most this many samples (or ``4 m`` for ``m`` picks); larger
    #: classes are drawn by rejection, in time and memory of order ``m``.
    max_padded = 256

    def __init__(self, y):
        self.classes, y_enc, self.counts = np.unique(
            y, return_inverse=True, return_counts=True
        )
        self._order = np.argsort(y_enc.reshape(-1), kind="stable")
        self._starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def draw(self, rows, m, rng, *, fill=False):
        """``m`` distinct random samples of each class in ``rows``.

        Parameters
        ----------
        rows : ndarray of shape (r,), dtype int
            Class numbers (indices into ``classes``).
        m : int
            Samples per class.
        rng : numpy.random.RandomState
        fill : bool, default=False
            A class with fewer than ``m`` samples gives each of its samples
            once, in random order, then random repeats of them. Without
            ``fill``, every class in ``rows`` must have ``m`` samples.

        Returns
        -------
        ndarray of shape (r, m), dtype int64
            Indices into ``y``; row ``i`` holds samples of class ``rows[i]``,
            in uniformly random order, without repeats up to its size.
        """
        sizes = self.counts[rows]
        cap = max(self.max_padded, 4 * m)
        large = sizes > cap
        out = np.empty((len(rows), m), dtype=np.int64)
        small = np.flatnonzero(~large)
        if small.size:
            out[small] = self._draw_padded(rows[small], sizes[small], m, rng, fill)
        for i in np.flatnonzero(large):
            picks = self._distinct(sizes[i], m, rng)
            out[i] = self._order[self._starts[rows[i]] + picks]
        return out

    def _draw_padded(self, rows, sizes, m, rng, fill):
        """Random keys over the classes' samples, padding last; argsort picks."""
        width = max(int(sizes.max()), m)
        offsets = np.arange(width)
        valid = offsets < sizes[:, None]
        chosen = np.where(
            valid,
            self._order[
                np.minimum(self._starts[rows, None] + offsets, len(self._order) - 1)
            ],
            -1,
        )
        keys = rng.random(chosen.shape)
        keys[~valid] = np.inf
        shuffled = np.take_along_axis(chosen, np.argsort(keys, axis=1), axis=1)
        picks = shuffled[:, :m].copy()
        short = picks < 0
        if fill and short.any():
            r = np.nonzero(short)[0]
            picks[short] = shuffled[r, (rng.random(r.size) * sizes[r]).astype(int)]
        return picks

    @staticmethod
    def _distinct(n, m, rng):
        """``m`` distinct ints in [0, n), uniformly, for ``n`` much larger than ``m``.

        Draws ``2 m`` with replacement and keeps a random ``m`` of the distinct
        values: by symmetry every ``m``-subset is equally likely, in every
        order.
        """
        while True:
            values = np.unique(rng.randint(n, size=2 * m))
            if len(values) >= m:
                return rng.permutation(values)[:m]
