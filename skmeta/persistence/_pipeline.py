"""Pipelines: scikit-learn's steps through skops, skmeta's steps as estimators."""

import copy
import io
import json
import zipfile

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .. import __version__
from ._archive import _check_format, _check_object, _is_count
from ._format import FORMAT, _is_ours, _qualified_name
from ._reader import _Reader
from ._writer import _estimator_entries, _raise_problems


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
