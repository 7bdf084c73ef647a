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

import copy
import inspect
import io
import json
import math
import os
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted
from skorch.history import History
from torch import nn

from .. import __version__
from .._base import TorchEstimator, resolve_device
from ..backbones import BACKBONES
from ..distances import DISTANCES
from ..embedding import EMBEDDERS
from ..fewshot import CLASSIFIERS, REGRESSORS
from ..losses import LOSSES
from ..neighbors import EmbeddingNeighbors

__all__ = ["load", "save"]

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

#: What a save refused is most often, and what to do about it.
_ADVICE = (
    "Give parameters by name (backbone='conv4') or as plain data, a module as "
    "its class or as an instance that keeps each constructor argument in an "
    "attribute of the same name (load it with trusted=[TheClass]), and record "
    "plain values in the history (array.tolist())."
)


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


def _registered_classes():
    """The module classes skmeta's registries name: trusted without asking."""
    return [
        cls
        for registry in (BACKBONES, DISTANCES, LOSSES)
        for cls in registry.values()
        if isinstance(cls, type)
    ]


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


# --- save -------------------------------------------------------------------


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


def _raise_problems(problems, what):
    if not problems:
        return
    # One line per entry; history rows with the same problem share a line.
    lines = {}
    for where, why in problems:
        if where.startswith("history_["):
            where = "history_[i]" + where.partition("]")[2]
        lines.setdefault((where, why), 0)
        lines[(where, why)] += 1
    listed = "\n".join(
        f"- {where}: {why}" + (f" (in {count} epochs)" if count > 1 else "")
        for (where, why), count in lines.items()
    )
    raise TypeError(
        f"save() cannot store {len(lines)} entr{'y' if len(lines) == 1 else 'ies'} "
        f"of {what}: a file holds plain data (numbers, strings, lists, dicts) "
        f"and tensors only.\n{listed}\n{_ADVICE} Nothing was written."
    )


