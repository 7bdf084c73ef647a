"""What a GPU machine must show before skmeta claims CUDA works (issue 27, item 8).

Run on a machine with a CUDA device, from the repository root, by
``tools/gpu_check.sh``. Each check prints one line, ``ok`` or ``FAILED`` with
the reason, and the script exits non-zero if any failed:

1. fit and ``evaluate_episodes`` with ``device="cuda"``, in float32 and
   bfloat16, on Omniglot minimal (the embedded data): accuracy above chance;
2. a model fitted on the GPU, saved there and loaded on the CPU in a new
   process, gives the same predictions;
3. ``benchmarks/fit_speed.py --device cuda`` (the shell script runs it).
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes
from skmeta.persistence import save

_LOAD_ON_CPU = """
import sys, numpy as np
from skmeta.persistence import load
model = load(sys.argv[1], device="cpu")
X = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict_proba(X))
"""


def check(name, function):
    """Run one check; print ``ok`` or ``FAILED`` and the reason."""
    start = time.perf_counter()
    try:
        detail = function()
    except Exception as exc:  # a report: every failure is printed, none hidden
        print(f"FAILED {name}: {type(exc).__name__}: {exc}", flush=True)
        return False
    print(f"ok {name} ({time.perf_counter() - start:.1f} s) {detail}", flush=True)
    return True


def main():
    if not torch.cuda.is_available():
        print("FAILED: torch sees no CUDA device", flush=True)
        return 1
    print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    data = load_omniglot_minimal()
    fitted = {}

    def fit_and_evaluate(precision):
        def run():
            clf = PrototypicalClassifier(
                device="cuda",
                precision=precision,
                max_epochs=2,
                episodes_per_epoch=100,
                random_state=0,
            ).fit(data.X_base, data.y_base)
            assert next(clf.module_.parameters()).is_cuda
            scores = evaluate_episodes(
                clf, data.X_novel, data.y_novel, n_way=5, k_shot=1, n_episodes=200
            )
            assert scores.mean > 0.5, f"5-way 1-shot accuracy {scores.mean:.3f}"
            fitted[precision] = clf
            return str(scores)

        return run

    def gpu_save_cpu_load():
        clf = fitted["float32"].adapt(data.X_novel[::20], data.y_novel[::20])
        X = data.X_novel[:200]
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            save(clf, folder / "m.skmeta")
            np.save(folder / "X.npy", X)
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _LOAD_ON_CPU,
                    str(folder / "m.skmeta"),
                    str(folder / "X.npy"),
                    str(folder / "p.npy"),
                ],
                check=True,
            )
            on_cpu = np.load(folder / "p.npy")
        difference = np.abs(on_cpu - clf.predict_proba(X)).max()
        assert difference < 1e-4, f"probabilities differ by {difference:.2e}"
        return f"max difference {difference:.2e}"

    results = [
        check("fit + evaluate_episodes, cuda, float32", fit_and_evaluate("float32")),
        check("fit + evaluate_episodes, cuda, bfloat16", fit_and_evaluate("bfloat16")),
        check("saved on the GPU, loaded on the CPU", gpu_save_cpu_load),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
