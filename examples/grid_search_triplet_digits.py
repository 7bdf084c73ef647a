"""A learned metric in a Pipeline: grid-search a TripletEmbedder before kNN on digits.

``make_pipeline(StandardScaler(), TripletEmbedder(), KNeighborsClassifier())``
classifies scikit-learn's bundled digits by the nearest neighbours in an
embedding trained with the triplet loss. :class:`~sklearn.model_selection.GridSearchCV`
tunes the embedder like any other step, through ``tripletembedder__margin``
(0.1, 0.2, 0.5) and ``tripletembedder__embedding_dim`` (8, 16, 32), scored by
the pipeline's accuracy with 3-fold cross-validation on the training set.

The baseline is the same pipeline with scikit-learn's linear learned metric,
:class:`~sklearn.neighbors.NeighborhoodComponentsAnalysis`, in place of the
embedder. Both are scored on the same held-out test set (a quarter of the
digits, stratified), and the script prints both accuracies and times.

Every class is seen in training here: this is supervised metric learning for
a classifier. To score an embedder on classes it has never seen, use a
class-disjoint ``cv`` and a retrieval scorer, as in the user guide
(``docs/user_guide/metric_learning.md``).

Runs in well under 3 minutes on 2 CPU cores. Options: ``--help``.
"""

import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmeta import TripletEmbedder

GRID = {
    "tripletembedder__margin": [0.1, 0.2, 0.5],
    "tripletembedder__embedding_dim": [8, 16, 32],
}


def run(*, max_epochs=15, batches_per_epoch=20, n_jobs=None, random_state=0):
    """Grid-search the triplet pipeline and fit the NCA one; return the results.

    Returns
    -------
    dict
        ``search`` (the fitted GridSearchCV), ``triplet_accuracy``,
        ``nca_accuracy`` (on the test set), ``search_seconds`` and
        ``nca_seconds`` (wall-clock fit times).
    """
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state
    )
    embedder = TripletEmbedder(
        max_epochs=max_epochs,
        batches_per_epoch=batches_per_epoch,
        random_state=random_state,
    )
    pipeline = make_pipeline(StandardScaler(), embedder, KNeighborsClassifier())
    search = GridSearchCV(pipeline, GRID, cv=3, n_jobs=n_jobs)
    start = time.perf_counter()
    search.fit(X_train, y_train)
    search_seconds = time.perf_counter() - start

    nca = make_pipeline(
        StandardScaler(),
        NeighborhoodComponentsAnalysis(random_state=random_state),
        KNeighborsClassifier(),
    )
    start = time.perf_counter()
    nca.fit(X_train, y_train)
    nca_seconds = time.perf_counter() - start
    return {
        "search": search,
        "triplet_accuracy": search.score(X_test, y_test),
        "nca_accuracy": nca.score(X_test, y_test),
        "search_seconds": search_seconds,
        "nca_seconds": nca_seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--batches-per-epoch", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=None, help="GridSearchCV's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    results = run(
        max_epochs=args.max_epochs,
        batches_per_epoch=args.batches_per_epoch,
        n_jobs=args.n_jobs,
        random_state=args.seed,
    )
    search = results["search"]
    print("cross-validated accuracy of each candidate:")
    for params, mean, std in zip(
        search.cv_results_["params"],
        search.cv_results_["mean_test_score"],
        search.cv_results_["std_test_score"],
        strict=True,
    ):
        print(
            f"  margin={params['tripletembedder__margin']:<4} "
            f"embedding_dim={params['tripletembedder__embedding_dim']:<3} "
            f"{mean:.3f} ± {std:.3f}"
        )
    print(f"best: {search.best_params_}")
    print(
        f"\n{'pipeline':<38} {'test accuracy':>13} {'fit time':>9}\n"
        f"{'StandardScaler+TripletEmbedder+kNN':<38} "
        f"{results['triplet_accuracy']:>13.3f} "
        f"{results['search_seconds']:>8.1f}s  (grid search, 9 x 3 fits + refit)\n"
        f"{'StandardScaler+NCA+kNN':<38} {results['nca_accuracy']:>13.3f} "
        f"{results['nca_seconds']:>8.1f}s  (one fit)"
    )


if __name__ == "__main__":
    main()
