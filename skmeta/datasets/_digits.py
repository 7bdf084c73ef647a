"""scikit-learn's bundled digits, split into base and novel digits.

A small tabular data set that needs no download. Five base digits are too few
classes to meta-learn a metric that transfers to the five novel ones: the user
guide shows the numbers beside their baselines.
"""

import numbers

import numpy as np
from sklearn.datasets import load_digits

from ._split import FewShotSplit

__all__ = ["load_digits_fewshot"]


def load_digits_fewshot(*, novel_classes=(5, 6, 7, 8, 9)):
    """Split scikit-learn's bundled digits into base and novel classes.

    The embedded default data set: it needs no download. The 1,797 8x8 images of
    handwritten digits from ``sklearn.datasets.load_digits`` (the UCI ML
    hand-written digits test set) are scaled from [0, 16] to [0, 1]; the digits in
    ``novel_classes`` are held out for meta-testing and the rest are the base
    classes for meta-training.

    Parameters
    ----------
    novel_classes : sequence of int, default=(5, 6, 7, 8, 9)
        Distinct digits in 0..9 held out as novel classes; at least one, and not
        all ten.

    Returns
    -------
    split : FewShotSplit
        ``X_base`` of shape (n_base, 64) and ``X_novel`` of shape (n_novel, 64),
        float32 in [0, 1]; ``y_base`` and ``y_novel`` int64 digit labels;
        ``name`` is ``"digits"``.

    Raises
    ------
    ValueError
        If ``novel_classes`` is not a sequence of integers, is empty, holds a
        value outside 0..9 or a repeated value, or holds all ten digits.

    Examples
    --------
    >>> from skmeta.datasets import load_digits_fewshot
    >>> split = load_digits_fewshot(novel_classes=[0, 1])
    >>> split.X_base.shape[1], sorted(set(split.y_novel.tolist()))
    (64, [0, 1])
    """
    novel_classes = _check_novel_classes(novel_classes)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    novel = np.isin(y, novel_classes)
    return FewShotSplit(
        X_base=X[~novel],
        y_base=y[~novel],
        X_novel=X[novel],
        y_novel=y[novel],
        name="digits",
    )


def _check_novel_classes(novel_classes):
    expected = "a non-empty sequence of distinct ints in 0..9, not all ten"
    if isinstance(novel_classes, str | bytes) or not np.iterable(novel_classes):
        raise ValueError(f"novel_classes must be {expected}; got {novel_classes!r}.")
    values = list(novel_classes)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(
                f"novel_classes must be {expected}; got {novel_classes!r}, "
                f"which holds {value!r}."
            )
    values = [int(v) for v in values]
    if not values:
        raise ValueError(f"novel_classes must be {expected}; got an empty sequence.")
    outside = [v for v in values if not 0 <= v <= 9]
    if outside:
        raise ValueError(
            f"novel_classes must be {expected}; got {novel_classes!r}, with "
            f"{outside} outside 0..9."
        )
    if len(set(values)) != len(values):
        raise ValueError(
            f"novel_classes must be {expected}; got {novel_classes!r}, which "
            "repeats a digit."
        )
    if len(values) == 10:
        raise ValueError(
            f"novel_classes must be {expected}; got all ten digits, which leaves "
            "no base class to train on."
        )
    return sorted(values)
