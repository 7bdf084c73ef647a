"""Specification of skmeta.persistence: pickle-free, atomic saves and bounded loads."""

import json
import os
import resource
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
from helpers import FEW_SHOT, short
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from skorch.callbacks import Callback
from torch import nn

from skmeta import (
    ArcFaceEmbedder,
    MAMLClassifier,
    PrototypicalClassifier,
    TripletEmbedder,
)
from skmeta.backbones import BACKBONES
from skmeta.distances import Mahalanobis, Manhattan
from skmeta.neighbors import EmbeddingNeighbors
from skmeta.persistence import MAX_JSON_BYTES, load, save

try:
    import faiss  # noqa: F401

    HAS_FAISS = True
except ImportError:
    HAS_FAISS = False

needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed")

ESTIMATORS = [short(cls) for cls in FEW_SHOT]
ESTIMATORS[0].set_params(validation_fraction=0.4)  # a history with valid_loss
ESTIMATORS += [short(TripletEmbedder), short(ArcFaceEmbedder, validation_fraction=0.4)]

#: Six classes of three 5-feature samples, string labels: a model in milliseconds.
X_TINY = np.random.RandomState(0).normal(size=(18, 5)).astype(np.float32)
Y_TINY = np.repeat([f"c{i}" for i in range(6)], 3)
TINY = dict(backbone="mlp", embedding_dim=3, backbone_params={"hidden_dims": [4]})


def tiny_protonet():
    model = PrototypicalClassifier(**TINY, max_epochs=0, random_state=0)
    return model.fit(X_TINY, Y_TINY)


class TinyNet(nn.Module):
    """A user's backbone: keeps its constructor arguments as attributes."""

    def __init__(self, in_features, out_features=3, width=4):
        super().__init__()
        self.in_features, self.out_features, self.width = (
            in_features,
            out_features,
            width,
        )
        self.layers = nn.Sequential(
            nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, out_features)
        )

    def forward(self, x):
        return self.layers(x)


def rewrite(path, change):
    """Rewrite each entry of the zip at ``path`` as ``change(name, data)`` returns."""
    with zipfile.ZipFile(path) as archive:
        entries = {info: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries.items():
            archive.writestr(info, change(info.filename, data))
    return path


def edit(path, change):
    """Rewrite the estimator.json of the file at ``path`` with ``change(document)``."""

    def entry(name, data):
        if name != "estimator.json":
            return data
        document = json.loads(data)
        change(document)
        return json.dumps(document).encode()

    return rewrite(path, entry)


def resize(path, key, shape, raw=None):
    """Give tensor ``key`` of the file at ``path`` the ``shape``, listed so, and
    the bytes ``raw`` (zeros if None)."""
    with zipfile.ZipFile(path) as archive:
        dtype = json.loads(archive.read("estimator.json"))["tensors"][key]["dtype"]
    if raw is None:
        raw = bytes(int(np.prod(shape)) * getattr(torch, dtype).itemsize)
    edit(path, lambda document: document["tensors"][key].update(shape=list(shape)))
    return rewrite(path, lambda name, data: raw if name == f"tensors/{key}" else data)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_a_saved_estimator_loads_and_predicts_the_same(estimator, digits, tmp_path):
    model = clone(estimator).fit(digits.X_base, digits.y_base)
    if hasattr(model, "adapt"):
        support = np.concatenate(
            [np.flatnonzero(digits.y_novel == c)[:3] for c in (5, 7, 9)]
        )
        model.adapt(digits.X_novel[support], digits.y_novel[support].astype(str))
    path = save(model, tmp_path / "model.skmeta")
    loaded = load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params()["callbacks"] is None
    np.testing.assert_array_equal(
        loaded.transform(digits.X_novel), model.transform(digits.X_novel)
    )
    if hasattr(model, "adapt"):
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        np.testing.assert_array_equal(
            loaded.predict_proba(digits.X_novel), model.predict_proba(digits.X_novel)
        )
        assert loaded.predict(digits.X_novel[:2]).dtype == model.classes_.dtype
    assert loaded.history_[:, "train_loss"] == model.history_[:, "train_loss"]
    assert (loaded.n_steps_, loaded.stop_reason_) == (
        model.n_steps_,
        model.stop_reason_,
    )


def test_the_support_set_of_fit_is_saved(digits, tmp_path):
    # Saved straight after fit, before any prediction embedded the training set.
    model = short(PrototypicalClassifier).fit(digits.X_base, digits.y_base)
    loaded = load(save(model, tmp_path / "model.skmeta"))
    np.testing.assert_array_equal(
        loaded.predict_proba(digits.X_novel), model.predict_proba(digits.X_novel)
    )


def test_the_file_holds_data_only(tmp_path):
    model = tiny_protonet()
    path = save(model, tmp_path / "model.skmeta")
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("estimator.json"))
        weight = archive.getinfo("tensors/module_/backbone.layers.0.weight")
        raw = archive.read(weight)
    assert document["class"] == "PrototypicalClassifier"
    assert document["params"]["embedding_dim"] == 3
    assert document["fitted"]["classes_"] == {
        "labels": Y_TINY[::3].tolist(),
        "dtype": "<U2",
    }
    # Raw little-endian float32 bytes, stored as they are: no pickle, no code.
    assert weight.compress_type == zipfile.ZIP_STORED
    expected = model.module_.state_dict()["backbone.layers.0.weight"]
    assert raw == expected.numpy().astype("<f4").tobytes()
    assert document["tensors"]["module_/backbone.layers.0.weight"] == {
        "dtype": "float32",
        "shape": [4, 5],
    }


