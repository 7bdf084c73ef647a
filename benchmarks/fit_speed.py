"""Meta-training speed: PrototypicalClassifier.fit against a plain PyTorch loop.

Both train the same Conv4 on the same 60-way 1-shot 5-query episodes of 28x28
images (Omniglot small1 with rotations as classes, random affine distortion),
with Adam and the learning rate halved every 1000 episodes. The plain loop is
what a researcher would write by hand: numpy episode sampling, one forward
pass over support and query, prototypes, squared Euclidean distances,
cross-entropy. Runs alternate (ours in float32, ours in bfloat16, plain,
...) so all see the same machine load; the ratios of the medians are
printed. Targets: float32 ours / plain >= 0.95; bfloat16 ours / float32 plain
>= 1.4 where the CPU computes bfloat16 natively (AVX512-BF16 or AMX; the
first line names the CPU's instruction sets). Elsewhere bfloat16 is emulated
and slower than float32, which is why float32 is the default.

    python benchmarks/fit_speed.py
"""

import argparse
import statistics
import sys

import numpy as np
from _common import K_SHOT, N_QUERY, N_WAY, machine, plain_loop

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal


def skmeta_fit(X, y, n_episodes, seed, precision="float32"):
    """Episodes per second of PrototypicalClassifier.fit (training only)."""
    clf = PrototypicalClassifier(
        n_way=N_WAY,
        k_shot=K_SHOT,
        n_query=N_QUERY,
        episodes_per_epoch=n_episodes,
        max_epochs=1,
        rotations=True,
        precision=precision,
        random_state=seed,
    )
    clf.fit(X, y)
    return n_episodes / clf.history_[-1, "dur"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=None, help="archives' folder; default: the embedded copy"
    )
    parser.add_argument("--episodes", type=int, default=40, help="per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    data = load_omniglot_minimal(data_home=args.data_home)
    y = np.unique(data.y_base, return_inverse=True)[1]
    print(machine(), flush=True)
    skmeta_fit(data.X_base, y, 3, 0)  # warm-up: allocator, kernels
    skmeta_fit(data.X_base, y, 3, 0, "bfloat16")
    plain_loop(data.X_base, y, 3, 0)
    ours, bf16, plain = [], [], []
    for repeat in range(args.repeats):
        ours.append(skmeta_fit(data.X_base, y, args.episodes, repeat))
        bf16.append(skmeta_fit(data.X_base, y, args.episodes, repeat, "bfloat16"))
        plain.append(plain_loop(data.X_base, y, args.episodes, repeat))
        print(
            f"run {repeat}: skmeta {ours[-1]:.3f} ep/s, skmeta bfloat16 "
            f"{bf16[-1]:.3f} ep/s, plain {plain[-1]:.3f} ep/s",
            flush=True,
        )
    reference = statistics.median(plain)
    print(
        f"\nPrototypicalClassifier.fit: {statistics.median(ours):.3f} episodes/s, "
        f"in bfloat16 {statistics.median(bf16):.3f}; plain PyTorch loop "
        f"(float32): {reference:.3f} episodes/s\n"
        f"ratio float32 ours / plain {statistics.median(ours) / reference:.3f} "
        "(target >= 0.95)\n"
        "ratio bfloat16 ours / float32 plain "
        f"{statistics.median(bf16) / reference:.3f} "
        "(target >= 1.4 on a CPU with avx512_bf16 or amx_bf16)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
