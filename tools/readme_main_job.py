"""Run the main job, ``skmeta``, and put what it printed into the README.

The block between ``<!-- MAIN JOB -->`` and ``<!-- /MAIN JOB -->`` becomes the
command's output as a user sees it redirected to a file, with the wall time of
the whole command and the machine it ran on::

    python tools/readme_main_job.py [extra skmeta options]
"""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import machine  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- MAIN JOB -->", "<!-- /MAIN JOB -->"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "skmeta", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    command = " ".join(["skmeta", *argv])
    block = (
        f"{START}\n```text\n$ {command}\n{result.stdout.rstrip()}\n```\n"
        f"({seconds:.0f} s in all, {time.strftime('%Y-%m-%d')}; {machine()})\n{END}"
    )
    text = README.read_text()
    head, rest = text.split(START, 1)
    README.write_text(head + block + rest.split(END, 1)[1])
    print(block)


if __name__ == "__main__":
    main()