class _RecordsAnArray(Callback):
    def on_epoch_end(self, net, **kwargs):
        net.history.record("eye", np.eye(2))


def test_a_failed_save_names_every_entry_and_leaves_the_old_file_whole(tmp_path):
    good = tiny_protonet()
    path = save(good, tmp_path / "m.skmeta")
    before = path.read_bytes()
    bad = PrototypicalClassifier(
        **TINY,
        max_epochs=2,
        episodes_per_epoch=1,
        augment=lambda x: x,
        callbacks=[_RecordsAnArray()],
    ).fit(X_TINY, Y_TINY)
    with pytest.raises(TypeError) as error:
        save(bad, path)
    message = str(error.value)
    assert "params.augment: a builtins.function" in message
    assert "history_[i]['eye']: a numpy.ndarray (in 2 epochs)" in message
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.skmeta"]  # no temporary file left
    np.testing.assert_array_equal(load(path).predict(X_TINY), good.predict(X_TINY))


def test_a_save_that_fails_while_writing_leaves_the_old_file_whole(
    tmp_path, monkeypatch
):
    path = save(tiny_protonet(), tmp_path / "m.skmeta")
    before = path.read_bytes()

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full)
    with pytest.raises(OSError, match="No space"):
        save(tiny_protonet(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.skmeta"]


def test_an_unfitted_or_foreign_estimator_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(NotFittedError):
        save(PrototypicalClassifier(), tmp_path / "a")
    with pytest.raises(TypeError, match="takes a skmeta estimator"):
        save(LogisticRegression(), tmp_path / "b")
    assert not os.listdir(tmp_path)


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.pkl", b"not ours")
    with pytest.raises(ValueError, match="not a file that skmeta.persistence.save"):
        load(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a file that skmeta.persistence.save"):
        load(path)


def _set(*keys, value):
    def change(document):
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (_set("params", "n_way", value="lots"), r"params: The 'n_way' parameter"),
        (_set("params", "embedding_dim", value=2_000_000), r"params.embedding_dim: "),
        (
            _set("fitted", "input_shape_", value={"value": [3, 200000, 200000]}),
            r"fitted.input_shape_: samples of 120000000000 values",
        ),
        (
            _set("fitted", "input_shape_", value={"value": [200000, 200000]}),
            r"fitted.input_shape_: .* not the shape of a sample",
        ),
        (_set("format", value="2"), r"estimator.json: written in format '2'"),
        (_set("class", value="os.system"), r"class: 'os.system' is not an estimator"),
        (lambda d: d.pop("class"), r"\['class'\] missing"),
        (
            _set("fitted", "predict_proba", value={"value": 1}),
            r"fitted.predict_proba: not a fitted attribute",
        ),
        (
            _set("fitted", "module_", value={"value": 1}),
            r"fitted.module_: not a fitted attribute",
        ),
        (_set("params", "evil", value=1), r"params.evil: not a parameter"),
        (_set("params", "batch_size", value=True), r"params.batch_size: True, but"),
        (
            _set("fitted", "classes_", "labels", value=[f"c{i}" for i in range(10)]),
            r"fitted.prototypes_: shape \(6, 3\): one row per class, and classes_ "
            r"has 10",
        ),
        (
            _set("fitted", "classes_", "labels", value=["c0", "c1"]),
            r"fitted.prototypes_: .* classes_ has 2",
        ),
        (
            _set("fitted", "classes_", "labels", value=["b", "a", "c", "d", "e", "f"]),
            r"fitted.classes_: labels must be unique and sorted",
        ),
        (
            _set("fitted", "classes_", "dtype", value="<U100000000000"),
            r"fitted.classes_: dtype",
        ),
        (_set("params", "backbone", value="mynet"), r"register the class"),
        (
            _set("params", "backbone_params", value={"hidden_dims": [1] * 10**5}),
            r"params.backbone_params\['hidden_dims'\]: a list of 100000 sizes",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_a_harmful_or_edited_file_is_a_value_error_naming_the_entry(
    change, message, tmp_path
):
    path = edit(save(tiny_protonet(), tmp_path / "m.skmeta"), change)
    with pytest.raises(ValueError, match=message):
        load(path)


def test_a_decompression_bomb_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "bomb.skmeta"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("estimator.json", b" " * (MAX_JSON_BYTES + 1) + b"{}")
    assert path.stat().st_size < MAX_JSON_BYTES / 500
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="estimator.json: holds .* over the bound"):
            load(path)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "key, shape, message",
    [
        ("array/prototypes_", (3, 3), r"fitted.prototypes_: shape \(3, 3\): one row"),
        ("array/prototypes_", (6, 2), r"fitted.prototypes_: rows of shape \(2,\)"),
        (
            "module_/backbone.layers.0.weight",
            (4, 6),
            r"tensors/module_/backbone.layers.0.weight: a torch.float32 tensor of "
            r"shape \[4, 6\]; the network .* has a torch.float32 one of shape \[4, 5\]",
        ),
    ],
)
def test_a_resized_tensor_is_a_value_error_naming_it(key, shape, message, tmp_path):
    path = resize(save(tiny_protonet(), tmp_path / "m.skmeta"), key, shape)
    with pytest.raises(ValueError, match=message):
        load(path)


def test_a_tensor_larger_than_its_listing_or_compressed_is_refused(tmp_path):
    path = save(tiny_protonet(), tmp_path / "m.skmeta")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("extra.py", b"import os")
    with pytest.raises(ValueError, match="extra.py: an entry that save"):
        load(path)
    path = save(tiny_protonet(), tmp_path / "n.skmeta")
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"tensors/.*stored uncompressed"):
        load(path)


def test_a_model_saved_on_a_gpu_loads_on_a_cpu(tmp_path):
    model = tiny_protonet()
    path = edit(
        save(model, tmp_path / "m.skmeta"), _set("params", "device", value="cuda")
    )
    restored = load(path, device="cpu")
    assert restored.device == "cpu" and restored.device_ == torch.device("cpu")
    np.testing.assert_array_equal(
        restored.predict_proba(X_TINY), model.predict_proba(X_TINY)
    )


# --- a retrieval index: EmbeddingNeighbors ----------------------------------

INDEXES = [
    pytest.param("exact", "euclidean", None, id="exact"),
    pytest.param("exact", "cosine", None, id="exact-cosine"),
    pytest.param("exact", Manhattan(), None, id="exact-module"),
    pytest.param("faiss-flat", "euclidean", None, marks=needs_faiss, id="flat"),
    pytest.param(
        "faiss-ivf", "cosine", {"nlist": 8, "nprobe": 2}, marks=needs_faiss, id="ivf"
    ),
    pytest.param("faiss-hnsw", "euclidean", {"M": 8}, marks=needs_faiss, id="hnsw"),
]


@pytest.mark.parametrize("algorithm, distance, params", INDEXES)
def test_a_saved_index_finds_the_same_neighbours(algorithm, distance, params, tmp_path):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(20, 8))
    nn = EmbeddingNeighbors(
        4, distance=distance, algorithm=algorithm, algorithm_params=params
    ).fit(reference)
    loaded = load(save(nn, tmp_path / "index.skmeta"))
    assert type(loaded.distance) is type(distance)
    for X in (queries, None):  # None: leave-one-out over the references
        for got, expected in zip(loaded.kneighbors(X), nn.kneighbors(X), strict=True):
            np.testing.assert_array_equal(got, expected)
    # The index is one raw array: the references themselves, or faiss's bytes.
    with zipfile.ZipFile(tmp_path / "index.skmeta") as archive:
        names = sorted(archive.namelist())
        raw = archive.read(names[1])
    key = "reference" if algorithm == "exact" else "faiss_index"
    assert names == ["estimator.json", f"tensors/index/{key}"]
    if algorithm == "exact":
        assert raw == reference.tobytes()


