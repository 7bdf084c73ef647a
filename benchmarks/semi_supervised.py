"""Semi-supervised few-shot learning on Omniglot minimal (Ren et al., 2018's protocol).

Each base class of Omniglot minimal keeps 40 % of its images labelled; the
other 60 % get the label -1 (unlabelled), drawn with ``--seed``. Two models
are meta-trained with the same backbone (Conv4), the same training episodes
(``--n-way``-way 1-shot ``--n-query``-query) and the same fixed number of
episodes (``--max-epochs`` x ``--episodes-per-epoch``, not a time limit):

- ``PrototypicalClassifier`` on the labelled images only (the unlabelled ones
  ignored);
- ``SemiSupervisedPrototypicalClassifier`` on all of them: each training
  episode also draws ``n_way * --n-unlabelled`` unlabelled images, and its
  prototypes are refined by soft k-means with a distractor cluster.

Both are meta-tested on the same ``--episodes`` episodes of the novel
alphabets: 5-way 1-shot with ``--test-queries`` queries per class, and an
unlabelled set of 5 images of each episode class and 5 of each of 5
distractor classes (novel classes outside the episode). The semi-supervised
model adapts to the support set with its unlabelled set (``y == -1``); the
Prototypical model adapts to the support set alone; the semi-supervised model
is also scored ignoring the unlabelled set. Prints each mean accuracy ± 95%
CI and the paired difference over the same episodes. Test-time views are off
(``test_time_views=1``) in both, so that 600 episodes fit the time.

Run from the repository root, on one thread::

    python benchmarks/semi_supervised.py
"""

import argparse
import sys
import time

import numpy as np
import torch
from _common import machine

from skmeta import PrototypicalClassifier, SemiSupervisedPrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal

N_WAY, K_SHOT, N_UNLABELLED, N_DISTRACTORS = 5, 1, 5, 5


def hide_labels(y, fraction, rng):
    """``y`` with all but ``fraction`` of each class's samples set to -1."""
    y = y.astype(object)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        y[members[int(round(fraction * len(members))) :]] = -1
    return y


def test_episodes(y, n_episodes, n_query, rng):
    """Index arrays (support, unlabelled, query) of the meta-test episodes.

    ``N_WAY`` classes of ``K_SHOT`` support, ``N_UNLABELLED`` unlabelled and
    ``n_query`` query images each; ``N_DISTRACTORS`` other classes of
    ``N_UNLABELLED`` unlabelled images each.
    """
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    for _ in range(n_episodes):
        classes = rng.choice(len(by_class), N_WAY + N_DISTRACTORS, replace=False)
        support, unlabelled, query = [], [], []
        for i, c in enumerate(classes):
            picks = rng.permutation(by_class[c])
            if i < N_WAY:
                support.append(picks[:K_SHOT])
                unlabelled.append(picks[K_SHOT : K_SHOT + N_UNLABELLED])
                query.append(picks[K_SHOT + N_UNLABELLED :][:n_query])
            else:
                unlabelled.append(picks[:N_UNLABELLED])
        yield tuple(np.concatenate(part) for part in (support, unlabelled, query))


def accuracy(clf, X, y, support, query, unlabelled=None):
    """Query accuracy after adapting ``clf`` to the support (and unlabelled) set."""
    if unlabelled is None:
        clf.adapt(X[support], y[support])
    else:
        rows = np.concatenate([support, unlabelled])
        y_rows = np.concatenate([y[support], np.full(len(unlabelled), -1, object)])
        clf.adapt(X[rows], y_rows)
    return float(np.mean(clf.predict(X[query]) == y[query]))


