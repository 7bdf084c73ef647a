"""Grid search of a few-shot classifier on Omniglot, scored on held-out classes.

:class:`~sklearn.model_selection.GridSearchCV` tunes a
:class:`skmeta.PrototypicalClassifier` over its embedding size
(``embedding_dim``) and the width of its training episodes (``n_way``) on the
Omniglot subset ``background_small1`` (136 characters, 20 drawings each).

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

The archive ``images_background_small1.zip`` is looked for in
``<data-home>/omniglot/`` and ``<data-home>/``, and downloaded there when
missing; without ``--data-home``, the data home is ``$SKMETA_DATA``, else
``~/skmeta_data``. For example::

    python examples/grid_search_omniglot.py --data-home ../shared/data
"""

import argparse
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_omniglot
from skmeta.model_selection import ClassKFold, EpisodicScorer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None, help="default: skmeta's rules")
    parser.add_argument(
        "--episodes-per-epoch", type=int, default=20, help="default: 20"
    )
    parser.add_argument("--max-epochs", type=int, default=1, help="default: 1")
    parser.add_argument("--n-splits", type=int, default=2, help="default: 2")
    args = parser.parse_args(argv)

    X, y = load_omniglot("background_small1", data_home=args.data_home, return_X_y=True)
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