@needs_faiss
def test_a_corrupted_faiss_index_in_a_file_is_a_value_error_naming_it(tmp_path):
    nn = EmbeddingNeighbors(3, algorithm="faiss-hnsw", algorithm_params={"M": 4})
    path = save(nn.fit(X_TINY), tmp_path / "m.skmeta")
    with zipfile.ZipFile(path) as archive:
        blob = archive.read("tensors/index/faiss_index")
    original = path.read_bytes()
    # Flipped: its type, its number of features, its number of references.
    flipped = [blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1 :] for i in (0, 4, 8)]
    for data in [*flipped, blob[:-1], blob[: len(blob) // 2]]:
        path.write_bytes(original)
        resize(path, "index/faiss_index", [len(data)], raw=data)
        with pytest.raises(
            ValueError, match="tensors/index/faiss_index: not an index Embedding"
        ):
            load(path)
    # Cut short without its listing: refused before it is read.
    path.write_bytes(original)
    rewrite(path, lambda name, data: data[:-8] if "faiss" in name else data)
    with pytest.raises(ValueError, match=r"tensors/index/faiss_index: holds .* bytes"):
        load(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            _set("params", "algorithm", value="faiss-flat"),
            r"tensors/index/reference: algorithm='faiss-flat' keeps its index in "
            r"one array, 'faiss_index'",
        ),
        (
            _set("fitted", "n_samples_fit_", value={"value": 17}),
            r"tensors/index/reference: expected .* shape \(17, 5\)",
        ),
        (_set("fitted", "n_samples_fit_", value={"value": 0}), r"n_samples_fit_: 0"),
        (_set("params", "distance", value="lots"), r"params.distance: 'lots'"),
        (
            lambda d: d.update(
                params={**d["params"], "distance": "mahalanobis"},
                fitted={**d["fitted"], "n_features_in_": {"value": 5000}},
            ),
            r"params.distance: 'mahalanobis' over 5000 features is a matrix of "
            r"25000000 values",
        ),
        (
            _set("params", "algorithm_params", value={"nprobe": 2}),
            r"params: algorithm_params for algorithm='exact' take no keys",
        ),
        (
            _set("fitted", "distance_", value={"value": 1}),
            r"fitted.distance_: not a fitted attribute",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_an_edited_index_file_is_a_value_error_naming_the_entry(
    change, message, tmp_path
):
    path = save(EmbeddingNeighbors(3).fit(X_TINY), tmp_path / "m.skmeta")
    with pytest.raises(ValueError, match=message):
        load(edit(path, change))


# --- mutated files: a right model or a ValueError, in bounded memory ---------


def _paths(node, prefix=()):
    """Every path of keys into a JSON document, to its objects and values."""
    yield prefix
    if isinstance(node, dict | list):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items)[:8]:  # a history's first rows suffice
            yield from _paths(value, (*prefix, key))


_VALUES = st.sampled_from(
    [-1, 0, 1, 7, 2**40, 1e300, float("nan"), "lots", None, True, [], {}, [3, 9, 9]]
)
_KEYS = st.sampled_from(
    ["predict_proba", "x_", "module_", "__class__", "n_way", "class", "_private"]
)


@st.composite
def mutations(draw, document, data):
    """A change of a saved file: its bytes cut, a JSON value or key, a tensor."""
    kind = draw(st.sampled_from(["truncate", "value", "key", "resize"]))
    if kind == "truncate":
        return kind, draw(st.integers(0, len(data) - 1))
    if kind == "resize":
        key = draw(st.sampled_from(sorted(document["tensors"])))
        shape = list(document["tensors"][key]["shape"]) or [1]
        axis = draw(st.integers(0, len(shape) - 1))
        shape[axis] = draw(st.sampled_from([0, 1, shape[axis] + 1, shape[axis] * 2]))
        return kind, (key, shape)
    paths = list(_paths(document))
    path = draw(st.sampled_from(paths[1:]))
    if kind == "value":
        return kind, (path, draw(_VALUES))
    return kind, (path, draw(st.one_of(_KEYS, st.none())))  # None deletes it


def _mutate(path, document, data, mutation):
    kind, what = mutation
    if kind == "truncate":
        path.write_bytes(data[:what])
    elif kind == "resize":
        resize(path, *what)
    else:
        keys, new = what

        def change(doc):
            parent = doc
            for key in keys[:-1]:
                parent = parent[key]
            if kind == "value":
                parent[keys[-1]] = new
            elif isinstance(parent, dict):
                value = parent.pop(keys[-1])
                if new is not None:
                    parent[new] = value
            else:
                parent.pop(keys[-1])

        edit(path, change)


def _fitted_tiny_models():
    maml = MAMLClassifier(**TINY, max_epochs=0, n_inner_steps_test=1)
    y = np.searchsorted(np.unique(Y_TINY), Y_TINY)  # int labels: a tensor
    models = {
        "protonet": tiny_protonet(),
        "maml": maml.fit(X_TINY, y),
        "neighbors": EmbeddingNeighbors(3).fit(X_TINY),
    }
    if HAS_FAISS:
        hnsw = EmbeddingNeighbors(3, algorithm="faiss-hnsw", algorithm_params={"M": 4})
        models["neighbors-hnsw"] = hnsw.fit(X_TINY)
    return models


MODELS = _fitted_tiny_models()


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(
    # 30 in the suite; PERSISTENCE_EXAMPLES=400 searched deeper (passes, ~65 s).
    max_examples=int(os.environ.get("PERSISTENCE_EXAMPLES", 30)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_mutated_file_loads_a_working_model_or_raises_value_error(
    name, data, tmp_path
):
    model = MODELS[name]
    original = save(model, tmp_path / "original.skmeta")
    load(original)  # once unchanged, so that torch's lazy imports are not counted
    raw = original.read_bytes()
    with zipfile.ZipFile(original) as archive:
        document = json.loads(archive.read("estimator.json"))
    mutation = data.draw(mutations(document, raw))
    path = tmp_path / "mutated.skmeta"
    path.write_bytes(raw)
    _mutate(path, document, raw, mutation)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        loaded = load(path)
    except ValueError:
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 32 * 2**20
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 256 * 2**10
    if isinstance(model, EmbeddingNeighbors):
        assert loaded.n_features_in_ == model.n_features_in_
        k = min(3, loaded.n_samples_fit_)
        _, indices = loaded.kneighbors(X_TINY, n_neighbors=k)
        assert indices.shape == (len(X_TINY), k)
        assert np.all((indices >= -1) & (indices < loaded.n_samples_fit_))
        return
    assert loaded.input_shape_ == model.input_shape_
    proba = loaded.predict_proba(X_TINY)
    assert proba.shape == (len(X_TINY), len(loaded.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


# --- what users build: their own backbone, a Pipeline ------------------------


def test_a_custom_backbone_class_loads_only_when_trusted(tmp_path):
    model = PrototypicalClassifier(backbone=TinyNet, max_epochs=0).fit(X_TINY, Y_TINY)
    path = save(model, tmp_path / "m.skmeta")
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("estimator.json"))
    assert document["modules"]["backbone"] == {"class": "test_persistence.TinyNet"}
    with pytest.raises(
        ValueError,
        match=r"modules.backbone.class: .*'test_persistence.TinyNet'.*never imports"
        r".*trusted=\[TinyNet\]",
    ):
        load(path)
    loaded = load(path, trusted=[TinyNet])
    assert loaded.backbone is TinyNet
    np.testing.assert_array_equal(
        loaded.predict_proba(X_TINY), model.predict_proba(X_TINY)
    )


def test_a_class_the_file_names_is_never_imported(tmp_path):
    path = save(
        PrototypicalClassifier(backbone=TinyNet, max_epochs=0).fit(X_TINY, Y_TINY),
        tmp_path / "m.skmeta",
    )
    edit(path, _set("modules", "backbone", "class", value="subprocess.Popen"))
    with pytest.raises(
        ValueError, match="'subprocess.Popen', and load.. never imports"
    ):
        load(path, trusted=[TinyNet])


def test_a_registered_backbone_name_loads_where_it_is_registered(tmp_path, monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny", TinyNet)
    model = PrototypicalClassifier(backbone="tiny", max_epochs=0).fit(X_TINY, Y_TINY)
    path = save(model, tmp_path / "m.skmeta")
    np.testing.assert_array_equal(load(path).predict(X_TINY), model.predict(X_TINY))
    monkeypatch.delitem(BACKBONES, "tiny")
    with pytest.raises(ValueError, match="params.backbone: 'tiny' is not a name"):
        load(path)


def test_a_backbone_instance_is_rebuilt_with_its_own_weights(tmp_path):
    torch.manual_seed(0)
    pretrained = TinyNet(5, out_features=2, width=3)
    model = PrototypicalClassifier(backbone=pretrained, max_epochs=0).fit(
        X_TINY, Y_TINY
    )
    loaded = load(save(model, tmp_path / "m.skmeta"), trusted=[TinyNet])
    assert isinstance(loaded.backbone, TinyNet) and loaded.backbone.width == 3
    for key, value in pretrained.state_dict().items():
        torch.testing.assert_close(
            loaded.backbone.state_dict()[key], value, rtol=0, atol=0
        )
    np.testing.assert_array_equal(
        loaded.predict_proba(X_TINY), model.predict_proba(X_TINY)
    )


def test_an_instance_whose_arguments_cannot_be_known_is_refused(tmp_path):
    backbone = nn.Sequential(nn.Linear(5, 3))
    model = PrototypicalClassifier(backbone=backbone, max_epochs=0).fit(X_TINY, Y_TINY)
    with pytest.raises(
        TypeError,
        match=r"params.backbone: a Sequential instance.*pass the class instead "
        r"\(backbone=Sequential, its arguments in backbone_params\)",
    ):
        save(model, tmp_path / "m.skmeta")
    assert not os.listdir(tmp_path)


def test_pipelines_load_in_a_new_process_and_give_the_same_results(digits, tmp_path):
    # One new process loads both: a classifier on embeddings, and retrieval.
    pytest.importorskip("skops")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    embedder = short(
        TripletEmbedder,
        embedding_dim=8,
        backbone_params={"hidden_dims": (16,)},
        max_epochs=1,
    )
    classifier = make_pipeline(
        StandardScaler(), clone(embedder), LogisticRegression(max_iter=200)
    ).fit(digits.X_base, digits.y_base)
    retrieval = make_pipeline(clone(embedder), EmbeddingNeighbors(5))
    retrieval.fit(digits.X_base, digits.y_base)
    save(classifier, tmp_path / "classifier.skmeta")
    save(retrieval, tmp_path / "retrieval.skmeta")
    np.save(tmp_path / "X.npy", digits.X_novel)
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from skmeta.persistence import load
        os.chdir({str(tmp_path)!r})
        X = np.load("X.npy")
        np.save("proba.npy", load("classifier.skmeta").predict_proba(X))
        retrieval = load("retrieval.skmeta")
        queries = retrieval[:-1].transform(X)
        np.savez("neighbours.npz", *retrieval[-1].kneighbors(queries))
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    np.testing.assert_array_equal(
        np.load(tmp_path / "proba.npy"), classifier.predict_proba(digits.X_novel)
    )
    neighbours = np.load(tmp_path / "neighbours.npz")
    distances, indices = retrieval[-1].kneighbors(
        retrieval[:-1].transform(digits.X_novel)
    )
    assert indices.shape == (len(digits.X_novel), 5)
    np.testing.assert_array_equal(neighbours["arr_0"], distances)
    np.testing.assert_array_equal(neighbours["arr_1"], indices)


def test_a_model_adapted_with_fine_tuning_and_batch_norm_saves(tmp_path, digits):
    clf = PrototypicalClassifier(
        max_epochs=1,
        episodes_per_epoch=3,
        fine_tuning_steps=2,
        adapt_batch_norm=True,
        random_state=0,
    ).fit(digits.X_base, digits.y_base)
    clf.adapt(digits.X_novel[::20], digits.y_novel[::20])
    restored = load(save(clf, tmp_path / "tuned.skmeta"))
    np.testing.assert_array_equal(
        restored.predict_proba(digits.X_novel), clf.predict_proba(digits.X_novel)
    )


def test_a_learned_mahalanobis_distance_saves(tmp_path, digits):
    clf = PrototypicalClassifier(
        distance=Mahalanobis(64, rank=8), max_epochs=1, episodes_per_epoch=3
    ).fit(digits.X_base, digits.y_base)
    restored = load(save(clf, tmp_path / "m.skmeta"))
    np.testing.assert_array_equal(
        restored.predict_proba(digits.X_novel), clf.predict_proba(digits.X_novel)
    )
