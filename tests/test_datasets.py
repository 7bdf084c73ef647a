"""Tests for skmeta.datasets: Omniglot loading, download, cache, the embedded
copy, and few-shot splits.

The Omniglot tests need the two minimal background archives. They are looked for in
``$SKMETA_DATA`` (or ``$SKMETA_DATA/omniglot``) when that variable is set, else in
``../shared/data/omniglot`` beside the repository, and the tests skip when the
archives are absent. The loader only ever writes into ``tmp_path`` folders, which
hold links to (or, where links are not possible, copies of) the archives.
"""

import dataclasses
import io
import os
import re
import shutil
import stat
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from skmeta.datasets import (
    FewShotSplit,
    get_data_home,
    load_digits_fewshot,
    load_omniglot,
    load_omniglot_minimal,
)
from skmeta.datasets import _omniglot as datasets

SMALL1 = "images_background_small1.zip"
SMALL2 = "images_background_small2.zip"
NOVEL_ALPHABETS = {"Japanese_(katakana)", "Sanskrit", "Tagalog"}


def _data_dir():
    if os.environ.get("SKMETA_DATA"):
        return Path(os.environ["SKMETA_DATA"]).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _find_archive(name):
    for folder in (_data_dir() / "omniglot", _data_dir()):
        if (folder / name).is_file():
            return folder / name
    return None


ARCHIVES = {name: _find_archive(name) for name in (SMALL1, SMALL2)}

requires_omniglot = pytest.mark.skipif(
    None in ARCHIVES.values(),
    reason=(
        f"Omniglot archives {SMALL1} and {SMALL2} not found in {_data_dir()} or "
        f"{_data_dir() / 'omniglot'}; set SKMETA_DATA to the folder holding them."
    ),
)


