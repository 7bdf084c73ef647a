"""Run the README's Python snippets as written, in order, and time each.

The snippets share one namespace, as a reader pasting them into one session
does. Exits non-zero on the first snippet that fails::

    python tools/run_readme_snippets.py [README.md]
"""

import re
import sys
import time
import traceback
from pathlib import Path


def snippets(markdown):
    """The fenced ``python`` blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else Path(__file__).resolve().parents[1] / "README.md")
    namespace = {"__name__": "__readme__"}
    for i, code in enumerate(snippets(path.read_text()), start=1):
        start = time.perf_counter()
        try:
            exec(compile(code, f"{path.name} snippet {i}", "exec"), namespace)
        except Exception:
            traceback.print_exc()
            print(f"snippet {i}: FAILED", flush=True)
            return 1
        print(f"snippet {i}: ok in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
