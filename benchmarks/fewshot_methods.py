"""Omniglot minimal: every few-shot method side by side, at the same budget.

Meta-trains each method on ``images_background_small1`` with
``rotations=True`` and the settings of its run in ``RUNS`` (defaults otherwise) for
at most the same wall-clock budget (``--budget``, 19 minutes by default: fit's
setup and final support set take the rest of 20), then meta-tests on the
alphabets only ``images_background_small2`` has: 5-way 1-shot and 20-way 1-shot, 1000
episodes of 15 queries per class, mean ± 95% CI, and the milliseconds each
method spends per adapted 5-way 1-shot episode (MAML and Reptile adapt by
gradient steps, the others by one embedding pass).

Targets (issue 4): Matching and Relation 5-way 1-shot >= 95%; MAML and
Reptile >= 90%; at most 20 minutes of training each on 2 CPU cores. Two
methods can share the machine, one core each (``--threads 1``, two processes):

    python benchmarks/fewshot_methods.py
"""

import sys
import time

import torch
from _common import argument_parser, machine

from skmeta.callbacks import TimeLimit
from skmeta.datasets import load_omniglot_minimal
from skmeta.fewshot import CLASSIFIERS
from skmeta.model_selection import evaluate_episodes

TARGETS = {"matching": 95.0, "relation": 95.0, "maml": 90.0, "reptile": 90.0}

#: The runs: a name, the method, and its settings that differ from the
#: defaults, for a 20-minute budget on one core.
RUNS = {
    "prototypical": ("prototypical", {}),
    # Three queries per class instead of 5: 240 images per 60-way episode
    # instead of 360, so half as many episodes again in the budget.
    "matching": ("matching", dict(n_query=3)),
    # Snell et al.'s Matching Network with Euclidean distance.
    "matching-sqeuclidean": (
        "matching",
        dict(n_query=3, distance="sqeuclidean", temperature=1.0),
    ),
    "relation": ("relation", {}),
    # 20-way episodes of 3 queries per class: 80 images and 1200 pairs
    # instead of 120 and 2000, so about 1.5 times the episodes.
    "relation-3query": ("relation", dict(n_query=3)),
    # The paper's episodes for 5-way Omniglot: 5-way, 19 queries per class.
    "relation-5way": ("relation", dict(n_way=5, n_query=19)),
    # One query per class, as in the authors' code for Omniglot, and 8 tasks
    # per outer step instead of 32: four times the meta-updates per minute.
    "maml": ("maml", dict(n_query=1, meta_batch_size=8)),
    # A fixed length, so that the meta step size anneals from 1 to 0 within
    # the budget (3000 meta-batches of 5 tasks take about 18 min on one core).
    "reptile": ("reptile", dict(max_epochs=150)),
}


def main(argv=None):
    parser = argument_parser(__doc__, data_home=True, device=True)
    parser.add_argument(
        "--budget", type=float, default=1140, help="seconds of meta-training each"
    )
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_omniglot_minimal(data_home=args.data_home)
    print(data, "|", machine(), flush=True)
    rows = []
    for name in args.runs:
        method, settings = RUNS[name]
        settings = {"max_epochs": 10_000, **settings}  # or the time budget
        clf = CLASSIFIERS[method](
            rotations=True,
            callbacks=[TimeLimit(args.budget)],
            device=args.device,
            random_state=args.seed,
            **settings,
        )
        start = time.perf_counter()
        clf.fit(data.X_base, data.y_base)
        train_min = (time.perf_counter() - start) / 60
        n_steps = clf.n_steps_
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
        target = TARGETS.get(method)
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