def _plain(value, where, problems):
    """``value`` as JSON data; each part that cannot be is added to ``problems``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((f"{where}[{key!r}]", "a key that is not a string"))
            out[str(key)] = _plain(item, f"{where}[{key!r}]", problems)
        return out
    problems.append((where, _describe(value)))
    return None


def _estimator_entries(estimator, prefix, problems):
    """The zip entries of one estimator: ``(name, bytes, compression)``."""
    classes = _estimator_classes()
    if classes.get(type(estimator).__name__) is not type(estimator):
        raise TypeError(
            "save() takes a skmeta estimator or a Pipeline; got "
            f"{_describe(estimator)[2:]}."
        )
    check_is_fitted(estimator)
    tensors, params, modules = {}, {}, {}
    for name, value in estimator.get_params(deep=False).items():
        if name == "callbacks":
            continue
        if isinstance(value, nn.Module) or (
            isinstance(value, type) and issubclass(value, nn.Module)
        ):
            modules[name] = _module_entry(name, value, tensors, problems)
        elif isinstance(value, torch.device):
            params[name] = str(value)
        else:
            params[name] = _plain(value, f"params.{name}", problems)
    fitted = _fitted_entries(estimator, tensors, problems)
    manifest = {}
    for key, tensor in tensors.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            problems.append((key, f"a tensor of dtype {dtype}"))
        manifest[key] = {"dtype": dtype, "shape": list(tensor.shape)}
    document = {
        "format": FORMAT,
        "skmeta": __version__,
        "class": type(estimator).__name__,
        "params": params,
        "modules": modules,
        "fitted": fitted,
        "tensors": manifest,
    }
    if problems:
        return []
    text = json.dumps(document, separators=(",", ":")).encode()
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(
            f"estimator.json would take {len(text)} bytes, over MAX_JSON_BYTES = "
            f"{MAX_JSON_BYTES}, which load() refuses; history_ is most often "
            "what is large (one row per batch). Nothing was written."
        )
    entries = [(f"{prefix}estimator.json", text, zipfile.ZIP_DEFLATED)]
    for key, tensor in tensors.items():
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        entries.append((f"{prefix}tensors/{key}", raw.numpy().tobytes(), 0))
    return entries


def _module_entry(name, module, tensors, problems):
    """A module parameter as data: its class's name, an instance's arguments."""
    if isinstance(module, type):
        return {"class": _qualified_name(module)}
    for key, tensor in module.state_dict().items():
        tensors[f"param/{name}/{key}"] = tensor
    cls = type(module)
    return {
        "class": _qualified_name(cls),
        "arguments": _constructor_arguments(name, module, problems),
    }


def _constructor_arguments(name, module, problems):
    """The arguments ``module`` was built with, read from its attributes.

    Each argument of the class's signature must be an attribute of the same
    name holding plain data, and the class called with them must build the
    same state (names, shapes, dtypes) as ``module``'s; otherwise the
    instance cannot be rebuilt from data, and ``problems`` says so.
    """
    cls, where = type(module), f"params.{name}"
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        parameters = None
    if cls.__init__ is nn.Module.__init__:
        parameters = []  # no constructor of its own: no arguments
    unknown, arguments = [], {}
    for parameter in parameters or ():
        variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        if variadic or not hasattr(module, parameter.name):
            unknown.append(parameter.name)
            continue
        found = []
        value = getattr(module, parameter.name)
        arguments[parameter.name] = _plain(value, parameter.name, found)
        if found:
            unknown.append(parameter.name)
    if parameters is None or unknown:
        problems.append(
            (
                where,
                f"a {cls.__name__} instance, whose constructor arguments "
                f"({', '.join(unknown) or 'no signature'}) are not plain data in "
                "attributes of the same names, so it cannot be rebuilt from the "
                f"file: pass the class instead ({name}={cls.__name__}, its "
                f"arguments in {name}_params), or keep each argument in an "
                "attribute of its name",
            )
        )
        return None
    try:
        with torch.device("meta"):
            same = _signature(cls(**arguments).state_dict()) == _signature(
                module.state_dict()
            )
    except Exception:  # the user's class, called with what was read back
        same = False
    if not same:
        problems.append(
            (
                where,
                f"{cls.__name__}(**{arguments!r}), its arguments as read from its "
                "attributes, builds another network than the instance: pass the "
                f"class instead ({name}={cls.__name__}, its arguments in "
                f"{name}_params)",
            )
        )
    return arguments


def _fitted_entries(estimator, tensors, problems):
    """The fitted attributes as JSON entries, their arrays into ``tensors``."""
    fitted = {}
    state = dict(vars(estimator))
    if isinstance(estimator, EmbeddingNeighbors):
        # The references, or faiss's bytes; distance_ is rebuilt on load.
        for key, array in estimator._index_arrays().items():
            tensors[f"index/{key}"] = torch.from_numpy(np.ascontiguousarray(array))
        del state["distance_"]
    else:
        # The support set of fit, embedded when first read (_support_attributes).
        for name in type(estimator)._support_attributes:
            if name not in state and hasattr(estimator, name):
                state[name] = getattr(estimator, name)
    private = _private(type(estimator))
    for name, value in state.items():
        if not (name.endswith("_") or name in private) or name == "device_":
            continue
        if name == "module_":
            for key, tensor in value.state_dict().items():
                tensors[f"module_/{key}"] = tensor
        elif name == "history_":
            fitted[name] = {"history": _plain(value.to_list(), name, problems)}
        elif isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
            tensors[f"array/{name}"] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, np.ndarray) and value.ndim == 1:
            labels = _plain(value.tolist(), name, problems)
            fitted[name] = {"labels": labels, "dtype": value.dtype.str}
        elif isinstance(value, dict) and all(
            isinstance(t, torch.Tensor) for t in value.values()
        ):
            for key, tensor in value.items():
                tensors[f"dict/{name}/{key}"] = tensor
        else:
            fitted[name] = {"value": _plain(value, name, problems)}
    return fitted


def _pipeline_entries(pipeline):
    """The zip entries of a Pipeline: skops for its scikit-learn steps."""
    sio = _skops()
    check_is_fitted(pipeline)
    problems, entries, indices = [], [], []
    for index, (name, step) in enumerate(pipeline.steps):
        if _is_ours(step):
            indices.append(index)
            found = []
            entries += _estimator_entries(step, f"steps/{index}/", found)
            problems += [(f"steps[{index}] ({name}).{w}", why) for w, why in found]
    for key, value in pipeline.get_params(deep=True).items():
        if _is_ours(value) and "__" in key:
            problems.append(
                (key, "a skmeta estimator inside a step: save() takes them as steps")
            )
    _raise_problems(problems, "the Pipeline")
    skeleton = copy.copy(pipeline)
    skeleton.steps = [
        (name, "passthrough" if index in indices else step)
        for index, (name, step) in enumerate(pipeline.steps)
    ]
    try:
        data = sio.dumps(skeleton)
    except Exception as error:  # skops names what it cannot write
        raise TypeError(
            f"skops cannot write the scikit-learn steps of the Pipeline: {error}"
        ) from error
    document = {
        "format": FORMAT,
        "skmeta": __version__,
        "class": "Pipeline",
        "skmeta steps": indices,
    }
    return [
        ("pipeline.json", json.dumps(document).encode(), zipfile.ZIP_DEFLATED),
        ("pipeline.skops", data, 0),
        *entries,
    ]


def _skops():
    try:
        import skops.io
    except ImportError as error:
        raise ImportError(
            "Saving or loading a Pipeline needs skops, for its scikit-learn steps: "
            "pip install skmeta[persistence] (or pip install skops)."
        ) from error
    return skops.io


def _write_atomically(path, entries):
    """Write the zip ``entries`` to a new file beside ``path``, then rename it."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:  # created as open() would: mode 0o666 less the umask
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            with zipfile.ZipFile(file, "w") as archive:
                for name, data, compression in entries:
                    archive.writestr(name, data, compress_type=compression)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- load -------------------------------------------------------------------


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


