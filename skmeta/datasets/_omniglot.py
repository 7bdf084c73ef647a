"""Omniglot: the download loader (checksum, cache) and the embedded minimal split.

Omniglot is the data set of Lake, Salakhutdinov and Tenenbaum (2015), distributed
as zip archives in the ``python/`` folder of https://github.com/brendenlake/omniglot
under the MIT licence. :func:`load_omniglot` finds an archive in the data home,
downloads it there when it is missing, verifies its checksum, decodes the PNG files
straight from the archive and caches the decoded arrays as an ``.npz`` file.

The two minimal background sets also ship inside the package, decoded at 28x28
(``data/omniglot_minimal_28px.npz``, about 1.2 MB, with the data's MIT notice in
``data/LICENSE_omniglot.txt``), so :func:`load_omniglot_minimal` needs no download.
``tools/build_omniglot_minimal.py`` in the repository builds that file from the
official archives with the same decoding as :func:`load_omniglot`.
"""

import contextlib
import hashlib
import numbers
import os
import shutil
import stat
import zipfile
from importlib import resources
from pathlib import Path
from urllib.request import urlopen

import numpy as np
from PIL import Image, ImageOps
from sklearn.utils import Bunch

from ._split import FewShotSplit

__all__ = [
    "get_data_home",
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

# The embedded copy of the two minimal sets: package data of skmeta.datasets.
EMBEDDED_FILE = "data/omniglot_minimal_28px.npz"
EMBEDDED_IMAGE_SIZE = 28
_EMBEDDED_SUBSETS = ("background_small1", "background_small2")

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
    return _bunch(subset, X, y, alphabets, image_size)


def _bunch(subset, X, y, alphabets, image_size):
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
    """Load the "Omniglot minimal" few-shot split, embedded in the package.

    Meta-train on all of ``background_small1`` (5 alphabets, 136 characters,
    2,720 images); meta-test on the alphabets of ``background_small2`` that
    ``background_small1`` lacks: Japanese_(katakana), Sanskrit and Tagalog (106
    characters, 2,120 images), never seen in training. Greek and Latin, which the
    two archives share, are left out of the novel classes.

    With the defaults the images come from the copy shipped inside skmeta
    (28x28, decoded from the official archives exactly as :func:`load_omniglot`
    decodes them): no download and no data home. Pass ``data_home`` (or another
    ``image_size``) to decode the archives instead, downloading them if needed.

    Parameters
    ----------
    data_home : str, os.PathLike or None, default=None
        None uses the embedded copy (at ``image_size=28``). A folder decodes the
        archives found there; see :func:`load_omniglot`.
    download : bool, default=True
        Whether to download missing archives; unused with the embedded copy.
    image_size : int, default=28
        Side, in pixels, of the square images. Another size than 28 decodes
        the archives of ``data_home`` (see :func:`get_data_home` for where that
        is when it is None).

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
        If an archive is needed, missing, and ``download`` is False.
    OSError
        If an archive fails its checksum or cannot be downloaded.

    See Also
    --------
    load_omniglot : Load one Omniglot subset from its archive.

    References
    ----------
    .. [1] Lake et al. (2015), the Omniglot paper: see :func:`load_omniglot`.

    Examples
    --------
    >>> from skmeta.datasets import load_omniglot_minimal
    >>> split = load_omniglot_minimal()
    >>> split.X_base.shape, split.X_novel.shape
    ((2720, 1, 28, 28), (2120, 1, 28, 28))
    >>> str(split.y_novel[0])
    'Japanese_(katakana)/character01'
    """
    image_size = _check_image_size(image_size)
    if data_home is None and image_size == EMBEDDED_IMAGE_SIZE:
        base, other = (_load_embedded(s) for s in _EMBEDDED_SUBSETS)
    else:
        kwargs = dict(data_home=data_home, download=download, image_size=image_size)
        base, other = (load_omniglot(s, **kwargs) for s in _EMBEDDED_SUBSETS)
    novel = np.isin(other.alphabets, _MINIMAL_NOVEL_ALPHABETS)
    return FewShotSplit(
        X_base=base.data,
        y_base=base.target,
        X_novel=other.data[novel],
        y_novel=other.target[novel],
        name="omniglot_minimal",
    )


def _load_embedded(subset):
    """The embedded copy of ``subset``, as :func:`load_omniglot` returns it."""
    with (
        resources.files(__package__).joinpath(EMBEDDED_FILE).open("rb") as f,
        np.load(f, allow_pickle=False) as arrays,
    ):
        X = arrays[f"{subset}_images"][:, None].astype(np.float32)
        y, alphabets = arrays[f"{subset}_target"], arrays[f"{subset}_alphabets"]
    X /= 255.0  # the very operation of _decode_archive, so the floats are equal
    return _bunch(subset, X, y, alphabets, EMBEDDED_IMAGE_SIZE)


def embedded_arrays(archives):
    """The arrays of the embedded file, decoded from the official archives.

    Used by ``tools/build_omniglot_minimal.py``, which writes them with
    ``numpy.savez_compressed``; kept here so that the file and
    :func:`load_omniglot` share one decoding.

    Parameters
    ----------
    archives : mapping of str to path
        The path of ``images_<subset>.zip`` for each subset in
        ``("background_small1", "background_small2")``.

    Returns
    -------
    dict of str to ndarray
        For each subset: ``<subset>_images``, uint8 of shape (n_images, 28, 28)
        (stroke intensity 0-255); ``<subset>_target`` and ``<subset>_alphabets``,
        str of shape (n_images,); ``<subset>_sha256``, the archive's digest.

    Raises
    ------
    OSError
        If an archive fails its sha256 checksum.
    """
    arrays = {}
    for subset in _EMBEDDED_SUBSETS:
        filename = f"images_{subset}.zip"
        digest = _verify_checksum(archives[subset], _OMNIGLOT_CHECKSUMS[filename])
        X, y, alphabets = _decode_archive(
            archives[subset], f"images_{subset}", EMBEDDED_IMAGE_SIZE
        )
        arrays[f"{subset}_images"] = np.rint(X[:, 0] * 255.0).astype(np.uint8)
        arrays[f"{subset}_target"] = y
        arrays[f"{subset}_alphabets"] = alphabets
        arrays[f"{subset}_sha256"] = np.array(digest)
    return arrays


def _check_image_size(image_size):
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 1
    ):
        raise ValueError(f"image_size must be a positive int; got {image_size!r}.")
    return int(image_size)


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
