"""Data sets for few-shot learning: Omniglot (download, checksum, cache) and digits.

Omniglot is the data set of Lake, Salakhutdinov and Tenenbaum (2015), distributed
as zip archives in the ``python/`` folder of https://github.com/brendenlake/omniglot
under the MIT licence. :func:`load_omniglot` finds an archive in the data home,
downloads it there when it is missing, verifies its checksum, decodes the PNG files
straight from the archive and caches the decoded arrays as an ``.npz`` file.

:func:`load_digits_fewshot` needs no download: it splits scikit-learn's bundled
``load_digits`` into base and novel classes.
"""

import contextlib
import hashlib
import numbers
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import numpy as np
from PIL import Image, ImageOps
from sklearn.datasets import load_digits
from sklearn.utils import Bunch

__all__ = [
    "FewShotSplit",
    "get_data_home",
    "load_digits_fewshot",
    "load_omniglot",
    "load_omniglot_minimal",
]

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"

# Checksum of each upstream archive as (hashlib algorithm, hex digest). The sha256
# digests of the two minimal sets were computed from the archives themselves. The
# sha256 digests of the two full sets are not known offline, so they use the md5
# digests that torchvision publishes for the same files (torchvision.datasets.Omniglot).
_OMNIGLOT_CHECKSUMS = {
    "images_background.zip": ("md5", "68d2efa1b9178cc56df9314c21c6e718"),
    "images_evaluation.zip": ("md5", "6b91aef0f799c5bb55b94e3f2daec811"),
    "images_background_small1.zip": (
        "sha256",
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    ),
    "images_background_small2.zip": (
        "sha256",
        "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    ),
}

_OMNIGLOT_SUBSETS = (
    "background",
    "evaluation",
    "background_small1",
    "background_small2",
)

# Alphabets of background_small2 that background_small1 lacks: the meta-test classes
# of the "Omniglot minimal" benchmark split.
_MINIMAL_NOVEL_ALPHABETS = ("Japanese_(katakana)", "Sanskrit", "Tagalog")

# Bump when the decoding changes, so that caches written by older code are rebuilt.
_CACHE_VERSION = 1

_ANY_WRITE_BIT = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

_DOWNLOAD_TIMEOUT = 60
_CHUNK_SIZE = 1 << 20

_OMNIGLOT_DESCR = """\
Omniglot ({subset})
{underline}

Handwritten characters from the world's alphabets, drawn online by workers of
Amazon Mechanical Turk: each character was drawn once by each of 20 people.

- images: {n_images}, characters (classes): {n_classes}, alphabets: {n_alphabets}
- data: float32 array of shape (n_images, 1, {size}, {size}); strokes are 1.0 and the
  background is 0.0 (the original 105x105 images are black strokes on white; they
  are inverted, resized with Lanczos filtering and scaled to [0, 1])
- target: str labels "<Alphabet>/characterNN"; alphabets: str "<Alphabet>" per image
- alphabets in this subset: {alphabet_list}

Source: https://github.com/brendenlake/omniglot (folder python/), MIT licence.

Reference: Lake, B. M., Salakhutdinov, R. and Tenenbaum, J. B. (2015).
Human-level concept learning through probabilistic program induction.
Science, 350(6266), 1332-1338.
"""


@dataclass(frozen=True, eq=False)
class FewShotSplit:
    """A class-disjoint split of a data set into base and novel classes.

    Base classes are for meta-training (fit); novel classes are only for
    meta-testing (``adapt`` on a support set, then predict on queries). The two
    sets of classes are disjoint, so a model evaluated on the novel classes has
    never seen any of them in training.

    Parameters
    ----------
    X_base : ndarray of shape (n_base_samples, ...)
        Samples of the base classes, float32.
    y_base : ndarray of shape (n_base_samples,)
        Labels of ``X_base``.
    X_novel : ndarray of shape (n_novel_samples, ...)
        Samples of the novel classes, float32, same trailing shape as ``X_base``.
    y_novel : ndarray of shape (n_novel_samples,)
        Labels of ``X_novel``, none of them in ``y_base``.
    name : str
        Short name of the split, for reports.

    Raises
    ------
    ValueError
        If a label array does not match its sample array in length, or if a class
        occurs in both ``y_base`` and ``y_novel``.

    Examples
    --------
    >>> from skmeta.datasets import load_digits_fewshot
    >>> split = load_digits_fewshot()
    >>> sorted(set(split.y_base.tolist())), sorted(set(split.y_novel.tolist()))
    ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    """

    X_base: np.ndarray
    y_base: np.ndarray
    X_novel: np.ndarray
    y_novel: np.ndarray
    name: str

    def __post_init__(self):
        for X_name, y_name in (("X_base", "y_base"), ("X_novel", "y_novel")):
            n_X, n_y = len(getattr(self, X_name)), len(getattr(self, y_name))
            if n_X != n_y:
                raise ValueError(
                    f"{X_name} and {y_name} must have the same length; "
                    f"got {n_X} and {n_y}."
                )
        shared = np.intersect1d(self.y_base, self.y_novel)
        if shared.size:
            raise ValueError(
                "y_base and y_novel must not share a class; got "
                f"{shared.size} shared class(es), e.g. {shared[:5].tolist()}."
            )

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, "
            f"X_base={_shape(self.X_base)}, "
            f"base_classes={len(np.unique(self.y_base))}, "
            f"X_novel={_shape(self.X_novel)}, "
            f"novel_classes={len(np.unique(self.y_novel))})"
        )