def _check_trusted(trusted):
    if trusted is None:
        return []
    if isinstance(trusted, str | type) or not all(
        isinstance(t, str | type) for t in trusted
    ):
        raise TypeError(
            "trusted must be a list of classes (or of type names, for a "
            f"Pipeline's scikit-learn steps); got trusted={trusted!r}."
        )
    return list(trusted)


class _Archive:
    """A zip file opened for reading, each entry's size bounded."""

    def __init__(self, path):
        self.path = Path(path)
        size = self.path.stat().st_size
        try:
            self.zip = zipfile.ZipFile(self.path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise ValueError(
                f"{path} is not a file that skmeta.persistence.save wrote: {error}"
            ) from error
        self.infos = {info.filename: info for info in infos}
        if len(self.infos) != len(infos):
            self.zip.close()
            raise ValueError(f"{path}: two entries of the archive have one name.")
        # Entries that overlap could describe more data than the file holds.
        if sum(info.compress_size for info in infos) > size:
            self.zip.close()
            raise ValueError(f"{path}: entries of the archive overlap.")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def error(self, entry, what):
        return ValueError(f"{self.path}: {entry}: {what}")

    def read(self, name, limit):
        """The bytes of entry ``name``, refused if it holds over ``limit``."""
        info = self.infos.get(name)
        if info is None:
            if name.endswith("estimator.json"):
                raise ValueError(
                    f"{self.path} is not a file that skmeta.persistence.save "
                    f"wrote: it has no {name}."
                )
            raise self.error(name, "missing from the archive")
        if info.file_size > limit:
            raise self.error(
                name, f"holds {info.file_size} bytes, over the bound of {limit}"
            )
        try:
            with self.zip.open(info) as file:
                data = file.read(limit + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
            ValueError,
        ) as error:
            raise self.error(name, f"cannot be read: {error}") from error
        if len(data) != info.file_size:
            raise self.error(
                name, f"holds {len(data)} bytes, not the {info.file_size} listed"
            )
        return data

    def json(self, name):
        data = self.read(name, MAX_JSON_BYTES)
        try:
            return json.loads(data, object_pairs_hook=_without_duplicates)
        except (ValueError, RecursionError) as error:
            raise self.error(name, f"not valid JSON: {error}") from error


def _without_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"the key(s) {repeated} appear twice in one object")
    return dict(pairs)


def _check_object(document, entry, keys, archive, optional=()):
    """``document`` is a JSON object with ``keys`` (and maybe ``optional``)."""
    if not isinstance(document, dict):
        raise archive.error(entry, f"expected a JSON object; got {document!r:.80}")
    missing = set(keys) - set(document)
    unknown = set(document) - set(keys) - set(optional)
    if missing or unknown:
        raise archive.error(
            entry,
            f"expected the keys {sorted(keys)}"
            + (f"; {sorted(missing)} missing" if missing else "")
            + (f"; {sorted(unknown)} unknown" if unknown else ""),
        )


def _check_format(document, entry, archive):
    fmt = document.get("format") if isinstance(document, dict) else None
    if type(fmt) is not int or fmt != FORMAT:
        raise archive.error(
            entry,
            f"written in format {fmt!r} (by skmeta "
            f"{document.get('skmeta') if isinstance(document, dict) else None}); "
            f"this skmeta ({__version__}) reads format {FORMAT} only",
        )


def _is_count(value):
    return type(value) is int and value >= 0


