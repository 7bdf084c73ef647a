"""Evaluation speed: evaluate_episodes against re-embedding every episode.

Over 1000 5-way 1-shot 15-query episodes of the novel Omniglot minimal
classes, ``evaluate_episodes`` embeds each image once; the naive protocol
adapts the classifier to each episode's support set and predicts its
queries, embedding 80 images per episode. Both give the same accuracies
(checked). Target: evaluate_episodes at least 10x faster.

It also times evaluate_episodes with the squared distance as it was before
issue 25, the expanded form on the raw embeddings, beside today's, centred
on the prototypes' mean (best of 3 runs each, interleaved): the centring
must cost at most 10 %.

    python benchmarks/eval_speed.py
"""

import argparse
import copy
import sys
import time

import numpy as np
import torch
from _common import machine

from skmeta import EpisodeSampler, PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.distances import _in_float32
from skmeta.model_selection import evaluate_episodes


class UncentredSquaredEuclidean(torch.nn.Module):
    """The squared distance before issue 25: it cancels far from the origin."""

    @_in_float32
    def forward(self, a, b):
        a_sq = a.pow(2).sum(-1, keepdim=True)
        b_sq = b.pow(2).sum(-1).unsqueeze(-2)
        return (a_sq - 2 * a @ b.transpose(-1, -2) + b_sq).clamp_min_(0)


def centring_cost(clf, X, y, n_episodes):
    """Best of 3 seconds of evaluate_episodes: uncentred distance, today's."""
    uncentred = copy.deepcopy(clf)
    uncentred.module_.distance = UncentredSquaredEuclidean()
    times = {uncentred: [], clf: []}
    for _ in range(3):  # interleaved, so that others' load hits both alike
        for model, seconds in times.items():
            start = time.perf_counter()
            evaluate_episodes(model, X, y, n_episodes=n_episodes, random_state=0)
            seconds.append(time.perf_counter() - start)
    return min(times[uncentred]), min(times[clf])


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
    old, new = centring_cost(clf, data.X_novel, data.y_novel, args.episodes)
    print(
        f"evaluate_episodes, best of 3: uncentred squared distance {old:.3f} s, "
        f"centred {new:.3f} s, ratio {new / old:.3f} (target <= 1.10)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