def _shape(X):
    return "x".join(str(d) for d in np.shape(X))


def get_data_home(data_home=None):
    """Return the folder where skmeta keeps its data sets, creating it if missing.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        The folder to use. If None, the environment variable ``SKMETA_DATA`` is
        used when it is set and not empty, else ``~/skmeta_data``. A leading ``~``
        is expanded to the user's home folder.

    Returns
    -------
    data_home : pathlib.Path
        The folder, which exists on return.

    Raises
    ------
    OSError
        If the folder is missing and cannot be created (for instance
        ``PermissionError``), or if the path exists and is not a folder.

    Examples
    --------
    >>> from skmeta.datasets import get_data_home
    >>> get_data_home("/tmp/skmeta_data_example")  # doctest: +SKIP
    PosixPath('/tmp/skmeta_data_example')
    """
    if data_home is None:
        data_home = os.environ.get("SKMETA_DATA") or Path("~") / "skmeta_data"
    data_home = Path(data_home).expanduser()
    data_home.mkdir(parents=True, exist_ok=True)
    return data_home


def load_omniglot(
    subset="background_small1",
    *,
    data_home=None,
    download=True,
    image_size=28,
    return_X_y=False,
):
    """Load a subset of Omniglot, downloading the archive if needed.

    Omniglot has 1,623 handwritten characters from 50 alphabets, each drawn by 20
    people (Lake, Salakhutdinov and Tenenbaum, 2015). The archive
    ``images_<subset>.zip`` is looked for in ``data_home/omniglot/`` and then in
    ``data_home``. If it is in neither and ``download`` is True, it is downloaded
    from https://github.com/brendenlake/omniglot/raw/master/python/ into
    ``data_home/omniglot/``. Its checksum is verified every time it is loaded.

    The decoded arrays are cached in ``data_home/omniglot/`` as
    ``omniglot_<subset>_<image_size>px.npz``, tagged with the archive's digest so
    that a cache which does not match the archive is rebuilt. If the cache cannot
    be written (a read-only folder, a full disk), loading goes on without it; a
    folder whose permission bits grant no write access to anyone is treated as
    read-only, even for the superuser.

    ========================  ===========  ==========  ======
    subset                    alphabets    characters  images
    ========================  ===========  ==========  ======
    ``"background"``          30           964         19,280
    ``"evaluation"``          20           659         13,180
    ``"background_small1"``   5            136         2,720
    ``"background_small2"``   5            156         3,120
    ========================  ===========  ==========  ======

    Parameters
    ----------
    subset : {"background_small1", "background_small2", "background", \
"evaluation"}, default="background_small1"
        Which archive to load. ``background_small1`` has the alphabets Balinese,
        Early_Aramaic, Greek, Korean and Latin; ``background_small2`` has Greek,
        Japanese_(katakana), Latin, Sanskrit and Tagalog.
    data_home : str or os.PathLike, default=None
        Folder of the data sets; see :func:`get_data_home`. None means the
        environment variable ``SKMETA_DATA``, else ``~/skmeta_data``.
    download : bool, default=True
        Whether to download the archive when it is not found locally.
    image_size : int, default=28
        Side, in pixels, of the square images returned. 105 keeps the original
        images; any other size resizes them with Lanczos filtering.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray of shape (n_images, 1, image_size, image_size), float32
            The images, strokes 1.0 and background 0.0, values in [0, 1].
        target : ndarray of shape (n_images,), str
            The character of each image as ``"<Alphabet>/characterNN"``, e.g.
            ``"Latin/character03"``. Characters are the classes.
        alphabets : ndarray of shape (n_images,), str
            The alphabet of each image, e.g. ``"Latin"``.
        subset : str
            The subset loaded.
        DESCR : str
            Description of the data set, with its source and citation.

        Images are sorted by alphabet, character and file name, so the order is
        the same on every call.
    (data, target) : tuple of two ndarrays
        If ``return_X_y`` is True.

    Raises
    ------
    ValueError
        If ``subset`` is not one of the four subsets, or ``image_size`` is not a
        positive integer.
    FileNotFoundError
        If the archive is not found and ``download`` is False.
    OSError
        If the archive's checksum does not match the expected digest (the message
        names the file and both digests), if the download fails, or if the archive
        holds no image of the expected layout.

    References
    ----------
    .. [1] Lake, B. M., Salakhutdinov, R. and Tenenbaum, J. B. (2015). Human-level
       concept learning through probabilistic program induction. Science,
       350(6266), 1332-1338.

    Examples
    --------
    >>> from skmeta.datasets import load_omniglot
    >>> omniglot = load_omniglot("background_small1")  # doctest: +SKIP
    >>> omniglot.data.shape, omniglot.target[0]  # doctest: +SKIP
    ((2720, 1, 28, 28), 'Balinese/character01')
    """
    if subset not in _OMNIGLOT_SUBSETS:
        raise ValueError(
            f"subset must be one of {', '.join(map(repr, _OMNIGLOT_SUBSETS))}; "
            f"got {subset!r}."
        )
    image_size = _check_image_size(image_size)
    data_home = get_data_home(data_home)
    filename = f"images_{subset}.zip"
    checksum = _OMNIGLOT_CHECKSUMS[filename]

    archive = _find_or_download(filename, data_home, download, checksum)
    digest = _verify_checksum(archive, checksum)

    cache = data_home / "omniglot" / f"omniglot_{subset}_{image_size}px.npz"
    arrays = _read_cache(cache, digest, image_size)
    if arrays is None:
        arrays = _decode_archive(archive, f"images_{subset}", image_size)
        _write_cache(cache, arrays, digest, image_size)
    X, y, alphabets = arrays

    if return_X_y:
        return X, y
    descr = _OMNIGLOT_DESCR.format(
        subset=subset,
        underline="=" * (len(subset) + 11),
        n_images=len(y),
        n_classes=len(np.unique(y)),
        n_alphabets=len(np.unique(alphabets)),
        size=image_size,
        alphabet_list=", ".join(np.unique(alphabets).tolist()),
    )
    return Bunch(data=X, target=y, alphabets=alphabets, subset=subset, DESCR=descr)


