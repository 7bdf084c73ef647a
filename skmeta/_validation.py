"""Checks of the tensors and numbers that losses, miners and retrieval take.

One place for the messages a loss (:mod:`skmeta.losses`) and a miner
(:mod:`skmeta.miners`) give for a wrong batch or a wrong hyperparameter: each
names the parameter, what was expected and what was given; and the test of a
count (``k``, ``n_neighbors``, ``chunk_size``) that :mod:`skmeta.metrics` and
:mod:`skmeta.neighbors` put in their own messages.
"""

import math
import numbers

import torch


def check_number(name, value, *, low=None, low_inclusive=True, high=None):
    """Return ``value`` as a float, or raise naming ``name``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        The value given.
    low : float or None, default=None
        The lower bound; ``low_inclusive`` says whether it is accepted.
    low_inclusive : bool, default=True
    high : float or None, default=None
        The upper bound, exclusive.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a real number (a bool is not one).
    ValueError
        If ``value`` is NaN, infinite or outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number; got {value!r} of type "
            f"{type(value).__name__}."
        )
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite; got {value!r}.")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}; got {value!r}.")
    if high is not None and value >= high:
        raise ValueError(f"{name} must be < {high}; got {value!r}.")
    return value


def is_count(value, low=1, high=None):
    """Whether ``value`` is an int in ``[low, high]`` (a bool is not one).

    Parameters
    ----------
    value : object
    low : int, default=1
    high : int or None, default=None
        The upper bound, inclusive; None for none.

    Returns
    -------
    bool
    """
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and low <= value
        and (high is None or value <= high)
    )


def check_labels(labels, n_samples):
    """Check that ``labels`` is an int64 tensor of shape ``(n_samples,)``.

    Raises
    ------
    TypeError
        If ``labels`` is not a tensor, or not of dtype int64.
    ValueError
        If its shape is not ``(n_samples,)``.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            "labels must be a torch.Tensor of dtype int64 and shape (n_samples,); "
            f"got {type(labels).__name__}."
        )
    if labels.dtype != torch.int64:
        raise TypeError(
            f"labels must have an integer dtype, int64; got {labels.dtype}. "
            "Convert them with labels.long()."
        )
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise ValueError(
            f"labels must have shape ({n_samples},) to match the batch; got "
            f"shape {tuple(labels.shape)}."
        )


class NonFiniteEmbeddingsError(ValueError):
    """Embeddings with NaN or infinity: in training, the network diverged."""


def check_batch(embeddings, labels):
    """Check a batch: ``embeddings`` ``(n, d)`` finite floats, ``labels`` ``(n,)``.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (n, d), floating-point dtype
    labels : torch.Tensor of shape (n,), int64

    Raises
    ------
    TypeError
        If ``embeddings`` is not a floating-point tensor, or ``labels`` not an
        int64 tensor.
    ValueError
        If ``embeddings`` is not 2-D or holds NaN or infinity, or ``labels``
        does not have shape ``(n,)``.
    """
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(
            "embeddings must be a torch.Tensor of shape (n_samples, embedding_dim); "
            f"got {type(embeddings).__name__}."
        )
    if not embeddings.dtype.is_floating_point:
        raise TypeError(
            f"embeddings must have a floating-point dtype; got {embeddings.dtype}."
        )
    if embeddings.ndim != 2:
        raise ValueError(
            "embeddings must be 2-D of shape (n_samples, embedding_dim); got shape "
            f"{tuple(embeddings.shape)}."
        )
    check_labels(labels, embeddings.shape[0])
    finite = torch.isfinite(embeddings.detach())
    if not finite.all():
        raise NonFiniteEmbeddingsError(
            f"embeddings must be finite; got {int((~finite).sum())} NaN or infinite "
            f"values in shape {tuple(embeddings.shape)}."
        )


def _check_finite_output(values, estimator, what):
    """``values`` unchanged, or a ValueError if any is NaN or infinite."""
    if not torch.isfinite(values).all():
        raise ValueError(
            f"{type(estimator).__name__} computed non-finite {what}: its weights "
            "are not finite or too large. Refit it with a lower learning rate."
        )
    return values
