"""Writing an estimator: its parameters and fitted state as data, then the zip.

Everything that cannot be stored as plain data is collected, so that one
error names every such entry; the archive is written beside the target and
renamed over it only once it is whole.
"""

import inspect
import json
import os
import secrets
import zipfile

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .. import __version__
from ..neighbors import EmbeddingNeighbors
from ._format import (
    _DTYPES,
    FORMAT,
    MAX_JSON_BYTES,
    _describe,
    _estimator_classes,
    _private,
    _qualified_name,
    _signature,
)

#: What a save refused is most often, and what to do about it.
_ADVICE = (
    "Give parameters by name (backbone='conv4') or as plain data, a module as "
    "its class or as an instance that keeps each constructor argument in an "
    "attribute of the same name (load it with trusted=[TheClass]), and record "
    "plain values in the history (array.tolist())."
)


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
