"""Polarity: Omniglot as loaded (light strokes on black) against ``1 - X``.

Meta-trains a ``PrototypicalClassifier`` with its defaults (random affine
augmentation; 16 test-time views) on the base classes of Omniglot minimal
twice, on the images as :func:`skmeta.datasets.load_omniglot_minimal` returns
them and on their inverses (dark strokes on white, as the PNG files store
them), for the same fixed number of episodes (``--max-epochs`` x
``--episodes-per-epoch``, not a time limit: the numbers must not depend on
what else the machine runs), then meta-tests each on the same
``--episodes`` 5-way 1-shot episodes of the novel classes (inverted for the
inverted model). Prints each mean ± 95% CI, whether the intervals overlap,
and the paired difference over the same episodes.

The augmentation fills what comes into view from outside the image with the
image's own background (``RandomAffine(fill="border")``); ``--fill zero``
trains with the zero fill the augmentation had before (and one test-time view,
since the views fill with the border), to see the gap it made.

Run from the repository root, on one thread::

    python benchmarks/polarity.py
"""

import argparse
import time

import numpy as np
import torch
from _common import machine

from skmeta import PrototypicalClassifier
from skmeta.augmentation import RandomAffine
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes

N_WAY, K_SHOT = 5, 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--episodes-per-epoch", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=600, help="meta-test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fill",
        choices=["border", "zero"],
        default="border",
        help="the augmentation's fill: each image's background (the default), "
        "or the former zeros",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = load_omniglot_minimal()
    print(data, "|", machine(), flush=True)
    params = dict(
        max_epochs=args.max_epochs,
        episodes_per_epoch=args.episodes_per_epoch,
        random_state=args.seed,
    )
    if args.fill == "zero":
        params.update(augment=RandomAffine(fill=0.0), test_time_views=1)
    polarities = {
        "as loaded (light on dark)": lambda X: X,
        "1 - X (dark on light)": lambda X: 1 - X,
    }
    rows = []
    for name, polarity in polarities.items():
        start = time.perf_counter()
        clf = PrototypicalClassifier(**params).fit(polarity(data.X_base), data.y_base)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        scores = evaluate_episodes(
            clf,
            polarity(data.X_novel),
            data.y_novel,
            n_way=N_WAY,
            k_shot=K_SHOT,
            n_episodes=args.episodes,
            random_state=args.seed,
        )
        eval_s = time.perf_counter() - start
        print(f"{name}: {scores}; fit {fit_s:.0f} s, evaluation {eval_s:.0f} s")
        rows.append((name, scores, fit_s))

    steps = args.max_epochs * args.episodes_per_epoch
    print(
        f"\nPrototypicalClassifier defaults, fill={args.fill!r}, {steps} episodes "
        f"each (seed {args.seed}); {N_WAY}-way {K_SHOT}-shot on the novel "
        f"alphabets, {args.episodes} episodes, the same for both\n"
    )
    print("| images | accuracy (%) | fit (s) |\n|---|---|---|")
    for name, scores, fit_s in rows:
        print(
            f"| {name} | {100 * scores.mean:.2f} ± {100 * scores.ci95:.2f} | "
            f"{fit_s:.0f} |"
        )
    (_, loaded, _), (_, inverted, _) = rows
    overlap = abs(loaded.mean - inverted.mean) <= loaded.ci95 + inverted.ci95
    difference = inverted.accuracies - loaded.accuracies
    half_width = 1.96 * difference.std() / np.sqrt(len(difference))
    print(
        f"\n95% intervals overlap: {'yes' if overlap else 'NO'}; paired difference "
        f"(inverted - as loaded) over the same episodes: "
        f"{100 * difference.mean():+.2f} ± {100 * half_width:.2f} points"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
