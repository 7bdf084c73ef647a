"""Build skmeta's embedded Omniglot minimal file from the official archives.

Reads ``images_background_small1.zip`` and ``images_background_small2.zip``
(from https://github.com/brendenlake/omniglot, folder ``python/``), verifies
their sha256 digests, decodes them at 28x28 as ``skmeta.datasets.load_omniglot``
does, and writes ``skmeta/datasets/data/omniglot_minimal_28px.npz``::

    python tools/build_omniglot_minimal.py ../shared/data/omniglot

The images are stored as 8-bit stroke intensities (uint8), which is lossless:
the loader's float32 images are those integers divided by 255. The data's MIT
notice is ``skmeta/datasets/data/LICENSE_omniglot.txt``.
"""

import argparse
import hashlib
from pathlib import Path

import numpy as np

from skmeta.datasets._omniglot import EMBEDDED_FILE, embedded_arrays

PACKAGE = Path(__file__).resolve().parents[1] / "skmeta" / "datasets"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding the two zips")
    parser.add_argument(
        "--out", type=Path, default=PACKAGE / EMBEDDED_FILE, help="file to write"
    )
    args = parser.parse_args(argv)
    archives = {
        subset: args.folder / f"images_{subset}.zip"
        for subset in ("background_small1", "background_small2")
    }
    arrays = embedded_arrays(archives)
    with open(args.out, "wb") as f:
        np.savez_compressed(f, **arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, sha256 {digest})")
    for subset in archives:
        images = arrays[f"{subset}_images"]
        print(f"  {subset}: {images.shape} {images.dtype}")


if __name__ == "__main__":
    main()