def load_omniglot_minimal(*, data_home=None, download=True, image_size=28):
    """Load the "Omniglot minimal" few-shot split of the skmeta benchmark.

    Meta-train on all of ``background_small1`` (5 alphabets, 136 characters,
    2,720 images); meta-test on the alphabets of ``background_small2`` that
    ``background_small1`` lacks: Japanese_(katakana), Sanskrit and Tagalog (106
    characters, 2,120 images), never seen in training. Greek and Latin, which the
    two archives share, are left out of the novel classes.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        Folder of the data sets; see :func:`get_data_home`.
    download : bool, default=True
        Whether to download missing archives.
    image_size : int, default=28
        Side, in pixels, of the square images; see :func:`load_omniglot`.

    Returns
    -------
    split : FewShotSplit
        ``X_base`` of shape (2720, 1, image_size, image_size) and ``X_novel`` of
        shape (2120, 1, image_size, image_size), float32 in [0, 1] with strokes
        1.0; ``y_base`` and ``y_novel`` are str labels
        ``"<Alphabet>/characterNN"``; ``name`` is ``"omniglot_minimal"``.

    Raises
    ------
    ValueError
        If ``image_size`` is not a positive integer.
    FileNotFoundError
        If an archive is missing and ``download`` is False.
    OSError
        If an archive fails its checksum or cannot be downloaded.

    See Also
    --------
    load_omniglot : Load one Omniglot subset.

    Examples
    --------
    >>> from skmeta.datasets import load_omniglot_minimal
    >>> split = load_omniglot_minimal()  # doctest: +SKIP
    >>> split.X_base.shape, split.X_novel.shape  # doctest: +SKIP
    ((2720, 1, 28, 28), (2120, 1, 28, 28))
    """
    kwargs = dict(data_home=data_home, download=download, image_size=image_size)
    base = load_omniglot("background_small1", **kwargs)
    other = load_omniglot("background_small2", **kwargs)
    novel = np.isin(other.alphabets, _MINIMAL_NOVEL_ALPHABETS)
    return FewShotSplit(
        X_base=base.data,
        y_base=base.target,
        X_novel=other.data[novel],
        y_novel=other.target[novel],
        name="omniglot_minimal",
    )