def _link_archive(name, folder):
    """Make ``folder/name`` point at the local archive, without copying if possible."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    try:
        target.symlink_to(ARCHIVES[name])
    except OSError:
        shutil.copyfile(ARCHIVES[name], target)
    return target


def _home_with(tmp_path, *names):
    for name in names:
        _link_archive(name, tmp_path / "omniglot")
    return tmp_path


class _FakeOpener:
    """Stands in for urllib.request.urlopen: serves bytes or raises."""

    def __init__(self, payload=None, error=None):
        self.payload, self.error, self.calls = payload, error, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.payload)


def _refuse_network(url, timeout=None):
    raise AssertionError(f"unexpected download of {url}")


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def omniglot_home(tmp_path_factory):
    if None in ARCHIVES.values():
        pytest.skip("Omniglot archives not found")
    return _home_with(tmp_path_factory.mktemp("omniglot_home"), SMALL1, SMALL2)


@pytest.fixture(scope="module")
def small1(omniglot_home):
    return load_omniglot("background_small1", data_home=omniglot_home, download=False)


@pytest.fixture(scope="module")
def small2(omniglot_home):
    return load_omniglot("background_small2", data_home=omniglot_home, download=False)


# --- get_data_home ----------------------------------------------------------------


def test_get_data_home_argument_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("SKMETA_DATA", str(tmp_path / "from_env"))
    home = get_data_home(tmp_path / "a" / "b")
    assert home == tmp_path / "a" / "b"
    assert isinstance(home, Path)
    assert home.is_dir()
    assert not (tmp_path / "from_env").exists()


def test_get_data_home_env_var_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SKMETA_DATA", str(tmp_path / "env_home"))
    assert get_data_home() == tmp_path / "env_home"
    assert (tmp_path / "env_home").is_dir()

    monkeypatch.delenv("SKMETA_DATA")
    assert get_data_home() == tmp_path / "skmeta_data"
    assert (tmp_path / "skmeta_data").is_dir()
    assert get_data_home("~/other") == tmp_path / "other"


# --- load_omniglot: argument checks (need no data) ---------------------------------


def test_bad_subset_names_parameter_and_valid_values(tmp_path):
    with pytest.raises(ValueError, match=r"subset must be one of .*background_small1"):
        load_omniglot("images_background", data_home=tmp_path)


@pytest.mark.parametrize("image_size", [0, -28, 2.5, "28", None, True])
def test_bad_image_size(tmp_path, image_size):
    with pytest.raises(ValueError, match=r"image_size must be a positive int"):
        load_omniglot(data_home=tmp_path, image_size=image_size)


def test_missing_archive_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "urlopen", _refuse_network)
    with pytest.raises(FileNotFoundError, match=re.escape(SMALL1)) as info:
        load_omniglot(data_home=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "omniglot") in message
    assert "download=True" in message
    assert datasets.OMNIGLOT_URL in message
    with pytest.raises(FileNotFoundError, match="images_evaluation.zip"):
        load_omniglot("evaluation", data_home=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match=re.escape(SMALL1)):
        load_omniglot_minimal(data_home=tmp_path, download=False)


# --- load_omniglot: content ----------------------------------------------------------


@requires_omniglot
def test_small1_shapes_dtypes_and_range(small1):
    X = small1.data
    assert X.shape == (2720, 1, 28, 28)
    assert X.dtype == np.float32
    assert X.min() >= 0.0
    assert X.max() <= 1.0
    assert X.max() > 0.99  # stroke pixels reach 1
    # strokes are 1 on a 0 background: ink covers a small part of each image
    assert X.mean() < 0.2
    assert np.mean(X < 0.05) > 0.7
    assert np.all(X.reshape(len(X), -1).mean(axis=1) < 0.5)
    # the border is background
    assert X[:, :, 0, :].mean() < 0.05
    assert small1.subset == "background_small1"
    assert "Lake" in small1.DESCR and "2720" in small1.DESCR


@requires_omniglot
def test_small1_counts_and_labels(small1):
    y, alphabets = small1.target, small1.alphabets
    assert y.shape == alphabets.shape == (2720,)
    assert y.dtype.kind == alphabets.dtype.kind == "U"
    classes, counts = np.unique(y, return_counts=True)
    assert len(classes) == 136
    assert np.all(counts == 20)
    assert set(alphabets) == {"Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"}
    assert all(re.fullmatch(r"[A-Za-z_()]+/character\d\d", label) for label in classes)
    assert all(a == label.split("/")[0] for a, label in zip(alphabets, y, strict=True))
    assert "Latin/character03" in classes


@requires_omniglot
def test_small1_order_is_sorted(small1):
    keys = [tuple(label.split("/")) for label in small1.target]
    assert keys == sorted(keys)
    assert small1.target[0] == "Balinese/character01"
    assert small1.target[-1] == "Latin/character26"


@requires_omniglot
def test_small2_counts(small2):
    assert small2.data.shape == (3120, 1, 28, 28)
    classes, counts = np.unique(small2.target, return_counts=True)
    assert len(classes) == 156
    assert np.all(counts == 20)
    assert set(small2.alphabets) == {"Greek", "Latin"} | NOVEL_ALPHABETS


@requires_omniglot
def test_return_X_y(omniglot_home, small1):
    X, y = load_omniglot(data_home=omniglot_home, download=False, return_X_y=True)
    np.testing.assert_array_equal(X, small1.data)
    np.testing.assert_array_equal(y, small1.target)


@requires_omniglot
def test_image_size_105_is_unresized_and_binary(tmp_path, small1):
    home = _home_with(tmp_path, SMALL1)
    X, y = load_omniglot(data_home=home, image_size=105, return_X_y=True)
    assert X.shape == (2720, 1, 105, 105)
    assert X.dtype == np.float32
    # the original images are binary: no resize means no intermediate values
    assert set(np.unique(X).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(y, small1.target)
    # downsampling keeps the picture: compare with a box-average of the original
    X15 = load_omniglot(data_home=home, image_size=15, return_X_y=True)[0]
    assert X15.shape == (2720, 1, 15, 15)
    pooled = X.reshape(2720, 1, 15, 7, 15, 7).mean(axis=(3, 5))
    assert np.corrcoef(pooled.ravel(), X15.ravel())[0, 1] > 0.9


@requires_omniglot
def test_archive_in_data_home_root_is_found(tmp_path, monkeypatch, small1):
    monkeypatch.setattr(datasets, "urlopen", _refuse_network)
    _link_archive(SMALL1, tmp_path)
    X, y = load_omniglot(data_home=tmp_path, download=True, return_X_y=True)
    np.testing.assert_array_equal(X, small1.data)
    np.testing.assert_array_equal(y, small1.target)


# --- cache -----------------------------------------------------------------------


@requires_omniglot
def test_cache_round_trip(tmp_path, monkeypatch, small1):
    home = _home_with(tmp_path, SMALL1)
    first = load_omniglot(data_home=home, image_size=28)
    cache = home / "omniglot" / "omniglot_background_small1_28px.npz"
    assert cache.is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the archive was decoded although a valid cache exists")

    monkeypatch.setattr(datasets, "_decode_archive", no_decoding)
    second = load_omniglot(data_home=home, image_size=28)
    for key in ("data", "target", "alphabets"):
        np.testing.assert_array_equal(second[key], first[key])
        np.testing.assert_array_equal(second[key], small1[key])
        assert second[key].dtype == first[key].dtype
    assert not [name for name in _leftovers(home / "omniglot") if name.endswith("part")]


@requires_omniglot
def test_stale_cache_is_rebuilt(tmp_path, small1):
    home = _home_with(tmp_path, SMALL1)
    cache = home / "omniglot" / "omniglot_background_small1_28px.npz"
    # a cache written from another archive (different digest) with wrong content
    np.savez(
        cache,
        data=np.zeros((3, 1, 28, 28), np.float32),
        target=np.array(["a/b"] * 3),
        alphabets=np.array(["a"] * 3),
        source_digest=np.array("0" * 64),
        image_size=np.array(28),
        version=np.array(datasets._CACHE_VERSION),
    )
    bunch = load_omniglot(data_home=home)
    np.testing.assert_array_equal(bunch.data, small1.data)
    np.testing.assert_array_equal(bunch.target, small1.target)
    # the cache was rewritten with the right content
    with np.load(cache) as rebuilt:
        np.testing.assert_array_equal(rebuilt["target"], small1.target)

    cache.write_bytes(b"not an npz file")
    np.testing.assert_array_equal(load_omniglot(data_home=home).data, small1.data)


@requires_omniglot
def test_read_only_folder_is_not_cached(tmp_path, small1):
    home = _home_with(tmp_path, SMALL1)
    folder = home / "omniglot"
    before = _leftovers(folder)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        X, _ = load_omniglot(data_home=home, return_X_y=True)
    finally:
        folder.chmod(stat.S_IRWXU)
    np.testing.assert_array_equal(X, small1.data)
    assert _leftovers(folder) == before


@requires_omniglot
def test_failing_cache_write_is_silent(tmp_path, monkeypatch, small1):
    home = _home_with(tmp_path, SMALL1)
    before = _leftovers(home / "omniglot")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    X, _ = load_omniglot(data_home=home, return_X_y=True)
    np.testing.assert_array_equal(X, small1.data)
    assert _leftovers(home / "omniglot") == before


# --- checksum and download ----------------------------------------------------------


def test_corrupt_existing_archive_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "urlopen", _refuse_network)
    folder = tmp_path / "omniglot"
    folder.mkdir()
    (folder / SMALL1).write_bytes(b"truncated")
    algorithm, expected = datasets._OMNIGLOT_CHECKSUMS[SMALL1]
    with pytest.raises(OSError, match="Checksum mismatch") as info:
        load_omniglot(data_home=tmp_path)
    message = str(info.value)
    assert SMALL1 in message
    assert expected in message
    assert datasets.hashlib.new(algorithm, b"truncated").hexdigest() in message


@requires_omniglot
def test_download_verifies_and_lands_in_data_home(tmp_path, monkeypatch, small1):
    opener = _FakeOpener(payload=ARCHIVES[SMALL1].read_bytes())
    monkeypatch.setattr(datasets, "urlopen", opener)
    bunch = load_omniglot("background_small1", data_home=tmp_path, download=True)
    assert opener.calls == [
        "https://github.com/brendenlake/omniglot/raw/master/python/" + SMALL1
    ]
    target = tmp_path / "omniglot" / SMALL1
    assert target.is_file() and not target.is_symlink()
    assert target.read_bytes() == ARCHIVES[SMALL1].read_bytes()
    assert not [n for n in _leftovers(tmp_path / "omniglot") if n.endswith(".part")]
    np.testing.assert_array_equal(bunch.data, small1.data)
    np.testing.assert_array_equal(bunch.target, small1.target)

    # the archive is now local: no second download
    monkeypatch.setattr(datasets, "urlopen", _refuse_network)
    load_omniglot("background_small1", data_home=tmp_path, return_X_y=True)


def test_corrupt_download_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "urlopen", _FakeOpener(payload=b"<html>404</html>"))
    with pytest.raises(OSError, match=rf"Checksum mismatch for {re.escape(SMALL1)}"):
        load_omniglot("background_small1", data_home=tmp_path)
    assert _leftovers(tmp_path / "omniglot") == []


def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    error = urllib.error.URLError("no network")
    monkeypatch.setattr(datasets, "urlopen", _FakeOpener(error=error))
    with pytest.raises(OSError, match="Could not download") as info:
        load_omniglot("evaluation", data_home=tmp_path)
    assert info.value.__cause__ is error
    assert _leftovers(tmp_path / "omniglot") == []


def test_download_function_keeps_existing_file_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "urlopen", _FakeOpener(payload=b"new content"))
    target = tmp_path / "file.zip"
    target.write_bytes(b"old content")
    checksum = ("sha256", datasets.hashlib.sha256(b"other").hexdigest())
    with pytest.raises(OSError, match="expected sha256"):
        datasets._download("https://example.invalid/file.zip", target, checksum)
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == ["file.zip"]

    good = ("md5", datasets.hashlib.md5(b"new content").hexdigest())
    assert datasets._download("https://example.invalid/f.zip", target, good) == target
    assert target.read_bytes() == b"new content"
    assert _leftovers(tmp_path) == ["file.zip"]


def test_full_sets_have_checksums_and_download_from_the_official_repository(
    tmp_path, monkeypatch
):
    asked = []
    monkeypatch.setattr(datasets, "_download", lambda url, *args: asked.append(url))
    checksum = datasets._OMNIGLOT_CHECKSUMS["images_background.zip"]
    datasets._find_or_download("images_background.zip", tmp_path, True, checksum)
    assert asked == [
        "https://github.com/brendenlake/omniglot/raw/master/python/"
        "images_background.zip"
    ]
    for subset in ("background", "evaluation"):
        algorithm, digest = datasets._OMNIGLOT_CHECKSUMS[f"images_{subset}.zip"]
        assert algorithm == "md5" and re.fullmatch(r"[0-9a-f]{32}", digest)
    for subset in ("background_small1", "background_small2"):
        algorithm, digest = datasets._OMNIGLOT_CHECKSUMS[f"images_{subset}.zip"]
        assert algorithm == "sha256" and re.fullmatch(r"[0-9a-f]{64}", digest)


@requires_omniglot
def test_local_archives_match_their_checksums():
    for name, path in ARCHIVES.items():
        checksum = datasets._OMNIGLOT_CHECKSUMS[name]
        assert datasets._verify_checksum(path, checksum) == checksum[1]


# --- Omniglot minimal split ----------------------------------------------------------


@requires_omniglot
def test_omniglot_minimal_split_from_archives(omniglot_home, small1, small2):
    split = load_omniglot_minimal(data_home=omniglot_home, download=False)
    np.testing.assert_array_equal(split.X_base, small1.data)
    np.testing.assert_array_equal(split.y_base, small1.target)
    novel = np.isin(small2.alphabets, list(NOVEL_ALPHABETS))
    np.testing.assert_array_equal(split.X_novel, small2.data[novel])
    np.testing.assert_array_equal(split.y_novel, small2.target[novel])


def test_omniglot_minimal_is_embedded(tmp_path, monkeypatch):
    # No download, no data home: neither the network nor $SKMETA_DATA is used.
    monkeypatch.setattr(datasets, "urlopen", _refuse_network)
    monkeypatch.setenv("SKMETA_DATA", str(tmp_path / "not_there"))
    split = load_omniglot_minimal()
    assert not (tmp_path / "not_there").exists()
    assert isinstance(split, FewShotSplit)
    assert split.name == "omniglot_minimal"
    assert split.X_base.shape == (2720, 1, 28, 28)
    assert split.X_novel.shape == (2120, 1, 28, 28)
    assert split.X_base.dtype == split.X_novel.dtype == np.float32
    assert split.X_base.min() == 0.0 and split.X_base.max() == 1.0
    assert len(np.unique(split.y_base)) == 136
    assert len(np.unique(split.y_novel)) == 106
    assert not set(split.y_base) & set(split.y_novel)
    assert {label.split("/")[0] for label in split.y_novel} == NOVEL_ALPHABETS
    assert {label.split("/")[0] for label in split.y_base} == {
        "Balinese",
        "Early_Aramaic",
        "Greek",
        "Korean",
        "Latin",
    }
    # 20 drawers of every character.
    assert set(np.unique(split.y_novel, return_counts=True)[1]) == {20}


def test_embedded_file_is_small_and_carries_its_licence():
    folder = Path(datasets.__file__).parent
    assert (folder / datasets.EMBEDDED_FILE).stat().st_size < 2_000_000
    notice = (folder / "data" / "LICENSE_omniglot.txt").read_text()
    assert "MIT License" in notice and "Copyright (c) 2015 Brenden Lake" in notice


@requires_omniglot
def test_embedded_copy_equals_the_decoded_archives(omniglot_home, small1, small2):
    for subset in (small1, small2):
        embedded = datasets._load_embedded(subset.subset)
        assert embedded.data.dtype == subset.data.dtype
        np.testing.assert_array_equal(embedded.data, subset.data)
        np.testing.assert_array_equal(embedded.target, subset.target)
        np.testing.assert_array_equal(embedded.alphabets, subset.alphabets)
    split = load_omniglot_minimal()
    from_archives = load_omniglot_minimal(data_home=omniglot_home, download=False)
    for field in ("X_base", "y_base", "X_novel", "y_novel"):
        np.testing.assert_array_equal(
            getattr(split, field), getattr(from_archives, field)
        )


@requires_omniglot
def test_build_script_reproduces_the_embedded_arrays():
    archives = {
        "background_small1": ARCHIVES[SMALL1],
        "background_small2": ARCHIVES[SMALL2],
    }
    built = datasets.embedded_arrays(archives)
    folder = Path(datasets.__file__).parent
    with np.load(folder / datasets.EMBEDDED_FILE, allow_pickle=False) as shipped:
        assert sorted(shipped.files) == sorted(built)
        for name, array in built.items():
            assert shipped[name].dtype == array.dtype, name
            np.testing.assert_array_equal(shipped[name], array, err_msg=name)
    for subset, archive in archives.items():
        algorithm, digest = datasets._OMNIGLOT_CHECKSUMS[archive.name]
        assert algorithm == "sha256"
        assert str(built[f"{subset}_sha256"]) == digest


def test_build_script_refuses_a_corrupt_archive(tmp_path):
    bad = tmp_path / SMALL1
    bad.write_bytes(b"not the archive")
    with pytest.raises(OSError, match="Checksum mismatch"):
        datasets.embedded_arrays({"background_small1": bad, "background_small2": bad})


# --- digits --------------------------------------------------------------------------


def test_digits_fewshot_default():
    split = load_digits_fewshot()
    assert isinstance(split, FewShotSplit)
    assert split.name == "digits"
    assert split.X_base.ndim == split.X_novel.ndim == 2
    assert split.X_base.shape[1] == split.X_novel.shape[1] == 64
    assert len(split.X_base) + len(split.X_novel) == 1797
    assert len(split.X_base) == len(split.y_base)
    assert len(split.X_novel) == len(split.y_novel)
    for X in (split.X_base, split.X_novel):
        assert X.dtype == np.float32
        assert X.min() == 0.0 and X.max() == 1.0
    assert set(split.y_base.tolist()) == {0, 1, 2, 3, 4}
    assert set(split.y_novel.tolist()) == {5, 6, 7, 8, 9}


def test_digits_fewshot_custom_classes():
    split = load_digits_fewshot(novel_classes=np.array([3, 0]))
    assert set(split.y_novel.tolist()) == {0, 3}
    assert set(split.y_base.tolist()) == {1, 2, 4, 5, 6, 7, 8, 9}
    assert not set(split.y_base.tolist()) & set(split.y_novel.tolist())


@pytest.mark.parametrize(
    "novel_classes, detail",
    [
        ([], "got an empty sequence"),
        ([10], "outside 0..9"),
        ([-1, 2], "outside 0..9"),
        ([1, 1], "repeats"),
        (range(10), "all ten"),
        (5, r"got 5\."),
        ("5", r"got '5'\."),
        ([1.5], "holds 1.5"),
        ([True], "holds True"),
    ],
)
def test_digits_fewshot_bad_novel_classes(novel_classes, detail):
    with pytest.raises(ValueError, match=rf"novel_classes must be .*{detail}"):
        load_digits_fewshot(novel_classes=novel_classes)


# --- FewShotSplit --------------------------------------------------------------------


def test_few_shot_split_is_frozen_and_checked():
    X = np.zeros((4, 2), np.float32)
    split = FewShotSplit(X, np.array([0, 0, 1, 1]), X, np.array([2, 2, 3, 3]), "toy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.name = "other"
    assert "base_classes=2" in repr(split) and "4x2" in repr(split)
    with pytest.raises(ValueError, match="must not share a class"):
        FewShotSplit(X, np.array([0, 0, 1, 1]), X, np.array([1, 2, 2, 2]), "toy")
    with pytest.raises(ValueError, match="X_novel and y_novel must have the same"):
        FewShotSplit(X, np.array([0, 0, 1, 1]), X, np.array([2, 3]), "toy")
