"""Cold-start recommendation on MovieLens, both ways: a new user, a new movie.

User cold start. Each user is a task whose classes are like (at least 4 stars)
and dislike (``skmeta.datasets.load_movielens``). A ``GroupShuffleSplit``
keeps 30 % of the users apart; the meta-learners train with ``fit(X, y,
groups=users)`` on the others, so that every training episode is one user's
ratings. Each user never seen is a cold start
(``skmeta.model_selection.TaskSplit``): ``--k-shot`` liked and as many
disliked movies, drawn at random, are the support set, and every other movie
the user rated is a query (users with no more likes or dislikes than that
are left out). Movies are described by three sets of features, one table
each: their 20 genres and release year; the same and their popularity
among the training users; and the same and their collaborative factors
(``--factors`` components of a truncated SVD of the training users'
user-centred rating matrix). Popularity and factors are computed out of
fold for training ratings (from the training users of the other folds, the
factors rotated onto those of all training users by orthogonal Procrustes),
so that no training rating's own label is in its features.

Item cold start. Each movie is a task: 30 % of the movies are kept apart,
and each of them with more than ``--k-shot`` likes and dislikes is a cold
start whose support set is its first ``--k-shot`` likers and first
``--k-shot`` dislikers in time order; its other raters are the queries. A
rating is then described by its rater: the user's share of likes among the
training movies and the user's collaborative factors from the training
movies' ratings (both out of fold over movies), beside the movie's genres and
year (the same within a task).

Per task: the accuracy (a like when P(like) >= 0.5) and the ROC AUC of
P(like) over the queries; the tables give the mean ± 95% CI over tasks.

Rows:

- popularity: the movie's share of likes among the training users (for a
  new movie: the user's share of likes among the training movies), shrunk to
  the overall share by ``--prior`` pseudo-ratings. The same for every user
  (every movie).
- global model: scikit-learn's ``HistGradientBoostingClassifier`` on the
  features, trained on all the training ratings. Not personal.
- centroids: the nearest class mean of the support set, in the standardised
  features: personal, but nothing learnt from other tasks.
- prototypical, MAML: meta-trained on the training tasks (an MLP backbone,
  5000 episodes), then ``adapt`` on each new task's support set (MeLU, Lee et
  al. 2019, is MAML on the user cold start).

Run it (the data come with the optional ``movielens`` extra):

    pip install -e ".[movielens]"
    python benchmarks/cold_start.py
"""

import argparse
import time

import numpy as np
from _common import machine
from scipy.linalg import orthogonal_procrustes
from scipy.sparse import csr_matrix
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import load_movielens
from skmeta.model_selection import TaskSplit


def meta_learners(k_shot, seed):
    """The meta-learners, each with its training episodes: one task, 2-way."""
    episodes = dict(n_way=2, k_shot=k_shot, n_query=10, random_state=seed)
    return {
        "centroids": PrototypicalClassifier(
            backbone="identity", max_epochs=0, **episodes
        ),
        "prototypical": PrototypicalClassifier(
            backbone="mlp", embedding_dim=32, max_epochs=50, **episodes
        ),
        "MAML": MAMLClassifier(
            backbone="mlp", embedding_dim=32, max_epochs=50, **episodes
        ),
    }


def out_of_fold(compute, groups, train, test, n_folds=5):
    """A feature of every row, ``compute(among, rows)``, never from the row's group.

    Test rows get ``compute(train, test)``; training rows get it from the
    training groups of the other ``n_folds - 1`` folds, so that no training
    row's own target is in its feature (a model would learn to trust it more
    than it deserves on new tasks).
    """
    first = compute(train, test)
    out = np.empty((len(groups), *first.shape[1:]))
    out[test] = first
    for others, fold in GroupKFold(n_folds).split(train, groups=groups[train]):
        out[train[fold]] = compute(train[others], train[fold])
    return out


def shrunk_mean(keys, values, prior):
    """``compute`` of the mean of ``values`` per key, shrunk by ``prior`` pseudo-values.

    The mean of a row's key (a movie, a user) among the rows ``among``, pulled
    towards the mean of all of them; a key absent from ``among`` gets that
    overall mean.
    """

    def compute(among, rows):
        mean = values[among].mean()
        ids, index = np.unique(keys[among], return_inverse=True)
        share = (np.bincount(index, weights=values[among]) + prior * mean) / (
            np.bincount(index) + prior
        )
        known = np.isin(keys[rows], ids)
        out = np.full(len(rows), mean)
        out[known] = share[np.searchsorted(ids, keys[rows][known])]
        return out

    return compute


