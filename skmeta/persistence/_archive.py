"""Reading the zip: each entry's size bounded, its JSON checked for shape."""

import json
import zipfile
import zlib
from pathlib import Path

from .. import __version__
from ._format import FORMAT, MAX_JSON_BYTES


class _Archive:
    """A zip file opened for reading, each entry's size bounded."""

    def __init__(self, path):
        self.path = Path(path)
        size = self.path.stat().st_size
        try:
            self.zip = zipfile.ZipFile(self.path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise ValueError(
                f"{path} is not a file that skmeta.persistence.save wrote: {error}"
            ) from error
        self.infos = {info.filename: info for info in infos}
        if len(self.infos) != len(infos):
            self.zip.close()
            raise ValueError(f"{path}: two entries of the archive have one name.")
        # Entries that overlap could describe more data than the file holds.
        if sum(info.compress_size for info in infos) > size:
            self.zip.close()
            raise ValueError(f"{path}: entries of the archive overlap.")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def error(self, entry, what):
        return ValueError(f"{self.path}: {entry}: {what}")

    def read(self, name, limit):
        """The bytes of entry ``name``, refused if it holds over ``limit``."""
        info = self.infos.get(name)
        if info is None:
            if name.endswith("estimator.json"):
                raise ValueError(
                    f"{self.path} is not a file that skmeta.persistence.save "
                    f"wrote: it has no {name}."
                )
            raise self.error(name, "missing from the archive")
        if info.file_size > limit:
            raise self.error(
                name, f"holds {info.file_size} bytes, over the bound of {limit}"
            )
        try:
            with self.zip.open(info) as file:
                data = file.read(limit + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
            ValueError,
        ) as error:
            raise self.error(name, f"cannot be read: {error}") from error
        if len(data) != info.file_size:
            raise self.error(
                name, f"holds {len(data)} bytes, not the {info.file_size} listed"
            )
        return data

    def json(self, name):
        data = self.read(name, MAX_JSON_BYTES)
        try:
            return json.loads(data, object_pairs_hook=_without_duplicates)
        except (ValueError, RecursionError) as error:
            raise self.error(name, f"not valid JSON: {error}") from error


def _without_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"the key(s) {repeated} appear twice in one object")
    return dict(pairs)


def _check_object(document, entry, keys, archive, optional=()):
    """``document`` is a JSON object with ``keys`` (and maybe ``optional``)."""
    if not isinstance(document, dict):
        raise archive.error(entry, f"expected a JSON object; got {document!r:.80}")
    missing = set(keys) - set(document)
    unknown = set(document) - set(keys) - set(optional)
    if missing or unknown:
        raise archive.error(
            entry,
            f"expected the keys {sorted(keys)}"
            + (f"; {sorted(missing)} missing" if missing else "")
            + (f"; {sorted(unknown)} unknown" if unknown else ""),
        )


def _check_format(document, entry, archive):
    fmt = document.get("format") if isinstance(document, dict) else None
    if type(fmt) is not int or fmt != FORMAT:
        raise archive.error(
            entry,
            f"written in format {fmt!r} (by skmeta "
            f"{document.get('skmeta') if isinstance(document, dict) else None}); "
            f"this skmeta ({__version__}) reads format {FORMAT} only",
        )


def _is_count(value):
    return type(value) is int and value >= 0