class _Reader:
    """One estimator of an archive, each entry checked before it is used."""

    def __init__(self, archive, prefix, trusted):
        self.archive, self.prefix, self.trusted = archive, prefix, trusted
        #: By tensor key: its (dtype, shape), and its (kind, name, item).
        self.specs, self.kinds = {}, {}
        #: Module instances of the parameters, by name, as built on the meta device.
        self.meta_modules = {}

    def error(self, entry, what):
        return self.archive.error(f"{self.prefix}{entry}", what)

    def estimator(self, device, device_):
        document = self.archive.json(f"{self.prefix}estimator.json")
        _check_format(document, f"{self.prefix}estimator.json", self.archive)
        keys = ("format", "skmeta", "class", "params", "modules", "fitted", "tensors")
        _check_object(document, f"{self.prefix}estimator.json", keys, self.archive)
        classes = _estimator_classes()
        if not isinstance(document["class"], str) or document["class"] not in classes:
            raise self.error(
                "class",
                f"{document['class']!r:.80} is not an estimator of skmeta "
                f"({', '.join(sorted(classes))})",
            )
        cls = classes[document["class"]]
        self.specs = self._manifest(document["tensors"], cls)
        fitted = self._fitted(document["fitted"], cls)
        self._check_sizes(document["params"], document["modules"], fitted)
        if issubclass(cls, EmbeddingNeighbors):
            estimator = self._construct(cls, document["params"], document["modules"])
            for name, value in fitted.items():
                setattr(estimator, name, value)
            self._restore_index(estimator)
            return estimator
        estimator = self._construct(
            cls, {**document["params"], "device": device}, document["modules"]
        )
        for name, value in fitted.items():
            setattr(estimator, name, value)
        estimator.device_ = device_
        for key, (kind, name, item) in self.kinds.items():
            if kind == "dict":
                getattr(estimator, name)[item] = self.tensor(key).to(device_)
        self._build(estimator, device_)
        return estimator

    # The tensors: listed in estimator.json, each an entry of its exact size.

    def _manifest(self, manifest, cls):
        kinds = next(k for base, k in _TENSOR_KINDS.items() if issubclass(cls, base))
        if not isinstance(manifest, dict):
            raise self.error("tensors", "expected a JSON object")
        specs = {}
        for key, spec in manifest.items():
            entry = f"tensors/{key}"
            _check_object(spec, entry, ("dtype", "shape"), self.archive)
            dtype = (
                _DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
            )
            shape = spec["shape"]
            if dtype is None:
                raise self.error(
                    entry, f"dtype {spec['dtype']!r:.40}, not one of {sorted(_DTYPES)}"
                )
            if not (
                isinstance(shape, list)
                and len(shape) <= 8
                and all(map(_is_count, shape))
            ):
                raise self.error(entry, f"shape {shape!r:.80}, not a list of counts")
            info = self.archive.infos.get(self.prefix + entry)
            if info is None:
                raise self.error(
                    entry, "listed in estimator.json, missing from the file"
                )
            nbytes = math.prod(shape) * dtype.itemsize
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != nbytes:
                raise self.error(
                    entry,
                    f"holds {info.file_size} bytes (compression {info.compress_type}); "
                    f"a {spec['dtype']} tensor of shape {shape} is {nbytes} bytes, "
                    "stored uncompressed",
                )
            kind, _, rest = key.partition("/")
            name, _, item = rest.partition("/")
            if kind == "module_":
                name, item = None, rest
            if kind not in kinds or not (
                (kind == "module_" and rest)
                or (kind in ("array", "index") and name and not item)
                or (kind in ("dict", "param") and name and item)
            ):
                raise self.error(
                    entry, f"not a kind of tensor save() writes of {cls.__name__}"
                )
            specs[key] = (dtype, tuple(shape))
            self.kinds[key] = (kind, name, item)
        ours = {f"{self.prefix}estimator.json"} | {
            f"{self.prefix}tensors/{key}" for key in specs
        }
        unknown = [n for n in self.archive.infos if n.startswith(self.prefix)]
        unknown = sorted(set(unknown) - ours)
        if unknown:
            raise self.error(unknown[0], "an entry that save() does not write")
        return specs

    def _widest(self):
        """The number of values of the file's largest tensor."""
        return max((math.prod(s) for _, s in self.specs.values()), default=0)

    def tensor(self, key):
        dtype, shape = self.specs[key]
        data = self.archive.read(f"{self.prefix}tensors/{key}", math.inf)
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else None
        if raw is None:
            return torch.empty(shape, dtype=dtype)
        return raw.view(dtype).reshape(shape)

    def _state(self, kind, name=None):
        return {
            item: self.tensor(key)
            for key, (k, n, item) in self.kinds.items()
            if k == kind and n == name
        }

    def _check_state(self, state, kind, name, what):
        """The file's tensors of ``kind`` match ``state``, a meta-device one."""
        ours = {
            item: self.specs[key]
            for key, (k, n, item) in self.kinds.items()
            if k == kind and n == name
        }
        expected = _signature(state)
        for key in sorted(set(expected) | set(ours)):
            entry = f"tensors/{kind}/{name + '/' if name else ''}{key}"
            if key not in ours:
                raise self.error(entry, f"missing: {what} has this tensor")
            if key not in expected:
                raise self.error(entry, f"unknown: {what} has no such tensor")
            dtype, shape = ours[key]
            if (shape, dtype) != expected[key]:
                raise self.error(
                    entry,
                    f"a {dtype} tensor of shape {list(shape)}; {what} has a "
                    f"{expected[key][1]} one of shape {list(expected[key][0])}",
                )

    # The fitted attributes.

    def _fitted(self, fitted, cls):
        if not isinstance(fitted, dict):
            raise self.error("fitted", "expected a JSON object")
        params, private = set(cls._get_param_names()), _private(cls)
        arrays = {n for k, n, _ in self.kinds.values() if k in ("array", "dict")}
        for name in (*fitted, *arrays):
            if not (
                name.isidentifier()
                and (name.endswith("_") or name in private)
                and not name.startswith("__")
                and name not in _REBUILT
                and name not in params
                and not hasattr(cls, name)
            ):
                raise self.error(
                    f"fitted.{name}",
                    "not a fitted attribute: those end in '_' (or are one of "
                    f"{sorted(private)}), and none replaces a method, a property, a "
                    f"parameter or {list(_REBUILT)}",
                )
        values = {
            name: self._fitted_value(name, entry) for name, entry in fitted.items()
        }
        for key, (kind, name, _) in self.kinds.items():
            if kind in ("array", "dict") and name in fitted:
                raise self.error(f"tensors/{key}", f"a second value of fitted {name}")
            if kind == "array":
                values[name] = self._array(key)
            elif kind == "dict":
                values.setdefault(name, {})
        if issubclass(cls, EmbeddingNeighbors):
            required = ("n_features_in_", "n_samples_fit_")
        elif issubclass(cls, RegressorMixin) or not cls._learns_from_labels():
            required = _REQUIRED
        else:
            required = (*_REQUIRED, "classes_")
        missing = [name for name in required if name not in values]
        if missing:
            raise self.error(
                "fitted", f"missing {missing}, which every {cls.__name__} has"
            )
        self._check_fitted(values)
        return values

    def _array(self, key):
        """Tensor ``key`` as a NumPy array (which has no bfloat16)."""
        if self.specs[key][0] is torch.bfloat16:
            raise self.error(f"tensors/{key}", "a bfloat16 NumPy array")
        return self.tensor(key).numpy()

    def _fitted_value(self, name, entry):
        where = f"fitted.{name}"
        if not isinstance(entry, dict) or len(entry) not in (1, 2):
            raise self.error(
                where, "expected an object with 'value', 'labels' or 'history'"
            )
        if "history" in entry:
            _check_object(entry, where, ("history",), self.archive)
            rows = entry["history"]
            if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
                raise self.error(where, "a history is a list of objects, one per epoch")
            return History(rows)
        if "labels" in entry:
            _check_object(entry, where, ("labels", "dtype"), self.archive)
            return self._labels(where, entry["labels"], entry["dtype"])
        _check_object(entry, where, ("value",), self.archive)
        value = entry["value"]
        if name.endswith("shape_"):
            if not (
                isinstance(value, list)
                and len(value) in (1, 3)
                and all(_is_count(v) and v > 0 for v in value)
            ):
                raise self.error(where, f"{value!r:.80} is not the shape of a sample")
            if math.prod(value) > MAX_SAMPLE_VALUES:
                raise self.error(
                    where,
                    f"samples of {math.prod(value)} values, over MAX_SAMPLE_VALUES = "
                    f"{MAX_SAMPLE_VALUES}",
                )
            return tuple(value)
        if name.startswith(("n_", "_n_")) and not _is_count(value):
            raise self.error(where, f"{value!r:.80} is not a count")
        return value

    def _labels(self, where, labels, dtype):
        try:
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as error:
            raise self.error(where, f"dtype {dtype!r:.40}: {error}") from error
        if not isinstance(labels, list) or not all(
            isinstance(label, str | int | float) for label in labels
        ):
            raise self.error(where, "labels are a list of strings or numbers")
        if dtype.kind == "U":
            longest = max(map(len, labels), default=0)
            if not all(isinstance(label, str) for label in labels):
                raise self.error(where, f"labels of dtype {dtype} are strings")
            if dtype.itemsize // 4 < longest:
                raise self.error(
                    where, f"dtype {dtype} is narrower than a label of {longest}"
                )
            if dtype.itemsize * len(labels) > 4 * MAX_JSON_BYTES:
                raise self.error(where, f"dtype {dtype} is too wide")
        elif dtype.kind != "O":
            raise self.error(where, f"dtype {dtype}: labels are strings or objects")
        return np.array(labels, dtype=dtype)

    def _check_fitted(self, values):
        n_features = values["n_features_in_"]
        if "input_shape_" not in values:  # EmbeddingNeighbors
            for name in ("n_features_in_", "n_samples_fit_"):
                if values[name] < 1:
                    raise self.error(
                        f"fitted.{name}",
                        "0, but fit takes one reference of one feature at least",
                    )
        elif not isinstance(values["input_shape_"], tuple):
            raise self.error("fitted.input_shape_", "expected a value")
        elif n_features != values["input_shape_"][0]:
            raise self.error(
                "fitted.n_features_in_",
                f"{n_features}, but input_shape_ is {values['input_shape_']}",
            )
        names = values.get("feature_names_in_")
        if names is not None and (
            not isinstance(names, np.ndarray) or names.shape != (n_features,)
        ):
            raise self.error("fitted.feature_names_in_", f"not {n_features} names")
        if "classes_" not in values:  # a regressor, or learnt without labels
            return
        classes = values["classes_"]
        if not isinstance(classes, np.ndarray) or classes.ndim != 1 or not len(classes):
            raise self.error("fitted.classes_", "expected a 1-D array of labels")
        try:
            ordered = np.unique(classes)
        except TypeError as error:
            raise self.error("fitted.classes_", f"labels that sort: {error}") from error
        if len(ordered) != len(classes) or not np.array_equal(ordered, classes):
            raise self.error(
                "fitted.classes_",
                "labels must be unique and sorted, as fit leaves them",
            )
        for name in _PER_CLASS:
            array = values.get(name)
            if array is not None and (array.ndim == 0 or len(array) != len(classes)):
                raise self.error(
                    f"fitted.{name}",
                    f"shape {array.shape}: one row per class, and classes_ has "
                    f"{len(classes)}",
                )
        labels = values.get("support_labels_")
        if labels is not None:
            support = values.get("support_embeddings_")
            if (
                labels.ndim != 1
                or labels.dtype.kind not in "iu"
                or support is None
                or len(support) != len(labels)
                or (
                    len(labels) and not 0 <= labels.min() <= labels.max() < len(classes)
                )
            ):
                raise self.error(
                    "fitted.support_labels_",
                    "one class index (0 to len(classes_) - 1) per row of "
                    "support_embeddings_",
                )

    # The parameters, and the values that size the network.

    def _check_sizes(self, params, modules, fitted):
        """Refuse a size the file's tensors could not fill, before building."""
        if not isinstance(params, dict):
            raise self.error("params", "expected a JSON object")
        if not isinstance(modules, dict):
            raise self.error("modules", "expected a JSON object")
        widest = self._widest()
        width, depth = max(widest, MIN_WIDTH), max(len(self.specs), MIN_DEPTH)
        sizing = [
            (f"params.{name}", value)
            for name, value in params.items()
            if name.endswith(("_dim", "_dims", "_params"))
        ]
        sizing += [
            (f"modules.{name}.arguments", spec.get("arguments"))
            for name, spec in modules.items()
            if isinstance(spec, dict)
        ]
        sizing += [(f"fitted.{n}", fitted[n]) for n in _SIZING_COUNTS if n in fitted]
        while sizing:
            where, value = sizing.pop()
            if isinstance(value, bool):
                continue
            if isinstance(value, int) and value > width:
                raise self.error(
                    where,
                    f"{value} is wider than the file's largest tensor ({widest} "
                    "values) could fill; refused before building the network",
                )
            if isinstance(value, list) and len(value) > depth:
                raise self.error(
                    where,
                    f"a list of {len(value)} sizes, more than the file's "
                    f"{len(self.specs)} tensors could fill",
                )
            if isinstance(value, list | dict):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                sizing += [(f"{where}[{k!r}]", v) for k, v in items]

    def _construct(self, cls, params, modules):
        """The estimator of the file's parameters, validated by its constraints."""
        names = set(cls._get_param_names()) - {"callbacks"}
        for where, given in (("params", params), ("modules", modules)):
            unknown = sorted(set(given) - names)
            if unknown:
                raise self.error(
                    f"{where}.{unknown[0]}",
                    f"not a parameter of {cls.__name__} (callbacks are never saved)",
                )
        both = sorted(set(params) & set(modules))
        if both:
            raise self.error(f"modules.{both[0]}", "also in params")
        backbone = params.get("backbone")
        if isinstance(backbone, str) and backbone not in BACKBONES:
            raise self.error(
                "params.backbone",
                f"{backbone!r} is not a name of skmeta.backbones.BACKBONES here: "
                "register the class under that name before load, as the process "
                "that saved the model had it",
            )
        values = dict(params)
        for name, spec in modules.items():
            values[name] = self._module(name, spec)
        estimator = cls(**values)
        constraints = estimator._parameter_constraints
        for name, value in params.items():
            # scikit-learn's Interval(Integral, ...) takes True as 1.
            takes_bool = any(
                c in ("boolean", "verbose") or c is bool for c in constraints[name]
            )
            if isinstance(value, bool) and not takes_bool:
                raise self.error(f"params.{name}", f"{value}, but it takes no bool")
        try:
            estimator._validate_params()
        except InvalidParameterError as error:
            raise self.error("params", str(error)) from error
        return estimator

    def _trusted_class(self, name, where):
        if isinstance(name, str):
            candidates = [t for t in self.trusted if isinstance(t, type)]
            for cls in [*candidates, *_registered_classes()]:
                if _qualified_name(cls) == name:
                    return cls
            # A class the file names from a script (__main__) or another module.
            same = [c for c in candidates if name.endswith("." + c.__qualname__)]
            if len(same) == 1:
                return same[0]
        short = str(name).rpartition(".")[2]
        raise self.error(
            where,
            f"the file names the class {name!r:.120}, and load() never imports what "
            f"a file names. If you trust it, pass the class: load(path, "
            f"trusted=[{short}]), or register it in skmeta.backbones.BACKBONES",
        )

    def _module(self, name, spec):
        """A module parameter: a trusted class, or an instance rebuilt from it."""
        where = f"modules.{name}"
        _check_object(spec, where, ("class",), self.archive, optional=("arguments",))
        cls = self._trusted_class(spec["class"], f"{where}.class")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise self.error(f"{where}.class", f"{cls!r} is not a torch module class")
        if "arguments" not in spec:
            if any(k == "param" and n == name for k, n, _ in self.kinds.values()):
                raise self.error(where, "a class has no weights, and the file has some")
            return cls
        arguments = spec["arguments"]
        if not isinstance(arguments, dict):
            raise self.error(f"{where}.arguments", "expected a JSON object")
        what = f"{cls.__name__}(**arguments)"
        with torch.device("meta"):
            template = self._call(cls, arguments, f"{where}.arguments")
        self._check_state(template.state_dict(), "param", name, what)
        module = self._call(cls, arguments, f"{where}.arguments")
        module.load_state_dict(self._state("param", name))
        self.meta_modules[name] = template
        return module

    def _call(self, cls, arguments, where):
        """``cls(**arguments)``: a trusted class, called with the file's data."""
        try:
            return cls(**arguments)
        except Exception as error:  # whatever the class raises for these arguments
            raise self.error(
                where, f"{cls.__name__}(**arguments) fails: {error}"
            ) from error

    # A search index: its arrays checked by the estimator, faiss's bytes
    # before faiss reads them.

    def _restore_index(self, estimator):
        """Give ``estimator`` (EmbeddingNeighbors) its distance and index."""
        try:
            estimator._validated_params()
        except ValueError as error:
            raise self.error("params", str(error)) from error
        distance, n_features = estimator.distance, estimator.n_features_in_
        if isinstance(distance, str) and distance not in DISTANCES:
            raise self.error(
                "params.distance", f"{distance!r:.80} is not in {sorted(DISTANCES)}"
            )
        # "mahalanobis" builds an n_features_in_ ** 2 matrix: no more values
        # than the file's largest tensor or MIN_WIDTH ** 2.
        widest = self._widest()
        if distance == "mahalanobis" and n_features**2 > max(widest, MIN_WIDTH**2):
            raise self.error(
                "params.distance",
                f"'mahalanobis' over {n_features} features is a matrix of "
                f"{n_features**2} values, more than the file's largest tensor "
                f"({widest} values) or MIN_WIDTH ** 2",
            )
        arrays = {
            name: self._array(key)
            for key, (kind, name, _) in self.kinds.items()
            if kind == "index"
        }
        entry = f"tensors/index/{next(iter(arrays))}" if len(arrays) == 1 else "tensors"
        try:
            estimator._load_index_arrays(arrays)
        except ValueError as error:
            raise self.error(entry, str(error)) from error

    # The network: built on the meta device, checked, then built for real.

    def _build(self, estimator, device_):
        view = copy.copy(estimator)  # its module parameters on the meta device too
        vars(view).update(self.meta_modules)
        try:
            with torch.device("meta"):
                network = view._build_network().eval()
                sample = torch.zeros(1, *estimator.input_shape_)
                embedding = tuple(network.embed(sample).shape[1:])
        except Exception as error:  # what the saved parameters build, if anything
            raise self.error(
                "params",
                "the parameters and input_shape_ do not build a network: "
                f"{type(error).__name__}: {error}",
            ) from error
        state = network.state_dict()
        what = f"the network {type(network).__name__}"
        self._check_state(state, "module_", None, what)
        for name in _EMBEDDINGS:
            array = getattr(estimator, name, None)
            if array is not None and tuple(array.shape[1:]) != embedding:
                raise self.error(
                    f"fitted.{name}",
                    f"rows of shape {tuple(array.shape[1:])}; the network embeds "
                    f"samples as {embedding}",
                )
        mean = getattr(estimator, "feature_mean_", None)
        if mean is not None and tuple(mean.shape) != embedding:
            raise self.error(
                "fitted.feature_mean_", f"shape {mean.shape}, not {embedding}"
            )
        self._check_adapted(estimator, network)
        module = estimator._build_network()
        module.load_state_dict(self._state("module_", None))
        estimator.module_ = module.to(device_)

    def _check_adapted(self, estimator, network):
        """Dicts of tensors (``adapted_params_``) hold parameters of the network.

        Each has the shape of the network's parameter of its name (or of a
        submodule's), but for the output layer: one row per class of
        ``classes_`` (MAML's zero head). A network with ``logits(params, x)``
        must give, under each dict, one score per class of ``classes_``; on
        the meta device, so a shape that does not fit is found without data.
        """
        # A regressor's network has one output.
        n_classes = len(getattr(estimator, "classes_", [None]))
        # Buffers too: a backbone fine-tuned or re-estimated at adapt keeps
        # its batch-norm statistics (fine_tuned_params_).
        parameters = dict(network.named_parameters()) | dict(network.named_buffers())
        dicts = {}
        for key, (kind, name, item) in self.kinds.items():
            if kind != "dict":
                continue
            dicts.setdefault(name, {})[item] = self.specs[key]
            shape = self.specs[key][1]
            names = [n for n in parameters if n == item or n.endswith(f".{item}")]
            expected = parameters[names[0]] if len(names) == 1 else None
            if expected is None or not (
                shape == tuple(expected.shape)
                or (shape[:1] == (n_classes,) and shape[1:] == expected.shape[1:])
            ):
                raise self.error(
                    f"tensors/{key}",
                    f"shape {list(shape)}: not a parameter of the network, nor one "
                    f"with a row per class ({n_classes})",
                )
        logits = getattr(network, "logits", None)
        for name, specs in dicts.items() if logits is not None else ():
            try:
                with torch.device("meta"):
                    params = {k: torch.empty(s, dtype=d) for k, (d, s) in specs.items()}
                    scores = logits(params, torch.zeros(2, *estimator.input_shape_))
            except Exception as error:  # the network's own shape checks
                raise self.error(
                    f"fitted.{name}", f"the network cannot use these weights: {error}"
                ) from error
            if tuple(scores.shape) != (2, n_classes):
                raise self.error(
                    f"fitted.{name}",
                    f"scores of shape {tuple(scores.shape[1:])} per sample under these "
                    f"weights, for {n_classes} classes_",
                )