class RatingFactors:
    """``compute`` of collaborative factors: a truncated SVD of the rating matrix.

    The matrix has a row per ``others`` (users) and a column per ``keys``
    (movies) of the rows ``among``, holding each rating minus its row's mean
    (0 where there is no rating); a key's factors are its column's
    coordinates, scaled by the singular values. SVDs of different rows give
    factors in different bases, so each is rotated onto the reference one
    (the SVD of ``reference`` rows) by orthogonal Procrustes over the keys
    both know. A key absent from ``among`` gets zeros.
    """

    def __init__(self, keys, others, ratings, n_components, reference, seed):
        self.keys, self.others, self.ratings = keys, others, ratings
        self.n_components, self.seed = n_components, seed
        self.ref_ids, self.ref = self._svd(reference)

    def _svd(self, among):
        ids, column = np.unique(self.keys[among], return_inverse=True)
        _, row = np.unique(self.others[among], return_inverse=True)
        r = self.ratings[among]
        centred = r - (np.bincount(row, weights=r) / np.bincount(row))[row]
        matrix = csr_matrix((centred, (row, column)), shape=(row.max() + 1, len(ids)))
        svd = TruncatedSVD(self.n_components, random_state=self.seed).fit(matrix)
        return ids, svd.components_.T * svd.singular_values_

    def __call__(self, among, rows):
        ids, factors = self._svd(among)
        both, mine, theirs = np.intersect1d(ids, self.ref_ids, return_indices=True)
        rotation, _ = orthogonal_procrustes(factors[mine], self.ref[theirs])
        factors = factors @ rotation
        known = np.isin(self.keys[rows], ids)
        out = np.zeros((len(rows), self.n_components))
        out[known] = factors[np.searchsorted(ids, self.keys[rows][known])]
        return out


def scored(tasks, y, predict):
    """Per-task accuracy and ROC AUC of ``predict(support, query) -> P(like)``."""
    accuracy, auc = [], []
    for support, query in tasks:
        p = predict(support, query)
        accuracy.append(np.mean((p >= 0.5) == y[query]))
        auc.append(roc_auc_score(y[query], p))
    return accuracy, auc


def summary(values, scale=100, decimals=2):
    """``mean ± 95% CI half-width`` of per-task values, times ``scale``."""
    values = np.asarray(values) * scale
    half_width = 1.96 * values.std() / np.sqrt(len(values))
    return f"{values.mean():6.{decimals}f} ± {half_width:4.{decimals}f}"


def first_of_each_class(rows, y, timestamps, k_shot):
    """The first ``k_shot`` likes and dislikes of ``rows`` in time order, and the rest.

    ``None`` when ``rows`` has no more than ``k_shot`` of a class (the queries
    would miss it).
    """
    order = rows[np.lexsort((rows, timestamps[rows]))]
    firsts = [order[y[order] == c][:k_shot] for c in (0, 1)]
    if any(np.sum(y[rows] == c) <= k_shot for c in (0, 1)):
        return None
    support = np.concatenate(firsts)
    return support, np.setdiff1d(rows, support)


def print_cold_starts(title, kind, groups, train, test, tasks, k_shot):
    """Print how many ``kind`` (users, movies) train, are new, and are cold starts."""
    print(
        f"\n{title}. {len(np.unique(groups[train]))} training {kind}, "
        f"{len(np.unique(groups[test]))} new {kind}, of which {len(tasks)} have more "
        f"than {k_shot} likes and dislikes (the cold starts)"
    )


def rating_features(keys, groups, data, train, test, args):
    """``keys``' shrunk share of likes and rating factors, out of fold over ``groups``.

    For a user cold start, ``keys`` are the movies (their popularity) and
    ``groups`` the users; for an item cold start, the other way round (the
    users' generosity). Returns the share, of shape (n_ratings,), and the
    factors, of shape (n_ratings, ``args.factors``).
    """
    share = out_of_fold(shrunk_mean(keys, data.y, args.prior), groups, train, test)
    factors = RatingFactors(keys, groups, data.ratings, args.factors, train, args.seed)
    return share, out_of_fold(factors, groups, train, test)