def load_digits_fewshot(*, novel_classes=(5, 6, 7, 8, 9)):
    """Split scikit-learn's bundled digits into base and novel classes.

    The embedded default data set: it needs no download. The 1,797 8x8 images of
    handwritten digits from ``sklearn.datasets.load_digits`` (the UCI ML
    hand-written digits test set) are scaled from [0, 16] to [0, 1]; the digits in
    ``novel_classes`` are held out for meta-testing and the rest are the base
    classes for meta-training.

    Parameters
    ----------
    novel_classes : sequence of int, default=(5, 6, 7, 8, 9)
        Distinct digits in 0..9 held out as novel classes; at least one, and not
        all ten.

    Returns
    -------
    split : FewShotSplit
        ``X_base`` of shape (n_base, 64) and ``X_novel`` of shape (n_novel, 64),
        float32 in [0, 1]; ``y_base`` and ``y_novel`` int64 digit labels;
        ``name`` is ``"digits"``.

    Raises
    ------
    ValueError
        If ``novel_classes`` is not a sequence of integers, is empty, holds a
        value outside 0..9 or a repeated value, or holds all ten digits.

    Examples
    --------
    >>> from skmeta.datasets import load_digits_fewshot
    >>> split = load_digits_fewshot(novel_classes=[0, 1])
    >>> split.X_base.shape[1], sorted(set(split.y_novel.tolist()))
    (64, [0, 1])
    """
    novel_classes = _check_novel_classes(novel_classes)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    novel = np.isin(y, novel_classes)
    return FewShotSplit(
        X_base=X[~novel],
        y_base=y[~novel],
        X_novel=X[novel],
        y_novel=y[novel],
        name="digits",
    )


def _check_image_size(image_size):
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 1
    ):
        raise ValueError(f"image_size must be a positive int; got {image_size!r}.")
    return int(image_size)


def _check_novel_classes(novel_classes):
    expected = "a non-empty sequence of distinct ints in 0..9, not all ten"
    if isinstance(novel_classes, str | bytes) or not np.iterable(novel_classes):
        raise ValueError(f"novel_classes must be {expected}; got {novel_classes!r}.")
    values = list(novel_classes)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(
                f"novel_classes must be {expected}; got {novel_classes!r}, "
                f"which holds {value!r}."
            )
    values = [int(v) for v in values]
    if not values:
        raise ValueError(f"novel_classes must be {expected}; got an empty sequence.")
    outside = [v for v in values if not 0 <= v <= 9]
    if outside:
        raise ValueError(
            f"novel_classes must be {expected}; got {novel_classes!r}, with "
            f"{outside} outside 0..9."
        )
    if len(set(values)) != len(values):
        raise ValueError(
            f"novel_classes must be {expected}; got {novel_classes!r}, which "
            "repeats a digit."
        )
    if len(values) == 10:
        raise ValueError(
            f"novel_classes must be {expected}; got all ten digits, which leaves "
            "no base class to train on."
        )
    return sorted(values)


