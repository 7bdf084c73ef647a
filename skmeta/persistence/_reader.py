"""Reading one estimator of an archive, every entry checked before it is used.

The parameters are validated by the estimator's own constraints, every value
that sizes the network is bounded by the file's tensors, the network is built
on the meta device and compared with the file's tensors before it is built for
real, and a search index is checked by the estimator before faiss reads it.
"""

import copy
import math
import zipfile

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import InvalidParameterError
from skorch.history import History
from torch import nn

from ..backbones import BACKBONES
from ..distances import DISTANCES
from ..neighbors import EmbeddingNeighbors
from ._archive import _check_format, _check_object, _is_count
from ._format import (
    _DTYPES,
    _EMBEDDINGS,
    _PER_CLASS,
    _REBUILT,
    _REQUIRED,
    _SIZING_COUNTS,
    _TENSOR_KINDS,
    MAX_JSON_BYTES,
    MAX_SAMPLE_VALUES,
    MIN_DEPTH,
    MIN_WIDTH,
    _estimator_classes,
    _private,
    _signature,
)
from ._trust import resolve_class


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
        cls = resolve_class(name, self.trusted)
        if cls is not None:
            return cls
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