def compare(tasks, X, y, groups, train, baseline, k_shot, seed, title):
    """Print the table of one cold start: each row's scores over ``tasks``."""
    X = StandardScaler().fit(X[train]).transform(X).astype(np.float32)
    rows = {"popularity": (scored(tasks, y, lambda s, q: baseline[q]), 0.0)}
    start = time.perf_counter()
    model = HistGradientBoostingClassifier(random_state=seed)
    model.fit(X[train], y[train])
    seconds = time.perf_counter() - start
    everyone = model.predict_proba(X)[:, 1]
    rows["global model"] = scored(tasks, y, lambda s, q: everyone[q]), seconds
    for name, learner in meta_learners(k_shot, seed).items():
        start = time.perf_counter()
        learner.fit(X[train], y[train], groups=groups[train])
        seconds = time.perf_counter() - start

        def personal(s, q, learner=learner):
            return learner.adapt(X[s], y[s]).predict_proba(X[q])[:, 1]

        rows[name] = scored(tasks, y, personal), seconds
    print(f"\n{title}: mean ± 95% CI over tasks (%)")
    print(f"{'method':<18}{'accuracy':>16}{'ROC AUC':>16}{'fit (s)':>9}")
    for name, ((accuracy, auc), seconds) in rows.items():
        print(f"{name:<18}{summary(accuracy):>16}{summary(auc):>16}{seconds:9.1f}")


def user_cold_start(data, args):
    """New users: ``k_shot`` random likes and dislikes each as support."""
    y, users, movies = data.y, data.groups, data.movies
    split = GroupShuffleSplit(n_splits=1, test_size=args.test_size, random_state=0)
    train, test = next(split.split(data.X, y, users))
    cold_start = TaskSplit(k_shot=args.k_shot, random_state=args.seed)
    tasks = [
        (test[support], test[query])
        for support, query in cold_start.split(None, y[test], users[test])
    ]
    print_cold_starts(
        "USER COLD START", "users", users, train, test, tasks, args.k_shot
    )
    rate, factors = rating_features(movies, users, data, train, test, args)
    with_popularity = np.column_stack([data.X, rate])
    features = {
        "genres and year": data.X,
        "genres, year and popularity": with_popularity,
        f"genres, year, popularity and {args.factors} rating factors": (
            np.column_stack([with_popularity, factors])
        ),
    }
    for described_by, X in features.items():
        title = (
            f"New users, {args.k_shot} likes + {args.k_shot} dislikes as support; "
            f"movies described by {described_by}"
        )
        compare(tasks, X, y, users, train, rate, args.k_shot, args.seed, title)


def item_cold_start(data, args):
    """New movies: the first ``k_shot`` likers and dislikers each as support."""
    y, users, movies = data.y, data.groups, data.movies
    split = GroupShuffleSplit(n_splits=1, test_size=args.test_size, random_state=0)
    train, test = next(split.split(data.X, y, movies))
    tasks = []
    for movie in np.unique(movies[test]):
        task = first_of_each_class(
            test[movies[test] == movie], y, data.timestamps, args.k_shot
        )
        if task is not None:
            tasks.append(task)
    print_cold_starts(
        "ITEM COLD START", "movies", movies, train, test, tasks, args.k_shot
    )
    generosity, factors = rating_features(users, movies, data, train, test, args)
    X = np.column_stack([data.X, generosity, factors])
    title = (
        f"New movies, their first {args.k_shot} likers + {args.k_shot} dislikers "
        f"as support; a rating described by the movie's genres and year, the "
        f"user's share of likes and {args.factors} rating factors"
    )
    compare(tasks, X, y, movies, train, generosity, args.k_shot, args.seed, title)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k-shot", type=int, default=5)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--prior", type=float, default=5.0)
    parser.add_argument("--factors", type=int, default=16)
    parser.add_argument(
        "--cold-start", choices=["user", "item", "both"], default="both"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = load_movielens()
    print(f"machine: {machine()}")
    print(f"MovieLens: {len(data.y)} ratings")
    if args.cold_start in ("user", "both"):
        user_cold_start(data, args)
    if args.cold_start in ("item", "both"):
        item_cold_start(data, args)


if __name__ == "__main__":
    main()
