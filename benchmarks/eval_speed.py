"""Evaluation speed: evaluate_episodes against re-embedding every episode.

Over 1000 5-way 1-shot 15-query episodes of the novel Omniglot minimal
classes, ``evaluate_episodes`` embeds each image once; the naive protocol
adapts the classifier to each episode's support set and predicts its
queries, embedding 80 images per episode. Both give the same accuracies
(checked). Target: evaluate_episodes at least 10x faster.

    python benchmarks/eval_speed.py
"""

import argparse
import copy
import sys
import time

import numpy as np
from _common import machine

from skmeta import EpisodeSampler, PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=None, help="archives' folder; default: the embedded copy"
    )
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args(argv)

    data = load_omniglot_minimal(data_home=args.data_home)
    print(machine(), flush=True)
    # One view of each image: test-time views multiply both sides alike.
    clf = PrototypicalClassifier(
        max_epochs=1, episodes_per_epoch=20, test_time_views=1, random_state=0
    )
    clf.fit(data.X_base, data.y_base)

    start = time.perf_counter()
    fast = evaluate_episodes(
        clf, data.X_novel, data.y_novel, n_episodes=args.episodes, random_state=0
    )
    fast_time = time.perf_counter() - start

    start = time.perf_counter()
    naive = copy.deepcopy(clf)
    sampler = EpisodeSampler(5, 1, 15, args.episodes, random_state=0)
    slow = [
        naive.adapt(data.X_novel[s], data.y_novel[s]).score(
            data.X_novel[q], data.y_novel[q]
        )
        for s, q in sampler.split(y=data.y_novel)
    ]
    slow_time = time.perf_counter() - start

    np.testing.assert_allclose(fast.accuracies, slow, atol=1e-6)
    print(
        f"evaluate_episodes: {fast_time:.2f} s, re-embedding each episode: "
        f"{slow_time:.2f} s, speed-up {slow_time / fast_time:.1f}x (target >= 10x); "
        f"same accuracies: {100 * fast.mean:.2f} %"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
