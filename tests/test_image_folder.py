"""Tests for skmeta.datasets.load_image_folder: a folder of image files as arrays.

The comparison with :func:`skmeta.datasets.load_omniglot` reads the original
PNG files of ``images_background_small1.zip``, looked for in ``$SKMETA_DATA``
(or ``$SKMETA_DATA/omniglot``) when set, else in ``../shared/data/omniglot``
beside the repository; it skips when the archive is absent. The other tests
write small folders of their own.
"""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skmeta.datasets import _image_folder as image_folder
from skmeta.datasets import load_image_folder, load_omniglot

SMALL1 = "images_background_small1.zip"


def _find_archive():
    env = os.environ.get("SKMETA_DATA")
    home = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    for folder in (home / "omniglot", home):
        if (folder / SMALL1).is_file():
            return folder / SMALL1
    pytest.skip(f"{SMALL1} not found under {home} (set SKMETA_DATA)")


def _save(path, pixels, **kwargs):
    """Write ``pixels`` (uint8 or uint16, (h, w) or (h, w, 3)) as an image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels)).save(path, **kwargs)
    return path


def _gray(value, shape=(4, 6)):
    return np.full(shape, value, dtype=np.uint8)


# --- the original Omniglot files ------------------------------------------------


def test_omniglot_pngs_equal_one_minus_load_omniglot_within_one_level(tmp_path):
    # load_omniglot inverts the strokes (1.0 on 0.0) before a Lanczos resize to
    # 28x28; the files are black strokes on white. Both round to 8 bits after
    # resizing, so an image and its inverse may differ by one level at a tie.
    archive = _find_archive()
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "files")
    home = tmp_path / "home" / "omniglot"
    home.mkdir(parents=True)
    (home / SMALL1).symlink_to(archive)
    omniglot = load_omniglot("background_small1", data_home=home.parent, download=False)

    data = load_image_folder(
        tmp_path / "files" / "images_background_small1", image_size=28
    )

    assert data.X.shape == omniglot.data.shape == (2720, 1, 28, 28)
    np.testing.assert_array_equal(data.y, omniglot.target)
    np.testing.assert_array_equal(data.groups, omniglot.alphabets)
    np.testing.assert_allclose(data.X, 1 - omniglot.data, rtol=0, atol=1 / 255 + 1e-6)
    # All but a handful of the 2.1 million pixels agree to float rounding.
    off_by_a_level = np.abs(data.X - (1 - omniglot.data)) > 0.5 / 255
    assert off_by_a_level.sum() < 100


# --- layouts ------------------------------------------------------------------


def test_one_subfolder_per_class_sorted_with_no_groups(tmp_path):
    for cls, names in {"b": ["2.png", "10.png"], "a": ["z.png", "a.png"]}.items():
        for name in names:
            _save(tmp_path / cls / name, _gray(0))
    data = load_image_folder(tmp_path)
    assert data.y.tolist() == ["a", "a", "b", "b"]
    # Sorted by code point, the same on every system: "10.png" < "2.png".
    assert [Path(f).name for f in data.filenames] == [
        "a.png",
        "z.png",
        "10.png",
        "2.png",
    ]
    assert data.filenames[0] == str(tmp_path / "a" / "a.png")
    assert data.groups is None


def test_two_levels_give_groups_and_classes_named_within_their_group(tmp_path):
    # Two alphabets may both have a "character01": they are two classes.
    for group in ("Greek", "Latin"):
        for cls in ("character01", "character02"):
            _save(tmp_path / group / cls / "0.png", _gray(0))
    data = load_image_folder(tmp_path)
    assert data.y.tolist() == [
        "Greek/character01",
        "Greek/character02",
        "Latin/character01",
        "Latin/character02",
    ]
    assert data.groups.tolist() == ["Greek", "Greek", "Latin", "Latin"]


def test_other_files_and_hidden_ones_are_passed_over(tmp_path):
    _save(tmp_path / "a" / "0.PNG", _gray(0))  # the ending in any case
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "README.md").write_text("not an image either")
    _save(tmp_path / "a" / ".hidden.png", _gray(0))
    _save(tmp_path / ".thumbnails" / "0.png", _gray(0))
    data = load_image_folder(tmp_path)
    assert [Path(f).name for f in data.filenames] == ["0.PNG"]


@pytest.mark.parametrize(
    "paths, error, message",
    [
        (["0.png", "a/1.png"], ValueError, "lie directly in"),
        (["a/0.png", "g/b/1.png"], ValueError, "mixes two layouts"),
        (["g/c/deeper/0.png"], ValueError, "nest deeper"),
        ([], FileNotFoundError, "No image file"),
    ],
)
def test_other_layouts_are_refused(tmp_path, paths, error, message):
    (tmp_path / "empty_class").mkdir()
    for path in paths:
        _save(tmp_path / path, _gray(0))
    with pytest.raises(error, match=message):
        load_image_folder(tmp_path)


def test_root_that_is_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="root must be a folder"):
        load_image_folder(tmp_path / "missing")


# --- pixels -------------------------------------------------------------------


def test_8_bit_values_are_scaled_by_1_over_255(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    _save(tmp_path / "a" / "0.png", pixels)
    data = load_image_folder(tmp_path)
    assert data.X.dtype == np.float32
    np.testing.assert_array_equal(data.X[0, 0], pixels.astype(np.float32) / 255)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff", ".webp"])
def test_lossless_formats_decode_to_the_same_values(tmp_path, suffix):
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, size=(5, 7, 3)).astype(np.uint8)
    options = {"lossless": True} if suffix == ".webp" else {}
    _save(tmp_path / "a" / f"0{suffix}", pixels, **options)
    X = load_image_folder(tmp_path).X
    np.testing.assert_array_equal(X[0], np.moveaxis(pixels, -1, 0) / np.float32(255))


def test_16_bit_grayscale_is_scaled_by_its_full_range(tmp_path):
    _save(tmp_path / "a" / "0.png", np.array([[0, 32768, 65535]], dtype=np.uint16))
    X = load_image_folder(tmp_path).X
    np.testing.assert_allclose(X[0, 0, 0], [0, 32768 / 65535, 1], rtol=1e-6)


def test_color_is_gray_when_every_file_is_gray_or_1_bit(tmp_path):
    _save(tmp_path / "a" / "0.png", _gray(200))
    Image.new("1", (6, 4), 1).save(tmp_path / "a" / "1.png")
    palette = Image.new("P", (6, 4), 0)
    palette.putpalette([v for g in range(256) for v in (g, g, g)])  # grays
    palette.save(tmp_path / "a" / "2.png")
    X = load_image_folder(tmp_path).X
    assert X.shape == (3, 1, 4, 6)
    assert X[1].min() == 1.0  # a 1-bit white image


def test_one_color_file_makes_every_image_rgb(tmp_path):
    _save(tmp_path / "a" / "0.png", _gray(200))
    _save(tmp_path / "b" / "0.png", np.full((4, 6, 3), (255, 0, 0), dtype=np.uint8))
    X = load_image_folder(tmp_path).X
    assert X.shape == (2, 3, 4, 6)
    np.testing.assert_array_equal(X[0], np.full((3, 4, 6), np.float32(200) / 255))
    np.testing.assert_array_equal(X[1, :, 0, 0], [1, 0, 0])


def test_color_l_converts_with_itu_r_601_luma(tmp_path):
    _save(tmp_path / "a" / "0.png", np.full((4, 6, 3), (255, 0, 0), dtype=np.uint8))
    X = load_image_folder(tmp_path, color="L").X
    # L = 0.299 R + 0.587 G + 0.114 B = 76.245, rounded to 76 by Pillow.
    assert X.shape == (1, 1, 4, 6)
    np.testing.assert_array_equal(X[0, 0], np.float32(76) / 255)


def test_exif_orientation_turns_the_image_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: a viewer shows it 6 wide, 4 high
    _save(tmp_path / "a" / "0.jpg", _gray(128, shape=(6, 4)), exif=exif)
    assert load_image_folder(tmp_path).X.shape == (1, 1, 4, 6)


# --- size ---------------------------------------------------------------------


def test_images_of_different_sizes_need_image_size(tmp_path):
    _save(tmp_path / "a" / "0.png", _gray(0, shape=(4, 6)))
    _save(tmp_path / "a" / "1.png", _gray(0, shape=(4, 6)))
    _save(tmp_path / "b" / "0.png", _gray(0, shape=(10, 3)))
    with pytest.raises(ValueError, match=r"4x6 \(2 file.*10x3 \(1 file.*image_size"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, image_size=(5, 7)).X.shape == (3, 1, 5, 7)
    assert load_image_folder(tmp_path, image_size=8).X.shape == (3, 1, 8, 8)


def test_resizing_is_pillows_lanczos(tmp_path):
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, size=(20, 30)).astype(np.uint8)
    _save(tmp_path / "a" / "0.png", pixels)
    expected = Image.fromarray(pixels).resize((7, 5), Image.Resampling.LANCZOS)
    X = load_image_folder(tmp_path, image_size=(5, 7)).X
    np.testing.assert_array_equal(X[0, 0], np.asarray(expected) / np.float32(255))


# --- errors -------------------------------------------------------------------


def test_every_unreadable_file_is_listed_and_none_skipped(tmp_path):
    _save(tmp_path / "a" / "good.png", _gray(0))
    (tmp_path / "a" / "garbage.png").write_bytes(b"not a png at all")
    good = (tmp_path / "a" / "good.png").read_bytes()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(OSError, match="2 of 3 image file") as info:
        load_image_folder(tmp_path)
    assert "a/garbage.png" in str(info.value)
    assert "b/cut.png" in str(info.value)
    assert "good.png" not in str(info.value)


def test_a_folder_larger_than_max_bytes_is_refused_before_decoding(
    tmp_path, monkeypatch
):
    for i in range(3):
        _save(tmp_path / "a" / f"{i}.png", _gray(0, shape=(10, 10)))
    needed = 3 * 1 * 10 * 10 * 4
    assert load_image_folder(tmp_path, max_bytes=needed).X.nbytes == needed

    def no_decoding(*args):
        raise AssertionError("decoded before the size was checked")

    monkeypatch.setattr(image_folder, "_decode", no_decoding)
    with pytest.raises(
        ValueError, match=rf"would take .*\({needed} bytes\).*image_size"
    ):
        load_image_folder(tmp_path, max_bytes=needed - 1)


def test_available_memory_is_the_default_limit(tmp_path, monkeypatch):
    _save(tmp_path / "a" / "0.png", _gray(0, shape=(100, 100)))
    monkeypatch.setattr(image_folder, "_available_memory", lambda: 1000)
    with pytest.raises(ValueError, match="the memory available.*at most 15 for"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, image_size=15).X.shape == (1, 1, 15, 15)


def test_available_memory_is_known_here():
    assert image_folder._available_memory() > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 0}, "image_size must be"),
        ({"image_size": (28, 28, 3)}, "image_size must be"),
        ({"image_size": True}, "image_size must be"),
        ({"color": "RGBA"}, "color must be"),
        ({"max_bytes": 0}, "max_bytes must be"),
    ],
)
def test_invalid_parameters(tmp_path, kwargs, message):
    _save(tmp_path / "a" / "0.png", _gray(0))
    with pytest.raises(ValueError, match=message):
        load_image_folder(tmp_path, **kwargs)


def test_verbose_shows_a_progress_bar(tmp_path, capsys):
    _save(tmp_path / "a" / "0.png", _gray(0))
    load_image_folder(tmp_path, verbose=True)
    assert "decoding images" in capsys.readouterr().err
    load_image_folder(tmp_path, verbose=False)
    assert capsys.readouterr().err == ""
