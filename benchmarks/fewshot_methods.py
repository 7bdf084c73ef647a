"""Omniglot minimal: every few-shot method side by side, at the same budget.

Meta-trains each method (defaults, plus ``rotations=True``) on
``images_background_small1`` for the same wall-clock budget, then meta-tests on
the alphabets only ``images_background_small2`` has: 5-way 1-shot and 20-way
1-shot, 1000 episodes of 15 queries per class, mean ± 95% CI, and the
milliseconds each method spends per adapted 5-way 1-shot episode (MAML and
Reptile adapt by gradient steps, the others by one embedding pass).

Targets (issue 4): Matching and Relation 5-way 1-shot >= 95%; MAML and
Reptile >= 90%; at most 20 minutes of training each on 2 CPU cores.

    python benchmarks/fewshot_methods.py --data-home ../shared/data --budget 1200
"""

import argparse
import sys
import time

from _common import TimeBudget, default_data_home, machine

from skmeta.cli import METHODS
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes

TARGETS = {"matching": 95.0, "relation": 95.0, "maml": 90.0, "reptile": 90.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--budget", type=float, default=1200, help="seconds each")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    data = load_omniglot_minimal(data_home=args.data_home)
    print(data, "|", machine(), flush=True)
    rows = []
    for name in args.methods:
        clf = METHODS[name](
            rotations=True,
            max_epochs=10_000,  # the time budget ends training
            callbacks=[TimeBudget(args.budget)],
            device=args.device,
            random_state=args.seed,
        )
        start = time.perf_counter()
        clf.fit(data.X_base, data.y_base)
        train_min = (time.perf_counter() - start) / 60
        n_steps = sum(len(epoch) for epoch in clf.history_[:, "batches"])
        cells = []
        for n_way in (5, 20):
            start = time.perf_counter()
            scores = evaluate_episodes(
                clf,
                data.X_novel,
                data.y_novel,
                n_way=n_way,
                k_shot=1,
                n_query=15,
                n_episodes=args.episodes,
                random_state=args.seed,
            )
            if n_way == 5:
                ms = 1000 * (time.perf_counter() - start) / args.episodes
                five_way = 100 * scores.mean
            cells.append(f"{100 * scores.mean:.2f} ± {100 * scores.ci95:.2f}")
        target = TARGETS.get(name)
        met = (
            "" if target is None else (" (met)" if five_way >= target else " (NOT met)")
        )
        rows.append(
            f"| {name} | {cells[0]}{met} | {cells[1]} | {train_min:.1f} min, "
            f"{n_steps} steps | {ms:.1f} |"
        )
        print(rows[-1], flush=True)

    print(
        "\n| method | 5-way 1-shot | 20-way 1-shot | training | ms per 5-way episode |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
