"""A user's folder of image files, one subfolder per class, as arrays.

:func:`load_image_folder` reads the layout of torchvision's ``ImageFolder``
(``root/<class>/<file>``) and the two-level layout of Omniglot
(``root/<group>/<class>/<file>``, the alphabet being the group), decodes every
file with Pillow and returns the images as one float32 array
``(n_samples, channels, height, width)`` in [0, 1], the layout of every skmeta
estimator.
"""

import contextlib
import numbers
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from sklearn.utils import Bunch
from tqdm.auto import tqdm

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

#: The file name endings read as images (case-insensitive); other files, and
#: names starting with a dot, are not images and are passed over.
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

# Pillow modes of one channel. Those of more than 8 bits are scaled by their
# full range, 65535 (Pillow's "I" holds 16-bit PNG and TIFF files too).
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_HIGH_DEPTH_MAX = 65535.0

# EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}

_COLORS = {"L": 1, "RGB": 3}
_MAX_LISTED = 10


def load_image_folder(
    root, *, image_size=None, color=None, max_bytes=None, verbose=None
):
    """Load a folder of image files, one subfolder per class.

    Two layouts are read: ``root/<class>/<file>``, and
    ``root/<group>/<class>/<file>``, where each class belongs to a group (as
    Omniglot's characters belong to alphabets); a class is then named
    ``"<group>/<class>"``, since two groups may hold classes of the same name.
    Files ending in one of :data:`IMAGE_EXTENSIONS` (PNG, JPEG, BMP, WebP,
    TIFF; any case) are decoded with Pillow; other files and names starting
    with a dot are passed over. Symbolic links are followed.

    JPEG and TIFF files are turned upright by their EXIF orientation tag, as
    an image viewer shows them. 8-bit images are scaled by 1/255, 16-bit
    grayscale ones by 1/65535. Transparency is dropped: the colours stored
    under it are kept.

    Before decoding anything the file headers are read, and the decoded size,
    ``n_samples * channels * height * width * 4`` bytes, is compared with the
    memory available (or ``max_bytes``), so that a folder too large is refused
    at once, with no half-filled array.

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding one subfolder per class (or per group of classes).
    image_size : int, tuple of (int, int) or None, default=None
        The ``(height, width)`` of the returned images; an int gives square
        images. Images of another size are resized with Lanczos filtering
        (Pillow's ``Image.Resampling.LANCZOS``), which does not keep the
        aspect ratio. None keeps the images' own size, which all files must
        then share.
    color : {"L", "RGB"} or None, default=None
        ``"L"``: one channel (colour images are converted with Pillow's ITU-R
        601-2 luma, ``L = 0.299 R + 0.587 G + 0.114 B``); ``"RGB"``: three
        channels (a grayscale image gets its one channel three times). None
        infers it from the files: ``"L"`` if every file is grayscale or 1-bit
        (a palette of grays counts as grayscale), else ``"RGB"``.
    max_bytes : int or None, default=None
        The largest decoded array allowed, in bytes. None means the memory
        available now (``MemAvailable`` of ``/proc/meminfo``, else
        ``os.sysconf``'s available pages; no limit where neither is known).
    verbose : bool or None, default=None
        Show a progress bar while decoding. None shows it only when stderr is
        a terminal.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        X : ndarray of shape (n_samples, channels, height, width), float32
            The images, values in [0, 1]; ``channels`` is 1 for ``"L"`` and 3
            for ``"RGB"``.
        y : ndarray of shape (n_samples,), str
            The class of each image: its folder's name, or ``"<group>/<class>"``
            in the two-level layout.
        groups : ndarray of shape (n_samples,), str, or None
            The group of each image in the two-level layout; None otherwise.
        filenames : ndarray of shape (n_samples,), str
            The path of each file, ``root`` joined with its relative path.

        Images are sorted by group, class and file name (by code point), so
        the order is the same on every call and every system.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder, or holds no image file.
    ValueError
        If a parameter is invalid; if the layout is neither of the two above
        (images directly in ``root``, layouts of both depths mixed, or
        folders nested deeper); if ``image_size`` is None and the images
        differ in size (the message lists the sizes); or if the decoded array
        would exceed ``max_bytes`` or the available memory (the message says
        its size and suggests a smaller ``image_size``).
    OSError
        If any image file cannot be read or decoded: all of them are listed,
        none is skipped.

    See Also
    --------
    skmeta.model_selection.ClassShuffleSplit : Split the classes into base
        (meta-train) and novel (meta-test) ones.

    Examples
    --------
    A folder of two classes of three 8x6 images each:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from skmeta.datasets import load_image_folder
    >>> root = Path(tempfile.mkdtemp())
    >>> for name, value in [("circle", 0), ("square", 255)]:
    ...     (root / name).mkdir()
    ...     for i in range(3):
    ...         pixels = np.full((8, 6), value, dtype=np.uint8)
    ...         Image.fromarray(pixels).save(root / name / f"{i}.png")
    >>> data = load_image_folder(root, image_size=4)
    >>> data.X.shape, data.X.dtype, float(data.X.max())
    ((6, 1, 4, 4), dtype('float32'), 1.0)
    >>> data.y.tolist()
    ['circle', 'circle', 'circle', 'square', 'square', 'square']
    >>> data.groups is None
    True
    >>> import shutil
    >>> shutil.rmtree(root)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root must be a folder; {str(root)!r} is not one.")
    size = _check_image_size(image_size)
    if color is not None and color not in _COLORS:
        raise ValueError(f'color must be "L", "RGB" or None; got {color!r}.')
    if max_bytes is not None and (
        isinstance(max_bytes, bool)
        or not isinstance(max_bytes, numbers.Integral)
        or max_bytes < 1
    ):
        raise ValueError(
            f"max_bytes must be a positive int or None; got {max_bytes!r}."
        )
    if verbose is None:
        verbose = sys.stderr.isatty()

    files, nested = _find_images(root)
    headers, unreadable = _read_headers(root, files)
    if unreadable:
        raise OSError(_unreadable_message(unreadable, len(files)))
    if color is None:
        color = "L" if all(gray for _, gray in headers) else "RGB"
    if size is None:
        size = _common_size(files, [hw for hw, _ in headers])
    channels = _COLORS[color]
    _check_memory(len(files), channels, size, max_bytes)

    X = np.empty((len(files), channels, *size), dtype=np.float32)
    for i, parts in enumerate(
        tqdm(files, desc="decoding images", unit="image", disable=not verbose)
    ):
        try:
            X[i] = _decode(root.joinpath(*parts), color, size)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            unreadable.append((parts, exc))
    if unreadable:
        raise OSError(_unreadable_message(unreadable, len(files)))
    return Bunch(
        X=X,
        y=np.array(["/".join(parts[:-1]) for parts in files]),
        groups=np.array([parts[0] for parts in files]) if nested else None,
        filenames=np.array([str(root.joinpath(*parts)) for parts in files]),
    )


def _check_image_size(image_size):
    """``(height, width)`` from an int or a pair; None stays None."""
    if image_size is None:
        return None
    pair = (image_size, image_size) if _is_int(image_size) else image_size
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(_is_int(side) and side >= 1 for side in pair)
    ):
        raise ValueError(
            "image_size must be a positive int, a (height, width) pair of "
            f"positive ints, or None; got {image_size!r}."
        )
    return int(pair[0]), int(pair[1])


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _find_images(root):
    """The sorted relative paths (tuples of parts) of the images, and nesting.

    Returns ``(files, nested)``; ``nested`` is True for the two-level layout.
    Raises ValueError on any other layout, FileNotFoundError on no image.
    """
    by_depth = {1: [], 2: [], 3: []}
    too_deep = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        rel = Path(folder).relative_to(root).parts
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        if len(rel) == 2 and subfolders:  # root/group/class/<folder>: too deep
            too_deep.extend("/".join((*rel, name)) for name in subfolders)
            subfolders.clear()
        for name in names:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                by_depth[len(rel) + 1].append((*rel, name))
    if by_depth[1]:
        raise ValueError(
            f"{len(by_depth[1])} image file(s) lie directly in {root}, e.g. "
            f"{by_depth[1][0][0]!r}; put each class's images in a subfolder "
            "named after the class (root/<class>/<file>)."
        )
    if too_deep:
        raise ValueError(
            f"Folders of {root} nest deeper than root/<group>/<class>/<file>, "
            f"e.g. {too_deep[0]!r}; use root/<class>/<file> or "
            "root/<group>/<class>/<file>."
        )
    if by_depth[2] and by_depth[3]:
        raise ValueError(
            f"{root} mixes two layouts: {len(by_depth[2])} image(s) in "
            f"root/<class>/<file> (e.g. {'/'.join(by_depth[2][0])!r}) and "
            f"{len(by_depth[3])} in root/<group>/<class>/<file> (e.g. "
            f"{'/'.join(by_depth[3][0])!r}); use one of them."
        )
    files = sorted(by_depth[2] or by_depth[3])
    if not files:
        raise FileNotFoundError(
            f"No image file ({', '.join(IMAGE_EXTENSIONS)}) in the subfolders "
            f"of {root}."
        )
    return files, bool(by_depth[3])


def _read_headers(root, files):
    """``[((height, width), is_gray)]`` of each file, and the unreadable ones."""
    headers, unreadable = [], []
    for parts in files:
        try:
            with Image.open(root.joinpath(*parts)) as image:
                width, height = image.size
                orientation = image.getexif().get(_EXIF_ORIENTATION)
                if orientation in _TRANSPOSING_ORIENTATIONS:
                    width, height = height, width
                headers.append(((height, width), _is_gray(image)))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            unreadable.append((parts, exc))
    return headers, unreadable


def _is_gray(image):
    if image.mode in _GRAY_MODES:
        return True
    if image.mode in ("P", "PA"):
        palette = np.asarray(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
        return bool(np.all(palette == palette[:, :1]))
    return False


def _common_size(files, sizes):
    """The one size of all images, or a ValueError listing the sizes."""
    found = {}
    for parts, hw in zip(files, sizes, strict=True):
        found.setdefault(hw, []).append(parts)
    if len(found) == 1:
        return next(iter(found))
    listed = sorted(found.items(), key=lambda item: -len(item[1]))
    described = "; ".join(
        f"{h}x{w} ({len(paths)} file(s), e.g. {'/'.join(paths[0])!r})"
        for (h, w), paths in listed[:5]
    )
    more = f"; and {len(listed) - 5} other sizes" if len(listed) > 5 else ""
    suggestion = listed[0][0]
    raise ValueError(
        f"The images differ in size (height x width): {described}{more}. Pass "
        f"image_size, an int or a (height, width) pair, to resize them all, e.g. "
        f"image_size={suggestion}."
    )


def _available_memory():
    """Bytes of memory available now, or None where it cannot be known.

    The system's ``MemAvailable`` (else its available pages), or what is left
    under the limit of the process's control group (cgroup v2, as in a
    container), whichever is smaller.
    """
    found = []
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/meminfo") as meminfo,
    ):
        found += [
            int(line.split()[1]) * 1024
            for line in meminfo
            if line.startswith("MemAvailable:")
        ]
    if not found:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    with contextlib.suppress(OSError, ValueError):
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text())
            found.append(max(int(limit) - used, 0))
    return min(found, default=None)


def _check_memory(n_samples, channels, size, max_bytes):
    needed = n_samples * channels * size[0] * size[1] * 4
    limit, what = max_bytes, f"max_bytes={max_bytes}"
    if limit is None:
        limit, what = _available_memory(), "the memory available"
    if limit is None or needed <= limit:
        return
    # The largest square side whose array would fit, as a suggestion.
    side = int(np.sqrt(limit / (n_samples * channels * 4)))
    raise ValueError(
        f"The {n_samples} images at {size[0]}x{size[1]} with {channels} "
        f"channel(s) would take {_gib(needed)} as float32, more than {what} "
        f"({_gib(limit)}). Pass a smaller image_size (at most {side} for square "
        "images), or load part of the folder."
    )


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.2f} GiB ({n_bytes} bytes)"


def _decode(path, color, size):
    """One image as a float32 array (channels, height, width) in [0, 1]."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in _HIGH_DEPTH_MODES:
            pixels = np.asarray(image, dtype=np.float32)
            if pixels.max(initial=0) > _HIGH_DEPTH_MAX or pixels.min(initial=0) < 0:
                raise ValueError(
                    f"{image.mode}-mode values outside 0-65535, whose range is not "
                    "known; save the image with 8 or 16 bits per channel."
                )
            image = Image.fromarray(pixels / _HIGH_DEPTH_MAX, mode="F")
            full_scale = 1.0
        else:
            if image.mode in ("P", "PA"):
                image = image.convert("RGBA")
            image = image.convert(color)
            full_scale = 255.0
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
        pixels = np.asarray(image, dtype=np.float32) / full_scale
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[None], _COLORS[color], axis=0)
    else:
        pixels = np.moveaxis(pixels, -1, 0)
    return np.clip(pixels, 0.0, 1.0)


def _unreadable_message(unreadable, n_files):
    listed = "\n".join(
        f"  {'/'.join(parts)}: {exc}" for parts, exc in unreadable[:_MAX_LISTED]
    )
    more = (
        f"\n  ... and {len(unreadable) - _MAX_LISTED} more"
        if len(unreadable) > _MAX_LISTED
        else ""
    )
    return (
        f"{len(unreadable)} of {n_files} image file(s) could not be read; fix or "
        f"remove them (none is skipped):\n{listed}{more}"
    )
