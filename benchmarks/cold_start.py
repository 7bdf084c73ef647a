"""Cold-start recommendation on MovieLens: each new user a few-shot task.

Each user is a task whose classes are like (at least 4 stars) and dislike
(``skmeta.datasets.load_movielens``): a movie is described by its 20 genres
and its release year only. A ``GroupShuffleSplit`` keeps 30 % of the users
apart; the meta-learners train with ``fit(X, y, groups=users)`` on the
others, so that every training episode is one user's ratings. Each user never
seen is a cold start (``skmeta.model_selection.TaskSplit``): ``--k-shot``
liked and as many disliked movies, drawn at random, are the support set, and
every other movie the user rated is a query (users with no more likes or
dislikes than that are left out).
Per user: the accuracy (a like when P(like) >= 0.5) and the ROC AUC of
P(like) over the queries; the table gives the mean ± 95% CI over users.

Rows:

- popularity: the movie's share of likes among the training users, shrunk to
  the overall share (``--prior`` pseudo-ratings; a movie no training user
  rated gets the overall share). The same for every user.
- global model: scikit-learn's ``HistGradientBoostingClassifier`` on the
  movie features, trained on all the training users' ratings. The same for
  every user.
- user's centroids: the nearest class mean of the user's support set, in the
  standardised features: personal, but nothing learnt from other users.
- prototypical, MAML: meta-trained on the training users (an MLP backbone,
  5000 episodes), then ``adapt`` on each new user's support set (MeLU, Lee et
  al. 2019, is MAML on this task).

A second table adds to the movie's features its popularity among the
training users (the first row's number), which only a model that combines
it with the user's support set can personalise.

Run it (the data come with the optional ``movielens`` extra):

    pip install -e ".[movielens]"
    python benchmarks/cold_start.py
"""

import argparse
import time

import numpy as np
from _common import machine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import load_movielens
from skmeta.model_selection import TaskSplit


def meta_learners(k_shot, seed):
    """The meta-learners, each with its training episodes: one user, 2-way."""
    episodes = dict(n_way=2, k_shot=k_shot, n_query=10, random_state=seed)
    return {
        "user's centroids": PrototypicalClassifier(
            backbone="identity", max_epochs=0, **episodes
        ),
        "prototypical": PrototypicalClassifier(
            backbone="mlp", embedding_dim=32, max_epochs=50, **episodes
        ),
        "MAML": MAMLClassifier(
            backbone="mlp", embedding_dim=32, max_epochs=50, **episodes
        ),
    }


def popularity(movies, y, groups, train, test, prior, n_folds=5):
    """Each rating's movie's share of likes, shrunk to the mean by ``prior`` ratings.

    Test rows get the share among all training ratings; training rows get it
    out of fold, among the training users of the other ``n_folds`` - 1 folds
    of users, so that no training rating's own label is in its feature (the
    model would learn to trust it more than it deserves on new users).
    """
    out = np.empty(len(y))
    out[test] = _like_share(movies, y, train, test, prior)
    for others, fold in GroupKFold(n_folds).split(train, groups=groups[train]):
        out[train[fold]] = _like_share(movies, y, train[others], train[fold], prior)
    return out


def _like_share(movies, y, among, rows, prior):
    mean = y[among].mean()
    ids, index = np.unique(movies[among], return_inverse=True)
    share = (np.bincount(index, weights=y[among]) + prior * mean) / (
        np.bincount(index) + prior
    )
    known = np.isin(movies[rows], ids)
    out = np.full(len(rows), mean)
    out[known] = share[np.searchsorted(ids, movies[rows][known])]
    return out


def scored(tasks, y, predict):
    """Per-user accuracy and ROC AUC of ``predict(support, query) -> P(like)``."""
    accuracy, auc = [], []
    for support, query in tasks:
        p = predict(support, query)
        accuracy.append(np.mean((p >= 0.5) == y[query]))
        auc.append(roc_auc_score(y[query], p))
    return accuracy, auc


def summary(values):
    values = np.asarray(values) * 100
    return f"{values.mean():6.2f} ± {1.96 * values.std() / np.sqrt(len(values)):4.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k-shot", type=int, default=5)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--prior", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_movielens()
    y, groups = data.y, data.groups
    split = GroupShuffleSplit(n_splits=1, test_size=args.test_size, random_state=0)
    train, test = next(split.split(data.X, y, groups))
    # A few of a new user's ratings (random), then everything else rated.
    cold_start = TaskSplit(k_shot=args.k_shot, random_state=args.seed)
    tasks = [
        (test[support], test[query])
        for support, query in cold_start.split(None, y[test], groups[test])
    ]
    print(f"machine: {machine()}")
    print(
        f"MovieLens: {len(y)} ratings; {len(np.unique(groups[train]))} training "
        f"users, {len(np.unique(groups[test]))} new users, of whom {len(tasks)} "
        f"have more than {args.k_shot} likes and dislikes (the cold starts)"
    )
    rate = popularity(data.movies, y, groups, train, test, args.prior)
    features = {
        "genres and year": data.X,
        "genres, year and popularity among the training users": np.column_stack(
            [data.X, rate]
        ),
    }
    for described_by, X in features.items():
        X = StandardScaler().fit(X[train]).transform(X).astype(np.float32)
        rows = {"popularity": (scored(tasks, y, lambda s, q: rate[q]), 0.0)}
        start = time.perf_counter()
        model = HistGradientBoostingClassifier(random_state=args.seed)
        model.fit(X[train], y[train])
        seconds = time.perf_counter() - start
        everyone = model.predict_proba(X)[:, 1]
        rows["global model"] = scored(tasks, y, lambda s, q, p=everyone: p[q]), seconds
        for name, learner in meta_learners(args.k_shot, args.seed).items():
            start = time.perf_counter()
            learner.fit(X[train], y[train], groups=groups[train])
            seconds = time.perf_counter() - start

            def personal(s, q, learner=learner, X=X):
                return learner.adapt(X[s], y[s]).predict_proba(X[q])[:, 1]

            rows[name] = scored(tasks, y, personal), seconds
        print(
            f"\nMovies described by {described_by}.\nNew users, {args.k_shot} "
            f"likes + {args.k_shot} dislikes as support: mean ± 95% CI over users (%)"
        )
        print(f"{'method':<18}{'accuracy':>16}{'ROC AUC':>16}{'fit (s)':>9}")
        for name, ((accuracy, auc), seconds) in rows.items():
            print(f"{name:<18}{summary(accuracy):>16}{summary(auc):>16}{seconds:9.1f}")


if __name__ == "__main__":
    main()