def interval(values):
    """Mean and 95 % CI half-width (1.96 std / sqrt(n)), in percent."""
    return 100 * values.mean(), 100 * 1.96 * values.std() / np.sqrt(len(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=float, default=0.4)
    parser.add_argument("--n-way", type=int, default=20, help="training episodes")
    parser.add_argument("--n-query", type=int, default=5, help="training episodes")
    parser.add_argument("--n-unlabelled", type=int, default=5, help="training")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--episodes-per-epoch", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=600, help="meta-test")
    parser.add_argument("--test-queries", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("$ python", " ".join(sys.argv), flush=True)

    data = load_omniglot_minimal()
    print(data, "|", machine(), flush=True)
    rng = np.random.default_rng(args.seed)
    y_base = hide_labels(data.y_base, args.labelled, rng)
    labelled = y_base != -1
    y_base_labelled = y_base[labelled].astype(str)
    params = dict(
        n_way=args.n_way,
        k_shot=1,
        n_query=args.n_query,
        max_epochs=args.max_epochs,
        episodes_per_epoch=args.episodes_per_epoch,
        test_time_views=1,
        random_state=args.seed,
    )
    models = {
        "PrototypicalClassifier (labelled images only)": (
            PrototypicalClassifier(**params),
            (data.X_base[labelled], y_base_labelled),
        ),
        "SemiSupervisedPrototypicalClassifier": (
            SemiSupervisedPrototypicalClassifier(
                n_unlabelled=args.n_unlabelled, **params
            ),
            (data.X_base, y_base),
        ),
    }
    fit_seconds = {}
    for name, (clf, (X, y)) in models.items():
        start = time.perf_counter()
        clf.fit(X, y)
        fit_seconds[name] = time.perf_counter() - start
        print(f"{name}: fit {fit_seconds[name]:.0f} s", flush=True)
    proto, _ = models["PrototypicalClassifier (labelled images only)"]
    semi_name = "SemiSupervisedPrototypicalClassifier"
    semi, _ = models[semi_name]
    scale = float(semi.module_.log_distractor_scale.detach().exp())
    print(f"learned distractor scale: {scale:.1f} (initial {semi.distractor_scale})")

    episodes = list(
        test_episodes(
            data.y_novel, args.episodes, args.test_queries, np.random.default_rng(1)
        )
    )
    X, y = data.X_novel, data.y_novel
    start = time.perf_counter()
    scores = {
        "PrototypicalClassifier, support set only": [
            accuracy(proto, X, y, s, q) for s, u, q in episodes
        ],
        "SemiSupervisedPrototypicalClassifier, support set only": [
            accuracy(semi, X, y, s, q) for s, u, q in episodes
        ],
        "SemiSupervisedPrototypicalClassifier, with the unlabelled set": [
            accuracy(semi, X, y, s, q, u) for s, u, q in episodes
        ],
    }
    eval_s = time.perf_counter() - start

    steps = args.max_epochs * args.episodes_per_epoch
    print(
        f"\n{100 * args.labelled:.0f} % of each base class labelled; {steps} training "
        f"episodes each, {args.n_way}-way 1-shot {args.n_query}-query (seed "
        f"{args.seed}); meta-test: {args.episodes} episodes of {N_WAY}-way "
        f"{K_SHOT}-shot, {args.test_queries} queries, {N_UNLABELLED} unlabelled per "
        f"class and {N_DISTRACTORS} distractor classes of {N_UNLABELLED}, the same "
        f"for all rows; evaluation {eval_s:.0f} s\n"
    )
    print("| model, meta-test | accuracy (%) |\n|---|---|")
    for name, values in scores.items():
        mean, half = interval(np.asarray(values))
        print(f"| {name} | {mean:.2f} ± {half:.2f} |")
    base = np.asarray(scores["PrototypicalClassifier, support set only"])
    best = np.asarray(scores[f"{semi_name}, with the unlabelled set"])
    mean, half = interval(best - base)
    print(
        f"\npaired difference (semi-supervised with its unlabelled set - "
        f"Prototypical) over the same episodes: {mean:+.2f} ± {half:.2f} points; "
        f"fit {fit_seconds['SemiSupervisedPrototypicalClassifier']:.0f} s against "
        f"{fit_seconds['PrototypicalClassifier (labelled images only)']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
