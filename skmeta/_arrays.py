"""The samples and labels that estimators read: labels checked, a memmap in batches."""

import warnings

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d


def check_labels(y, name="y"):
    """Validate class labels as ``fit`` does: 1-D, discrete, of one type.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels of any one type: ints, strings, or other hashable values.
    name : str, default="y"
        The parameter's name, for messages.

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If ``y`` is not 1-D, holds NaN or continuous values, or mixes types
        (ints and strings, say), which have no order to encode them by.
    """
    y = column_or_1d(y, warn=True)
    if y.dtype == object:
        types = sorted({type(v).__name__ for v in y})
        if len(types) > 1:
            raise ValueError(
                f"{name} mixes labels of the types {', '.join(types)}; "
                "use one type of label (all str, or all int)."
            )
    try:
        with warnings.catch_warnings():
            # Labels are classes here by contract: an N-way 1-shot support
            # set has as many classes as samples, which is no regression.
            warnings.filterwarnings("ignore", message=".*regression problem")
            check_classification_targets(y)
    except ValueError as exc:
        raise ValueError(f"{name} must be class labels: {exc}") from exc
    return y


def _rows(X, mask):
    """The rows of X where ``mask`` is True; a memmap's stay on disk."""
    return X.take(np.flatnonzero(mask)) if isinstance(X, _MemmapBatches) else X[mask]


def _pixel_scale(X):
    """255 for uint8 images (4-D), which ``ToTensor`` divides by; else 1."""
    dtype, ndim = getattr(X, "dtype", None), getattr(X, "ndim", None)
    return np.float32(255) if dtype == np.uint8 and ndim == 4 else 1


def _writable(X):
    """``X``, copied only if it is read-only (torch cannot share such memory)."""
    return X if X.flags.writeable else X.copy()


class _MemmapBatches:
    """A NumPy memmap of samples, read slice by slice as float32 and checked.

    What :meth:`TorchEstimator._validate_X` gives a caller that reads X in
    batches: ``X[i:j]`` is the float32 slice (uint8 images divided by
    ``scale``), refused if it holds NaN or inf, so that ``transform`` and
    ``predict`` of a data set larger than memory never hold a float32 copy of
    it. ``np.asarray`` of the whole reads it all.

    Parameters
    ----------
    X : numpy.memmap of shape (n_samples, ...)
    scale : float
        What the values are divided by: 255 for uint8 images, else 1.
    rows : ndarray of shape (n_rows,), dtype int64, default=None
        The rows of ``X`` these batches hold, in order (a subset that ``fit``
        trains on, say); None holds them all.

    Raises
    ------
    TypeError
        If ``X`` is not of a numeric dtype.
    """

    def __init__(self, X, scale, rows=None):
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold numbers; got a memmap of dtype {X.dtype}.")
        self.X, self.scale, self.rows = X, scale, rows
        n = len(X) if rows is None else len(rows)
        self.shape, self.ndim = (n, *X.shape[1:]), X.ndim
        self.dtype = np.dtype(np.float32)

    def __len__(self):
        return self.shape[0]

    def take(self, rows):
        """These batches restricted to ``rows`` (int indices), still on disk."""
        rows = np.asarray(rows, dtype=np.int64)
        return _MemmapBatches(
            self.X, self.scale, rows if self.rows is None else self.rows[rows]
        )

    def __getitem__(self, index):
        rows = index if self.rows is None else self.rows[index]
        batch = np.asarray(self.X[rows], dtype=np.float32)
        if self.scale != 1:
            batch = batch / self.scale
        finite = np.isfinite(batch).all(axis=tuple(range(1, batch.ndim)))
        if not finite.all():
            bad = np.arange(len(self.X))[rows][~finite]
            listed = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            raise ValueError(
                f"Input X contains NaN or infinity: in {len(bad)} sample(s) of the "
                f"memmap, at the row(s) {listed}."
            )
        return batch

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)
