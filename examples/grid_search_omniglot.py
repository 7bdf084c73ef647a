"""Grid search of a few-shot classifier on Omniglot, scored on held-out classes.

:class:`~sklearn.model_selection.GridSearchCV` tunes a
:class:`skmeta.PrototypicalClassifier` over its embedding size
(``embedding_dim``) and the width of its training episodes (``n_way``) on the
base characters of Omniglot minimal (``background_small1``: 136 characters,
20 drawings each), embedded in skmeta.

Two pieces make a plain grid search a few-shot one:

- ``cv=ClassKFold(...)`` splits by class, so each candidate meta-trains on some
  characters and is scored on characters it has never seen, as at test time;
  a sample-wise split would score it on characters it trained on.
- ``scoring=EpisodicScorer(...)`` scores a fitted candidate by its mean query
  accuracy over N-way K-shot episodes drawn from the held-out characters; with
  an int ``random_state`` every candidate is scored on the same episodes.

Meta-training is kept tiny (a few dozen episodes per candidate) so that the
example runs in under a minute on two CPU cores: the scores rank candidates,
they are not the accuracy of a fully trained model.

Run it with::

    python examples/grid_search_omniglot.py
"""

import argparse
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import ClassKFold, EpisodicScorer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--episodes-per-epoch", type=int, default=20, help="default: 20"
    )
    parser.add_argument("--max-epochs", type=int, default=1, help="default: 1")
    parser.add_argument("--n-splits", type=int, default=2, help="default: 2")
    args = parser.parse_args(argv)

    split = load_omniglot_minimal()
    X, y = split.X_base, split.y_base
    print(
        f"Omniglot background_small1: {len(np.unique(y))} characters, {len(y)} images"
    )

    estimator = PrototypicalClassifier(
        max_epochs=args.max_epochs,
        episodes_per_epoch=args.episodes_per_epoch,
        random_state=0,
    )
    search = GridSearchCV(
        estimator,
        param_grid={"embedding_dim": [32, 64], "n_way": [5, 20]},
        cv=ClassKFold(n_splits=args.n_splits),
        scoring=EpisodicScorer(n_way=5, k_shot=1, n_query=15, n_episodes=100),
        refit=True,  # then refit the best candidate on all 136 characters
    )
    start = time.perf_counter()
    search.fit(X, y)
    print(
        f"{len(search.cv_results_['params'])} candidates x {args.n_splits} "
        f"class-disjoint folds, and the refit, in {time.perf_counter() - start:.0f} s"
    )

    results = search.cv_results_
    print(
        "\n5-way 1-shot accuracy on the held-out characters, mean ± std over the "
        f"{args.n_splits} folds:\n"
    )
    print("embedding_dim  n_way  accuracy (%)     rank")
    for i in np.argsort(results["rank_test_score"]):
        params = results["params"][i]
        mean = 100 * results["mean_test_score"][i]
        std = 100 * results["std_test_score"][i]
        rank = results["rank_test_score"][i]
        print(
            f"{params['embedding_dim']:>13}  {params['n_way']:>5}  "
            f" {mean:6.2f} ± {std:<5.2f}   {rank:>4}"
        )
    print(f"\nbest: {search.best_params_}")
    print(f"refitted on all {len(np.unique(y))} characters: {search.best_estimator_!r}")


if __name__ == "__main__":
    main()
