"""Save and load fitted estimators, and pipelines of them, without pickle.

``pickle`` and ``joblib`` files run code when they are loaded: open one only
if you trust whoever wrote it. :func:`save` writes a zip file that holds only
data, and :func:`load` reads it without importing or running anything the
file names. An estimator's file holds:

- ``estimator.json`` (deflated): the class, a name of skmeta's; its
  constructor parameters; a module given as a parameter (a backbone class or
  instance), by the qualified name of its class; the fitted attributes that
  are not arrays (string ``classes_``, ``input_shape_``, ``history_``...);
  the dtype and shape of every tensor; the skmeta version.
- ``tensors/<name>`` (stored, not compressed): the raw little-endian bytes of
  each tensor: the network's weights (``tensors/module_/...``), the fitted
  arrays (``tensors/array/...``), dicts of tensors (``tensors/dict/...``) and
  the weights of a module instance given as a parameter
  (``tensors/param/...``); for :class:`~skmeta.neighbors.EmbeddingNeighbors`,
  its index instead of a network: the references (``tensors/index/reference``)
  or the bytes of ``faiss.serialize_index`` (``tensors/index/faiss_index``).

A :class:`~sklearn.pipeline.Pipeline` file holds ``pipeline.json``, the
pipeline without its skmeta steps as :func:`skops.io.dumps` writes it
(``pipeline.skops``; the ``persistence`` extra installs skops), and each
skmeta step under ``steps/<index>/``.

:func:`save` writes a temporary file beside ``path`` and renames it over
``path`` only once it is whole, so a failed save leaves the previous file as it
was. :func:`load` checks every entry before it allocates what the entry
describes, and raises a ValueError naming the entry:

- ``estimator.json`` may take at most :data:`MAX_JSON_BYTES` once
  decompressed; tensors are stored uncompressed and entries may not overlap,
  so the tensors of a file take no more memory than the file's own size;
- the parameters are validated by the estimator's own constraints
  (``_parameter_constraints``), and unknown ones are refused;
- a fitted attribute ends in ``_`` (or is one of a few private ones) and may
  not replace a method, a property or a parameter;
- a sample holds at most :data:`MAX_SAMPLE_VALUES` values, and each value that
  sizes the network (``embedding_dim``, every ``*_dim``, the ints of
  ``backbone_params`` and of the other ``*_params``, a module's constructor
  arguments, the class counts) is at most the number of values of the file's
  largest tensor (or :data:`MIN_WIDTH`), each list of them at most as long as
  the file has tensors (or :data:`MIN_DEPTH`): a layer the file's tensors
  could not fill is refused before anything is built;
- the network is then built on torch's ``meta`` device, which allocates no
  memory, and its state must have the names, shapes and dtypes of the file's
  tensors before it is built for real;
- the fitted arrays must agree with each other, with ``classes_`` and with the
  network's embedding (one prototype per class, embeddings of the network's
  size);
- a search index must be the one its parameters build over ``n_samples_fit_``
  references of ``n_features_in_`` features, finite; faiss's bytes are read by
  skmeta first (each size within the bytes left, the IVF lists and the HNSW
  graph's links consistent) and given to faiss only then, so a corrupted index
  is a ValueError, not a crash of faiss; a distance built from its name holds
  no more values than the largest tensor or ``MIN_WIDTH ** 2``
  (``"mahalanobis"``: ``n_features_in_ ** 2``).
"""

from pathlib import Path

from sklearn.pipeline import Pipeline

from .._runtime import resolve_device
from ._archive import _Archive

# The format and its bounds, which the docs name as skmeta.persistence's.
from ._format import (  # noqa: F401
    FORMAT,
    MAX_JSON_BYTES,
    MAX_SAMPLE_VALUES,
    MIN_DEPTH,
    MIN_WIDTH,
)
from ._pipeline import _load_pipeline, _pipeline_entries
from ._reader import _Reader
from ._trust import _check_trusted
from ._writer import _estimator_entries, _raise_problems, _write_atomically

__all__ = ["load", "save"]


