"""P x K batches: the unit of training for deep metric learning.

Pair and triplet losses learn only from batches that hold several samples of
the same class. :class:`ClassBalancedBatchSampler` draws each batch as ``P``
classes times ``K`` samples of each (Hermans, Beyer & Leibe, 2017), so every
sample of a batch has ``K - 1`` positives and ``(P - 1) K`` negatives. Like
:class:`skmeta.episodes.EpisodeSampler` it yields index arrays into ``y``, as a
scikit-learn splitter does, so it serves any data container.
"""

from numbers import Integral

import numpy as np

from ._sampling import ClassIndex, ClassSampler
from ._sklearn import Interval, StrOptions, validate_params

__all__ = ["ClassBalancedBatchSampler"]


class ClassBalancedBatchSampler(ClassSampler):
    """Draw batches of P classes x K samples per class from a label array.

    Each batch picks ``n_classes_per_batch`` (P) distinct classes uniformly
    among the eligible classes, whatever their sizes, then ``n_samples_per_class``
    (K) distinct samples of each class uniformly without replacement. A batch
    is class-major: ``batch.reshape(P, K)`` holds one class per row. Batches
    are drawn independently, so a sample may appear in several batches of one
    :meth:`split`.

    Parameters
    ----------
    n_classes_per_batch : int, default=8
        Classes per batch (P), at least 1.
    n_samples_per_class : int, default=4
        Samples per class in a batch (K), at least 1; K >= 2 gives every
        sample a positive.
    n_batches : int, default=100
        Batches yielded by one call to :meth:`split`.
    small_classes : {"raise", "skip", "replace"}, default="raise"
        What to do with a class that has fewer than K samples:

        - ``"raise"``: raise a ``ValueError`` naming the class;
        - ``"skip"``: never draw it (its samples are not used);
        - ``"replace"``: draw it like the others, taking each of its samples
          once and filling the rest of its K slots with random repeats of
          them (a batch then holds duplicate indices).
    random_state : int, RandomState instance or None, default=None
        Seeds the draws. With an int, every call to :meth:`split` yields the
        same batches; with a ``RandomState`` it goes on from its state.

    See Also
    --------
    skmeta.episodes.EpisodeSampler : N-way K-shot episodes for meta-learning.
    skmeta.TripletEmbedder : Trains on these batches.

    References
    ----------
    .. [1] A. Hermans, L. Beyer, B. Leibe. "In Defense of the Triplet Loss for
       Person Re-Identification". arXiv:1703.07737, 2017 (the P x K batch).

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.batches import ClassBalancedBatchSampler
    >>> y = np.repeat(["cat", "dog", "emu"], 4)
    >>> sampler = ClassBalancedBatchSampler(n_classes_per_batch=2,
    ...                                     n_samples_per_class=3,
    ...                                     n_batches=1, random_state=0)
    >>> batch = next(sampler.split(y=y))
    >>> y[batch].reshape(2, 3)[:, 0] == y[batch].reshape(2, 3)[:, 2]
    array([ True,  True])
    """

    @validate_params(
        {
            "n_classes_per_batch": [Interval(Integral, 1, None, closed="left")],
            "n_samples_per_class": [Interval(Integral, 1, None, closed="left")],
            "n_batches": [Interval(Integral, 1, None, closed="left")],
            "small_classes": [StrOptions({"raise", "skip", "replace"})],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(
        self,
        n_classes_per_batch=8,
        n_samples_per_class=4,
        n_batches=100,
        small_classes="raise",
        random_state=None,
    ):
        self.n_classes_per_batch = n_classes_per_batch
        self.n_samples_per_class = n_samples_per_class
        self.n_batches = n_batches
        self.small_classes = small_classes
        self.random_state = random_state

    @property
    def batch_size(self):
        """Samples per batch, ``P * K``."""
        return self.n_classes_per_batch * self.n_samples_per_class

    @property
    def _n_draws(self):
        return self.n_batches

    def split(self, X=None, y=None, groups=None):
        """Yield the indices of each batch.

        Parameters
        ----------
        X : object, default=None
            Ignored; present for the scikit-learn splitter API.
        y : array-like of shape (n_samples,)
            Class labels, of any hashable type.
        groups : object, default=None
            Ignored.

        Yields
        ------
        batch : ndarray of shape (n_classes_per_batch * n_samples_per_class,), \
dtype int64
            Indices into ``y``, class-major: ``batch.reshape(P, K)`` holds the
            K samples of one class per row.

        Raises
        ------
        ValueError
            If ``y`` is missing or not 1-D; with ``small_classes="raise"``, if
            a class has fewer than K samples; if fewer than P classes can be
            drawn (classes with at least K samples, or all classes with
            ``small_classes="replace"``).
        """
        return self._draws(y)

    def _class_index(self, y):
        """The samples of each class, and the classes a batch may draw.

        Raises the ``ValueError`` of :meth:`split` for classes too small
        (with ``small_classes="raise"``) or too few.
        """
        index = ClassIndex(y)
        classes, counts = index.classes, index.counts
        P, K = self.n_classes_per_batch, self.n_samples_per_class
        small = counts < K
        if self.small_classes == "raise" and small.any():
            shown = ", ".join(
                f"class {classes[c].item()!r} has {counts[c]}"
                for c in np.flatnonzero(small)[:5]
            )
            raise ValueError(
                f"n_samples_per_class={K} needs every class of y to have at least "
                f"{K} samples; {small.sum()} of {classes.size} classes have fewer "
                f"({shown}{', ...' if small.sum() > 5 else ''}). Lower "
                "n_samples_per_class, or set small_classes='skip' to leave those "
                "classes out of the batches or 'replace' to draw them with "
                "replacement."
            )
        if self.small_classes == "skip":
            drawable = np.flatnonzero(~small)
        else:
            drawable = np.arange(classes.size)
        if drawable.size < P:
            needed = (
                "classes"
                if self.small_classes == "replace"
                else f"classes with at least n_samples_per_class={K} samples each"
            )
            raise ValueError(
                f"n_classes_per_batch={P} needs {P} {needed}; y has {drawable.size} "
                f"such classes (of {classes.size})."
            )
        return index, drawable

    def _draw(self, index, drawable, rng):
        """One batch: P drawable classes, then K samples within each."""
        rows = drawable[
            rng.choice(len(drawable), size=self.n_classes_per_batch, replace=False)
        ]
        fill = self.small_classes == "replace"
        return index.draw(rows, self.n_samples_per_class, rng, fill=fill).ravel()
