"""The file layout: its format number, the bounds a load enforces, what it holds.

The constants here describe what :func:`skmeta.persistence.save` writes and
what :func:`skmeta.persistence.load` accepts; the helpers name the estimator
classes a file may hold and describe values for the messages.
"""

import torch

from .._base import TorchEstimator
from ..embedding import EMBEDDERS
from ..fewshot import CLASSIFIERS, REGRESSORS
from ..neighbors import EmbeddingNeighbors

#: Version of the file layout; :func:`load` reads this one only.
FORMAT = 2

#: Largest ``estimator.json`` (or ``pipeline.json``) :func:`load` reads, in
#: bytes once decompressed (16 MiB: a history of about 300,000 batches).
#: Python's objects for a JSON document take up to about 20 times its size.
MAX_JSON_BYTES = 16 * 2**20

#: Most values in one sample (``input_shape_``): 3 x 2364 x 2364 pixels.
MAX_SAMPLE_VALUES = 2**24

#: Bound of a value that sizes the network when the file's largest tensor is
#: smaller (a backbone with no weights, such as ``"identity"``).
MIN_WIDTH = 4096

#: Bound of a list of sizes (``hidden_dims``) when the file has fewer tensors.
MIN_DEPTH = 64

#: Private fitted state saved as the attributes it computes on first read
#: (the deferred support set, as ``_support_attributes``).
_COMPUTED_ON_READ = ("_deferred_support",)

#: Fitted attributes that load rebuilds rather than reads (``distance_``:
#: EmbeddingNeighbors' distance module, from its parameters).
_REBUILT = ("module_", "device_", "distance_")

#: The kinds of tensors each kind of estimator's file holds: a network's
#: (its weights, fitted arrays, dicts of tensors) or a search index's.
_TENSOR_KINDS = {
    TorchEstimator: ("module_", "array", "dict", "param"),
    EmbeddingNeighbors: ("index", "param"),
}

#: Fitted attributes every estimator has (and ``classes_``, every one but a
#: regressor and an estimator that learns without labels).
_REQUIRED = ("input_shape_", "n_features_in_", "history_", "n_steps_")

#: Fitted counts that size a network (its output layer or a loss's weights).
_SIZING_COUNTS = ("_n_loss_classes", "n_base_classes_", "n_way_")

#: Fitted arrays with one row per class of ``classes_``.
_PER_CLASS = ("prototypes_", "support_counts_", "class_features_")

#: Fitted arrays of embeddings: each row has the network's embedding shape.
_EMBEDDINGS = ("prototypes_", "support_embeddings_", "class_features_")

#: The dtypes a tensor may have, by the name the file gives them.
_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint8,
    )
}


def _estimator_classes():
    estimators = (
        *CLASSIFIERS.values(),
        *REGRESSORS.values(),
        *EMBEDDERS.values(),
        EmbeddingNeighbors,
    )
    return {cls.__name__: cls for cls in estimators}


def _is_ours(value):
    """Whether ``value`` is a skmeta estimator, saved by skmeta, not skops."""
    return isinstance(value, tuple(_TENSOR_KINDS))


def _private(cls):
    """The private fitted attributes of ``cls`` a file holds."""
    if not issubclass(cls, TorchEstimator):
        return set()  # EmbeddingNeighbors' index is saved as its arrays
    return set(cls._private_fitted) - set(_COMPUTED_ON_READ)


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(value):
    kind = type(value)
    return f"a {kind.__module__}.{kind.__qualname__}"


def _signature(state):
    """Names, shapes and dtypes of a state dict, to compare two of them."""
    return {key: (tuple(t.shape), t.dtype) for key, t in state.items()}