def _find_or_download(filename, data_home, download, checksum):
    """Return the path of ``filename``, downloading it if allowed and missing."""
    candidates = [data_home / "omniglot" / filename, data_home / filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not download:
        raise FileNotFoundError(
            f"{filename} was not found; looked in "
            f"{' and '.join(str(c) for c in candidates)}. Pass download=True, or "
            f"download {OMNIGLOT_URL}{filename} and place it in "
            f"{candidates[0].parent} (or pass data_home=<folder holding it>)."
        )
    return _download(OMNIGLOT_URL + filename, candidates[0], checksum)


def _download(url, path, checksum):
    """Download ``url`` to ``path`` through a temporary file, verifying its checksum.

    The data is written to a hidden temporary file in the target folder, which is
    moved to ``path`` only once its checksum (``(algorithm, hex digest)``) matches;
    on any failure the temporary file is removed and ``path`` is left untouched.
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
    try:
        try:
            with open(tmp, "xb") as out, urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as r:
                shutil.copyfileobj(r, out, _CHUNK_SIZE)
        except OSError as exc:
            raise OSError(
                f"Could not download {url} to {path}: {exc}. Download it by hand "
                f"and place it in {path.parent}."
            ) from exc
        _verify_checksum(tmp, checksum, name=f"{path.name} downloaded from {url}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _verify_checksum(path, checksum, *, name=None):
    """Return the hex digest of ``path``; raise OSError if it is not as expected."""
    algorithm, expected = checksum
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_SIZE), b""):
            hasher.update(chunk)
    actual = hasher.hexdigest()
    if actual != expected:
        raise OSError(
            f"Checksum mismatch for {name or path}: expected {algorithm} {expected}, "
            f"got {actual}. The file is corrupt or incomplete: delete it and "
            "download it again."
        )
    return actual


def _decode_archive(archive, root, image_size):
    """Decode ``<root>/<Alphabet>/<character>/<drawer>.png`` images of a zip."""
    with zipfile.ZipFile(archive) as zf:
        members = []
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 4 and parts[0] == root and parts[3].endswith(".png"):
                members.append((parts[1], parts[2], parts[3], name))
        if not members:
            raise OSError(
                f"No image of the layout {root}/<Alphabet>/<character>/<drawer>.png "
                f"found in {archive}."
            )
        members.sort()
        X = np.empty((len(members), 1, image_size, image_size), dtype=np.float32)
        for i, (*_, name) in enumerate(members):
            with zf.open(name) as f, Image.open(f) as png:
                image = ImageOps.invert(png.convert("L"))
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
            X[i, 0] = np.asarray(image, dtype=np.float32)
    X /= 255.0
    y = np.array([f"{alphabet}/{character}" for alphabet, character, *_ in members])
    alphabets = np.array([alphabet for alphabet, *_ in members])
    return X, y, alphabets


def _read_cache(path, digest, image_size):
    """Return ``(X, y, alphabets)`` from the cache, or None if absent or stale."""
    try:
        with np.load(path, allow_pickle=False) as cache:
            if (
                int(cache["version"]) != _CACHE_VERSION
                or str(cache["source_digest"]) != digest
                or int(cache["image_size"]) != image_size
            ):
                return None
            X, y, alphabets = cache["data"], cache["target"], cache["alphabets"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if X.dtype != np.float32 or X.shape[1:] != (1, image_size, image_size):
        return None
    if not len(X) == len(y) == len(alphabets):
        return None
    return X, y, alphabets


def _write_cache(path, arrays, digest, image_size):
    """Write the cache atomically; skip silently where the folder is read-only."""
    X, y, alphabets = arrays
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
    with contextlib.suppress(OSError):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.parent.stat().st_mode & _ANY_WRITE_BIT:
                return
            with open(tmp, "xb") as f:
                np.savez_compressed(
                    f,
                    data=X,
                    target=y,
                    alphabets=alphabets,
                    source_digest=np.array(digest),
                    image_size=np.array(image_size),
                    version=np.array(_CACHE_VERSION),
                )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
