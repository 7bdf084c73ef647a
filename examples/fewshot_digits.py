"""Few-shot digits: why five base classes cannot teach a metric.

Meta-train a :class:`skmeta.PrototypicalClassifier` on the base digits 0-4,
then give it a support set of 5 images of each novel digit 5-9 with ``adapt``
(the meta-learned weights do not change) and classify the other novel images.
Three references use the same support sets: scikit-learn's
:class:`~sklearn.neighbors.NearestCentroid` on the raw pixels (the same
nearest-prototype rule without a learned embedding), the same network before
meta-training, and meta-training with ``early_stopping=True``, which holds out
two base digits and keeps the weights that do best on them.

What it prints with the defaults (100 support sets): the raw pixels 88.91 %,
the untrained network 83.96 %, meta-trained for 10 epochs 60.25 %, and with
early stopping 83.96 %: no epoch beat the untrained start on the held-out
digits, so its weights came back.
Telling 0-4 apart, the network learns features of 0-4, not of handwriting: with
so few base classes, meta-training specialises instead of transferring, and
held-out validation classes are what reveal it. On Omniglot minimal, with 136
base characters (544 with rotations), the same method gains 50 points over the
raw pixels (see the README). On tabular data with few classes, a metric
learner in a Pipeline (``examples/grid_search_triplet_digits.py``) is the
better tool.

One support set is a noisy estimate, so the comparison is repeated over
``--draws`` random support sets, the same for both models, and reported as the
mean accuracy with its 95% confidence interval.

Run ``python examples/fewshot_digits.py --help`` for the options.
"""

import argparse
import warnings

import numpy as np
from sklearn.neighbors import NearestCentroid

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_digits_fewshot


def draw_support(y, k_shot, rng):
    """Indices of ``k_shot`` random samples of each class of y, and the rest."""
    support = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), k_shot, replace=False)
            for c in np.unique(y)
        ]
    )
    query = np.setdiff1d(np.arange(len(y)), support)
    return support, query


def mean_ci95(values):
    values = np.asarray(values)
    return values.mean(), 1.96 * values.std() / np.sqrt(len(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k-shot", type=int, default=5, help="default: 5")
    parser.add_argument("--draws", type=int, default=100, help="default: 100")
    parser.add_argument("--max-epochs", type=int, default=10, help="default: 10")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    args = parser.parse_args(argv)

    data = load_digits_fewshot()
    print(
        f"base digits {sorted(set(data.y_base.tolist()))}: {len(data.y_base)} "
        f"images; novel digits {sorted(set(data.y_novel.tolist()))}: "
        f"{len(data.y_novel)} images"
    )

    models = {
        f"meta-trained, {args.max_epochs} epochs": PrototypicalClassifier(
            max_epochs=args.max_epochs, random_state=args.seed
        ),
        "untrained (max_epochs=0)": PrototypicalClassifier(
            max_epochs=0, random_state=args.seed
        ),
        "early_stopping=True": PrototypicalClassifier(
            max_epochs=args.max_epochs, early_stopping=True, random_state=args.seed
        ),
    }
    for model in models.values():
        model.fit(data.X_base, data.y_base)  # meta-train on the base digits only

    rng = np.random.RandomState(args.seed)
    scores = {name: [] for name in models} | {"NearestCentroid (raw pixels)": []}
    for _ in range(args.draws):
        support, query = draw_support(data.y_novel, args.k_shot, rng)
        X_s, y_s = data.X_novel[support], data.y_novel[support]
        X_q, y_q = data.X_novel[query], data.y_novel[query]

        for name, model in models.items():
            model.adapt(X_s, y_s)  # novel classes, same meta-learned weights
            scores[name].append(model.score(X_q, y_q))

        with warnings.catch_warnings():
            # The always-blank border pixels have zero variance within each
            # class; NearestCentroid warns, harmlessly for its Euclidean rule.
            warnings.simplefilter("ignore", (UserWarning, RuntimeWarning))
            baseline = NearestCentroid().fit(X_s, y_s)
        scores["NearestCentroid (raw pixels)"].append(baseline.score(X_q, y_q))

    print(
        f"\n{len(np.unique(data.y_novel))}-way {args.k_shot}-shot on the novel "
        f"digits, {len(query)} queries per support set, {args.draws} support sets:"
    )
    for name, accuracies in scores.items():
        mean, ci = mean_ci95(accuracies)
        print(f"  {name:<30} {100 * mean:6.2f} ± {100 * ci:.2f} %")
    stopped = models["early_stopping=True"]
    print(
        f"\nearly stopping: {stopped.stop_reason_} after {len(stopped.history_)} "
        "epochs; held-out valid_loss per epoch "
        f"{[round(v, 3) for v in stopped.history_[:, 'valid_loss']]}"
    )


if __name__ == "__main__":
    main()