def _load_pipeline(archive, device, device_, trusted):
    sio = _skops()
    document = archive.json("pipeline.json")
    _check_format(document, "pipeline.json", archive)
    keys = ("format", "skmeta", "class", "skmeta steps")
    _check_object(document, "pipeline.json", keys, archive)
    indices = document["skmeta steps"]
    if document["class"] != "Pipeline" or not (
        isinstance(indices, list)
        and all(map(_is_count, indices))
        and len(set(indices)) == len(indices)
    ):
        raise archive.error("pipeline.json", "not a Pipeline's description")
    data = archive.read("pipeline.skops", archive.path.stat().st_size)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            inflated = sum(info.file_size for info in inner.infolist())
        if inflated > len(data):
            raise ValueError(f"its entries inflate to {inflated} bytes")
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as error:  # skops reading a file it did not check
        raise archive.error(
            "pipeline.skops", f"skops cannot read it: {error}"
        ) from error
    names = {t if isinstance(t, str) else _qualified_name(t) for t in trusted}
    refused = [t for t in untrusted if t not in names]
    if refused:
        raise archive.error(
            "pipeline.skops",
            f"the types {refused} are not trusted by skops by default: if you "
            "trust the file, pass them (classes or these names) in trusted=",
        )
    try:
        pipeline = sio.loads(data, trusted=untrusted)
    except Exception as error:  # skops reading a file it did not check
        raise archive.error(
            "pipeline.skops", f"skops cannot read it: {error}"
        ) from error
    if not isinstance(pipeline, Pipeline) or any(
        i >= len(pipeline.steps) or pipeline.steps[i][1] != "passthrough"
        for i in indices
    ):
        raise archive.error(
            "pipeline.skops", "not the Pipeline pipeline.json describes"
        )
    prefixes = [f"steps/{i}/" for i in indices]
    for name in archive.infos:
        if name not in ("pipeline.json", "pipeline.skops") and not name.startswith(
            tuple(prefixes)
        ):
            raise archive.error(name, "an entry that save() does not write")
    for index, prefix in zip(indices, prefixes, strict=True):
        step = _Reader(archive, prefix, trusted).estimator(device, device_)
        pipeline.steps[index] = (pipeline.steps[index][0], step)
    return pipeline
