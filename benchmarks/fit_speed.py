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

A second table trains both on 84x84 RGB images (Omniglot upsampled, its
strokes in three colour channels) in the episodes that PrototypicalClassifier
takes for that size by default (12-way 1-shot 9-query: an episode's pixels are
bounded, see ``EpisodicClassifier.max_episode_pixels``), float32 only, and
reports the system time and minor page faults of each, in one process per
run: with ``--reuse-freed-memory``, the runs first call
``skmeta.training.reuse_freed_memory()``, as the ``skmeta`` command does.

    python benchmarks/fit_speed.py [--device cuda] [--reuse-freed-memory]
"""

import argparse
import multiprocessing
import resource
import statistics
import sys

import numpy as np
import torch
from _common import K_SHOT, N_QUERY, N_WAY, machine, plain_loop

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.training import reuse_freed_memory


def skmeta_fit(X, y, n_episodes, seed, precision="float32", device="cpu", **shape):
    """Episodes per second of PrototypicalClassifier.fit (training only).

    ``shape`` (n_way, k_shot, n_query, rotations) defaults to the plain
    loop's 28x28 episodes; ``n_way=None`` and ``n_query=None`` take the
    estimator's defaults for X.
    """
    params = dict(n_way=N_WAY, k_shot=K_SHOT, n_query=N_QUERY, rotations=True)
    clf = PrototypicalClassifier(
        **{**params, **shape},
        episodes_per_epoch=n_episodes,
        max_epochs=1,
        precision=precision,
        device=device,
        random_state=seed,
    )
    clf.fit(X, y)
    return n_episodes / clf.history_[-1, "dur"], (clf.n_way_, clf.k_shot_, clf.n_query_)


def _base_classes(data_home):
    """Omniglot minimal's base images and their labels as 0 .. n - 1."""
    data = load_omniglot_minimal(data_home=data_home)
    return data.X_base, np.unique(data.y_base, return_inverse=True)[1]


def _rgb84(X):
    """28x28 grey images as 84x84 RGB: bilinear upsampling, three channels."""
    x = torch.nn.functional.interpolate(
        torch.from_numpy(X), size=84, mode="bilinear", align_corners=False
    )
    return x.repeat(1, 3, 1, 1).numpy()


def _large_image_run(which, data_home, episodes, device, reuse, threads, queue):
    """One 84x84 RGB run in a process of its own: speed, system time, faults."""
    torch.set_num_threads(threads)
    if reuse:
        reuse_freed_memory()
    X, y = _base_classes(data_home)
    X = _rgb84(X)
    before = resource.getrusage(resource.RUSAGE_SELF)
    if which == "skmeta":
        speed, _ = skmeta_fit(
            X, y, episodes, 0, device=device, n_way=None, n_query=None, rotations=False
        )
    else:
        speed = plain_loop(
            X, y, episodes, 0, shape=(12, 1, 9), rotations=False, device=device
        )
    after = resource.getrusage(resource.RUSAGE_SELF)
    queue.put(
        (speed, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt)
    )


def large_images(data_home, episodes, repeats, device, reuse):
    """The 84x84 RGB table: each run in a fresh process, alternating."""
    # A fresh interpreter: a fork of a process that ran torch can deadlock.
    context = multiprocessing.get_context("spawn")
    rows = {"skmeta": [], "plain": []}
    for _ in range(repeats):
        for which in rows:
            queue = context.Queue()
            process = context.Process(
                target=_large_image_run,
                args=(
                    which,
                    data_home,
                    episodes,
                    device,
                    reuse,
                    torch.get_num_threads(),
                    queue,
                ),
            )
            process.start()
            rows[which].append(queue.get())
            process.join()
    print(
        "\n84x84 RGB, 12-way 1-shot 9-query episodes (the default for that size), "
        f"float32, {episodes} episodes a run, "
        f"{'with' if reuse else 'without'} reuse_freed_memory():"
    )
    for which, runs in rows.items():
        speed = statistics.median(r[0] for r in runs)
        system = statistics.median(r[1] for r in runs)
        faults = statistics.median(r[2] for r in runs)
        print(
            f"  {which}: {speed:.3f} episodes/s, system time {system:.1f} s, "
            f"{faults / 1e6:.2f} M minor page faults (medians of {len(runs)})"
        )
    ratio = statistics.median(r[0] for r in rows["skmeta"]) / statistics.median(
        r[0] for r in rows["plain"]
    )
    print(f"  ratio ours / plain {ratio:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=None, help="archives' folder; default: the embedded copy"
    )
    parser.add_argument("--episodes", type=int, default=40, help="per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-episodes", type=int, default=4, help="84x84 runs")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--reuse-freed-memory",
        action="store_true",
        help="84x84 runs call skmeta.training.reuse_freed_memory() first",
    )
    args = parser.parse_args(argv)

    X, y = _base_classes(args.data_home)
    print(machine(), flush=True)
    device = args.device
    skmeta_fit(X, y, 3, 0, device=device)  # warm-up: allocator, kernels
    skmeta_fit(X, y, 3, 0, "bfloat16", device=device)
    plain_loop(X, y, 3, 0, device=device)
    ours, bf16, plain = [], [], []
    for repeat in range(args.repeats):
        ours.append(skmeta_fit(X, y, args.episodes, repeat, device=device)[0])
        bf16.append(skmeta_fit(X, y, args.episodes, repeat, "bfloat16", device)[0])
        plain.append(plain_loop(X, y, args.episodes, repeat, device=device))
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
        "(target >= 1.4 on a CPU with avx512_bf16 or amx_bf16)",
        flush=True,
    )
    large_images(
        args.data_home,
        args.large_episodes,
        args.repeats,
        device,
        args.reuse_freed_memory,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