def save(estimator, path):
    """Write a fitted skmeta estimator, or a Pipeline of them, without pickle.

    The file is written to a temporary file in the folder of ``path`` and
    renamed to ``path`` only once it is whole: if anything fails, ``path`` is
    left as it was (a previous model stays whole).

    Parameters
    ----------
    estimator : fitted skmeta estimator or sklearn.pipeline.Pipeline
        Any few-shot classifier, regressor or embedder of skmeta, fitted (and
        adapted), an :class:`~skmeta.neighbors.EmbeddingNeighbors` with its
        index, or a fitted Pipeline whose steps are scikit-learn and skmeta
        estimators (its scikit-learn steps are written by
        :func:`skops.io.dumps`: ``pip install skmeta[persistence]``). Its
        ``callbacks`` are not saved: they belong to training. A module given
        as a parameter (``backbone=MyNet`` or ``backbone=MyNet(...)``) is
        saved as its class's qualified name, with an instance's constructor
        arguments (read from the attributes of the same names) and weights;
        :func:`load` needs the class in its ``trusted``.
    path : str or os.PathLike
        The file to write, a zip archive (``.skmeta`` by convention).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``estimator`` is not a skmeta estimator or a Pipeline, or if
        entries cannot be stored as data: a callable parameter, a module
        instance whose constructor arguments cannot be read back, a NumPy
        array in ``history_``... The message names every such entry, not
        only the first.
    ValueError
        If ``estimator.json`` would exceed :data:`MAX_JSON_BYTES`, which
        :func:`load` refuses.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ImportError
        For a Pipeline, if skops is not installed.

    Examples
    --------
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.datasets import load_digits_fewshot
    >>> from skmeta.persistence import load, save
    >>> data = load_digits_fewshot()
    >>> clf = PrototypicalClassifier(max_epochs=1).fit(data.X_base, data.y_base)
    >>> path = save(clf, "protonet.skmeta")  # doctest: +SKIP
    >>> load(path).predict(data.X_base[:3])  # doctest: +SKIP
    array([0, 0, 0])
    """
    path = Path(path)
    if isinstance(estimator, Pipeline):
        entries = _pipeline_entries(estimator)
    else:
        problems = []
        entries = _estimator_entries(estimator, "", problems)
        _raise_problems(problems, type(estimator).__name__)
    _write_atomically(path, entries)
    return path


def load(path, *, device="cpu", trusted=None):
    """Read an estimator or Pipeline that :func:`save` wrote, running none of it.

    Nothing the file names is imported: its estimator class must be one of
    skmeta's, and a module class it names (a custom backbone) must be given in
    ``trusted`` or be registered (:data:`skmeta.backbones.BACKBONES`,
    :data:`skmeta.distances.DISTANCES`, :data:`skmeta.losses.LOSSES`). Every
    entry is checked before what it describes is allocated (see
    :mod:`skmeta.persistence`).

    Parameters
    ----------
    path : str or os.PathLike
        The file :func:`save` wrote.
    device : str or torch.device, default="cpu"
        Where the networks go, whatever device they were trained on:
        ``"cpu"``, ``"cuda"``, ``"auto"``...; also the loaded estimators'
        ``device``.
    trusted : list of classes or str, default=None
        The module classes the file may name, as skops's ``trusted``: the
        file stores a class's qualified name (``mypackage.nets.MyNet``), and
        the class given here of that name is used (or the one class of that
        ``__qualname__``, for a class defined in a script). For a Pipeline,
        also the types :func:`skops.io.loads` asks to trust (a class, or its
        name as skops gives it).

    Returns
    -------
    estimator or sklearn.pipeline.Pipeline
        Fitted, predicting as the saved one did.

    Raises
    ------
    ValueError
        If the file is not one that :func:`save` wrote (or of another
        format), if any entry is out of bounds, inconsistent with the others
        or unknown, if a module class it names is not trusted, or if
        ``device`` cannot be used here. The message names the entry.
    TypeError
        If ``trusted`` is not a list of classes and names.
    ImportError
        For a Pipeline, if skops is not installed; for a faiss index, if
        faiss is not.
    """
    trusted = _check_trusted(trusted)
    device_ = resolve_device(device)
    with _Archive(path) as archive:
        if "pipeline.json" in archive.infos:
            return _load_pipeline(archive, device, device_, trusted)
        return _Reader(archive, "", trusted).estimator(device, device_)
