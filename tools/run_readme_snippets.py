"""Run the README's Python snippets as written, in order, and time each.

The snippets share one namespace, as a reader pasting them into one session
does. They run in a temporary folder holding the ``my_images/`` folder the
first snippet reads: the base characters of the embedded Omniglot minimal as
PNG files of dark strokes on white, as the original files are,
``my_images/<alphabet>/<character>/<n>.png``. Exits non-zero on the first
snippet that fails::

    python tools/run_readme_snippets.py [README.md]
"""

import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

from skmeta.datasets import load_omniglot_minimal


def snippets(markdown):
    """The fenced ``python`` blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def write_image_folder(root):
    """Write Omniglot minimal's base characters as PNG files under ``root``."""
    base = load_omniglot_minimal()
    for i, (image, label) in enumerate(zip(base.X_base, base.y_base, strict=True)):
        (root / label).mkdir(parents=True, exist_ok=True)
        dark_on_light = np.rint(255 * (1 - image[0])).astype(np.uint8)
        Image.fromarray(dark_on_light).save(root / label / f"{i}.png")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else Path(__file__).resolve().parents[1] / "README.md")
    code = snippets(path.read_text())
    with tempfile.TemporaryDirectory() as folder:
        write_image_folder(Path(folder) / "my_images")
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            return _run(code, path.name)
        finally:
            os.chdir(cwd)


def _run(code_blocks, name):
    namespace = {"__name__": "__readme__"}
    for i, code in enumerate(code_blocks, start=1):
        start = time.perf_counter()
        try:
            exec(compile(code, f"{name} snippet {i}", "exec"), namespace)
        except Exception:
            traceback.print_exc()
            print(f"snippet {i}: FAILED", flush=True)
            return 1
        print(f"snippet {i}: ok in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
