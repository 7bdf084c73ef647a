"""The base / novel class split that every few-shot data set loader returns."""

from dataclasses import dataclass

import numpy as np

__all__ = ["FewShotSplit"]


@dataclass(frozen=True, eq=False)
class FewShotSplit:
    """A class-disjoint split of a data set into base and novel classes.

    Base classes are for meta-training (fit); novel classes are only for
    meta-testing (``adapt`` on a support set, then predict on queries). The two
    sets of classes are disjoint, so a model evaluated on the novel classes has
    never seen any of them in training.

    Parameters
    ----------
    X_base : ndarray of shape (n_base_samples, ...)
        Samples of the base classes, float32.
    y_base : ndarray of shape (n_base_samples,)
        Labels of ``X_base``.
    X_novel : ndarray of shape (n_novel_samples, ...)
        Samples of the novel classes, float32, same trailing shape as ``X_base``.
    y_novel : ndarray of shape (n_novel_samples,)
        Labels of ``X_novel``, none of them in ``y_base``.
    name : str
        Short name of the split, for reports.

    Raises
    ------
    ValueError
        If a label array does not match its sample array in length, or if a class
        occurs in both ``y_base`` and ``y_novel``.

    Examples
    --------
    >>> from skmeta.datasets import load_digits_fewshot
    >>> split = load_digits_fewshot()
    >>> sorted(set(split.y_base.tolist())), sorted(set(split.y_novel.tolist()))
    ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    """

    X_base: np.ndarray
    y_base: np.ndarray
    X_novel: np.ndarray
    y_novel: np.ndarray
    name: str

    def __post_init__(self):
        for X_name, y_name in (("X_base", "y_base"), ("X_novel", "y_novel")):
            n_X, n_y = len(getattr(self, X_name)), len(getattr(self, y_name))
            if n_X != n_y:
                raise ValueError(
                    f"{X_name} and {y_name} must have the same length; "
                    f"got {n_X} and {n_y}."
                )
        shared = np.intersect1d(self.y_base, self.y_novel)
        if shared.size:
            raise ValueError(
                "y_base and y_novel must not share a class; got "
                f"{shared.size} shared class(es), e.g. {shared[:5].tolist()}."
            )

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, "
            f"X_base={_shape(self.X_base)}, "
            f"base_classes={len(np.unique(self.y_base))}, "
            f"X_novel={_shape(self.X_novel)}, "
            f"novel_classes={len(np.unique(self.y_novel))})"
        )


def _shape(X):
    return "x".join(str(d) for d in np.shape(X))
