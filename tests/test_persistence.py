"""Specification of skmeta.persistence: pickle-free save and load."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from helpers import FEW_SHOT, short
from sklearn.base import clone

from skmeta import (
    ArcFaceEmbedder,
    PrototypicalClassifier,
    TripletEmbedder,
)
from skmeta.persistence import load, save

ESTIMATORS = [short(cls) for cls in FEW_SHOT]
ESTIMATORS[0].set_params(validation_fraction=0.4)  # a history with valid_loss
ESTIMATORS += [short(TripletEmbedder), short(ArcFaceEmbedder, validation_fraction=0.4)]


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


def test_the_file_holds_data_only(digits, tmp_path):
    model = short(PrototypicalClassifier).fit(digits.X_base, digits.y_base)
    path = save(model, tmp_path / "model.skmeta")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["estimator.json", "tensors.pt"]
        document = json.loads(archive.read("estimator.json"))
    assert document["class"] == "PrototypicalClassifier"
    assert document["params"]["max_epochs"] == 2
    # torch's weights-only loader takes it: tensors and plain containers only.
    with zipfile.ZipFile(path) as archive, archive.open("tensors.pt") as f:
        tensors = torch.load(f, weights_only=True)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_a_module_parameter_cannot_be_saved_as_json(digits, tmp_path):
    model = PrototypicalClassifier(backbone=torch.nn.Flatten(), max_epochs=0)
    model.fit(digits.X_base, digits.y_base)
    with pytest.raises(TypeError, match=r"backbone=Flatten.*not plain data"):
        save(model, tmp_path / "model.skmeta")


def test_an_unfitted_or_foreign_estimator_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(NotFittedError):
        save(PrototypicalClassifier(), tmp_path / "a")
    with pytest.raises(TypeError, match="takes a skmeta estimator"):
        save(LogisticRegression(), tmp_path / "b")


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.pkl", b"not ours")
    with pytest.raises(ValueError, match="not a file that skmeta.persistence.save"):
        load(path)


def _as_if_saved_on_a_gpu(path, tmp_path):
    """A copy of the file whose tensors are tagged as CUDA ones, device 'cuda'."""
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("estimator.json"))
        inner = zipfile.ZipFile(io.BytesIO(archive.read("tensors.pt")))
    document["params"]["device"] = "cuda"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for info in inner.infolist():
            data = inner.read(info)
            if info.filename.endswith("data.pkl"):
                # Each storage's location, a pickled string: 'cpu' -> 'cuda:0'.
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            out.writestr(info, data)
    gpu = tmp_path / "gpu.skmeta"
    with zipfile.ZipFile(gpu, "w") as archive:
        archive.writestr("estimator.json", json.dumps(document))
        archive.writestr("tensors.pt", buffer.getvalue())
    return gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests loading without CUDA")
def test_a_model_saved_on_a_gpu_loads_on_a_cpu(digits, tmp_path):
    model = short(PrototypicalClassifier).fit(digits.X_base, digits.y_base)
    gpu = _as_if_saved_on_a_gpu(save(model, tmp_path / "model.skmeta"), tmp_path)
    with zipfile.ZipFile(gpu) as archive:
        raw = io.BytesIO(archive.read("tensors.pt"))
    with pytest.raises(RuntimeError, match="CUDA"):  # the file names CUDA devices
        torch.load(raw, weights_only=True)
    restored = load(gpu, device="cpu")
    assert restored.device == "cpu" and restored.device_ == torch.device("cpu")
    np.testing.assert_array_equal(
        restored.predict_proba(digits.X_novel), model.predict_proba(digits.X_novel)
    )
