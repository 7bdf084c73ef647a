"""Save and load fitted estimators without pickle.

``pickle`` and ``joblib`` files run code when they are loaded: open one only
if you trust whoever wrote it. :func:`save` writes a fitted estimator as a zip
file that holds only data:

- ``estimator.json``: the class, its constructor parameters, the fitted
  attributes that are not arrays (``classes_``, ``input_shape_``,
  ``history_``...) and the skmeta version;
- ``tensors.pt``: the network's weights and the fitted arrays, a flat
  mapping of names to tensors, read back with ``torch.load(...,
  weights_only=True)``, which refuses anything but tensors and plain
  containers.

:func:`load` rebuilds the estimator from its parameters, its network from
``input_shape_``, and puts the weights in, on the device asked for: a model
trained on a GPU loads on a CPU.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from skorch.history import History

from . import __version__
from ._base import TorchEstimator, resolve_device

__all__ = ["load", "save"]

FORMAT = 1

#: Private fitted state that a network is rebuilt from.
_PRIVATE = ("_n_loss_classes",)


def _estimator_classes():
    import skmeta

    return {
        name: obj
        for name in skmeta.__all__
        if isinstance(obj := getattr(skmeta, name), type)
        and issubclass(obj, TorchEstimator)
    }


def _json_value(name, value):
    """``value`` as JSON, or a TypeError naming the parameter."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [_json_value(name, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(name, v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(
        f"save() stores parameters as JSON, and {name}={value!r} is not plain "
        "data (a module, a class or a callable). Give it by name (for instance "
        "backbone='conv4'), or keep the model with joblib.dump, whose file runs "
        "code on load."
    )


def _plain(value):
    """JSON for the numpy scalars skorch's history may hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save(estimator, path):
    """Write a fitted skmeta estimator to ``path``, without pickle.

    Parameters
    ----------
    estimator : fitted skmeta estimator
        Any few-shot classifier or embedder of skmeta, fitted (and adapted).
        Its ``callbacks`` are not saved: they belong to training.
    path : str or os.PathLike
        The file to write, a zip archive (``.skmeta`` by convention).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        If ``estimator`` is not a skmeta estimator, or one of its parameters
        is not plain data (a module instance or class, a callable).
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.

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
    from sklearn.utils.validation import check_is_fitted

    if type(estimator).__name__ not in _estimator_classes():
        raise TypeError(
            f"save() takes a skmeta estimator; got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    params = {
        name: _json_value(name, value)
        for name, value in estimator.get_params(deep=False).items()
        if name != "callbacks"
    }
    fitted, tensors = {}, {}
    for name, value in vars(estimator).items():
        if not (name.endswith("_") or name in _PRIVATE):
            continue
        if name == "module_":
            for key, tensor in value.state_dict().items():
                tensors[f"module_/{key}"] = tensor.detach().cpu()
        elif name == "device_":
            continue
        elif name == "history_":
            fitted[name] = {"history": value.to_list()}
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            tensors[f"array/{name}"] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, np.ndarray):
            fitted[name] = {"labels": value.tolist(), "dtype": value.dtype.str}
        elif isinstance(value, dict):
            for key, tensor in value.items():
                tensors[f"dict/{name}/{key}"] = tensor.detach().cpu()
        else:
            fitted[name] = {"value": _json_value(name, value)}
    document = {
        "format": FORMAT,
        "skmeta": __version__,
        "class": type(estimator).__name__,
        "params": params,
        "fitted": fitted,
    }
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "estimator.json", json.dumps(document, indent=1, default=_plain)
        )
        archive.writestr("tensors.pt", buffer.getvalue())
    return path


def load(path, *, device="cpu"):
    """Read an estimator that :func:`save` wrote, without running its code.

    Parameters
    ----------
    path : str or os.PathLike
        The file :func:`save` wrote.
    device : str or torch.device, default="cpu"
        Where the network goes, whatever device it was trained on: ``"cpu"``,
        ``"cuda"``, ``"auto"``...; also the loaded estimator's ``device``.

    Returns
    -------
    estimator
        The fitted estimator, predicting as the saved one did.

    Raises
    ------
    ValueError
        If the file is not one that :func:`save` wrote (or of a newer
        format), names a class that skmeta lacks, or ``device`` cannot be
        used here.
    """
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if not {"estimator.json", "tensors.pt"} <= names:
            raise ValueError(
                f"{path} is not a file that skmeta.persistence.save wrote."
            )
        document = json.loads(archive.read("estimator.json"))
        tensors = torch.load(
            io.BytesIO(archive.read("tensors.pt")),
            weights_only=True,
            map_location="cpu",
        )
    if document.get("format", 0) > FORMAT:
        raise ValueError(
            f"{path} was written in format {document['format']} by skmeta "
            f"{document.get('skmeta')}; this skmeta ({__version__}) reads up to "
            f"format {FORMAT}."
        )
    classes = _estimator_classes()
    if document["class"] not in classes:
        raise ValueError(f"{path} holds a {document['class']!r}, which skmeta lacks.")
    device_ = resolve_device(device)
    params = dict(document["params"], device=device)
    estimator = classes[document["class"]](**params)
    for name, entry in document["fitted"].items():
        if "history" in entry:
            value = History(entry["history"])
        elif "labels" in entry:
            value = np.array(entry["labels"], dtype=np.dtype(entry["dtype"]))
        else:
            value = entry["value"]
            if name.endswith("shape_"):
                value = tuple(value)
        setattr(estimator, name, value)
    estimator.device_ = device_
    dicts = {}
    for key, tensor in tensors.items():
        kind, _, rest = key.partition("/")
        if kind == "array":
            setattr(estimator, rest, tensor.numpy())
        elif kind == "dict":
            name, _, item = rest.partition("/")
            dicts.setdefault(name, {})[item] = tensor.to(device_)
    for name, value in dicts.items():
        setattr(estimator, name, value)
    module = estimator._build_network()
    state = {
        k.partition("/")[2]: t for k, t in tensors.items() if k.startswith("module_/")
    }
    module.load_state_dict(state)
    estimator.module_ = module.to(device_)
    return estimator
