"""MovieLens ratings as few-shot regression, each user a task (MeLU's set-up).

The users with 13 to 100 ratings (Lee et al., 2019, MeLU's selection; 413 of
the 671 users of ``skmeta.datasets.load_movielens``) are split by a
``GroupShuffleSplit``, 30 % of them new. Each new user's ratings are put in
time order: the first ``K`` are the support set (``--shots``, 5 and 10), the
others the queries. A rating is described by its movie: the 20 genres and
the release year, the movie's mean rating among the training users (shrunk
to the overall mean by ``--prior`` pseudo-ratings), and its ``--factors``
collaborative factors (a truncated SVD of the training users' user-centred
rating matrix); the last two out of fold for training ratings (see
``cold_start.py``), so that no training rating is in its own features.
MovieLens "latest small" has no user features (MeLU's MovieLens-1M has age,
gender, occupation, zip code).

Rows, each scored by the mean absolute error of the query ratings of each
new user, mean ± 95 % CI over users:

- user's mean: the mean of the user's support ratings, for every query.
- global model: scikit-learn's ``HistGradientBoostingRegressor`` on the
  features, trained on all the training users' ratings. Not personal.
- global model + user's offset: the global model's prediction plus the
  user's mean residual on the support set (a per-user bias).
- ``MAMLRegressor``, ``ReptileRegressor``: meta-trained with ``fit(X, y,
  groups=users)`` on the training users (Finn et al.'s 40-40 ReLU network on
  the standardised features, targets centred on the training mean), a fixed
  number of tasks; then ``adapt`` to each new user's support set. MeLU is
  MAML on this task (with user features and embedding layers).

Run it from the repository root (the data come with the ``movielens``
extra)::

    pip install -e ".[movielens]"
    python benchmarks/movielens_regression.py
"""

import argparse
import time

import numpy as np
import torch
from _common import machine
from cold_start import RatingFactors, out_of_fold, shrunk_mean, summary
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from skmeta import MAMLRegressor, ReptileRegressor

#: MeLU's users: at least 13 and at most 100 ratings.
MIN_RATINGS, MAX_RATINGS = 13, 100


def first_ratings(rows, timestamps, k_shot):
    """The first ``k_shot`` of ``rows`` in time order, and the others."""
    order = rows[np.lexsort((rows, timestamps[rows]))]
    return order[:k_shot], order[k_shot:]


def meta_learners(k_shot, n_tasks, seed):
    """The meta-learners, each meta-trained on ``n_tasks`` tasks of the users."""
    tasks = dict(k_shot=k_shot, n_query=MIN_RATINGS - k_shot, max_epochs=1)
    return {
        "MAMLRegressor": MAMLRegressor(
            inner_lr=0.05, episodes_per_epoch=n_tasks, random_state=seed, **tasks
        ),
        "ReptileRegressor": ReptileRegressor(
            episodes_per_epoch=n_tasks, random_state=seed, **tasks
        ),
    }


def errors(tasks, ratings, predict):
    """Per-user mean absolute error of ``predict(support, query) -> ratings``."""
    return [np.mean(np.abs(predict(s, q) - ratings[q])) for s, q in tasks]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--prior", type=float, default=5.0)
    parser.add_argument("--factors", type=int, default=16)
    parser.add_argument(
        "--tasks", type=int, default=10000, help="meta-training tasks of each model"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        from skmeta.datasets import load_movielens

        data = load_movielens()
    except ImportError as error:
        raise SystemExit(f"MovieLens is not available here, skipped: {error}") from None
    users, movies, ratings = data.groups, data.movies, data.ratings
    _, index, counts = np.unique(users, return_inverse=True, return_counts=True)
    kept = np.flatnonzero(
        (counts[index] >= MIN_RATINGS) & (counts[index] <= MAX_RATINGS)
    )
    split = GroupShuffleSplit(n_splits=1, test_size=args.test_size, random_state=0)
    train, test = (kept[rows] for rows in next(split.split(kept, groups=users[kept])))
    mean_rating = shrunk_mean(movies, ratings, args.prior)
    factors = RatingFactors(movies, users, ratings, args.factors, train, args.seed)
    X = np.column_stack(
        [
            data.X,
            out_of_fold(mean_rating, users, train, test),
            out_of_fold(factors, users, train, test),
        ]
    )
    X = StandardScaler().fit(X[train]).transform(X).astype(np.float32)
    offset = ratings[train].mean()
    y = (ratings - offset).astype(np.float32)
    print(f"machine: {machine()}")
    print(
        f"MovieLens users with {MIN_RATINGS} to {MAX_RATINGS} ratings: "
        f"{len(np.unique(users[train]))} training users ({len(train)} ratings), "
        f"{len(np.unique(users[test]))} new users ({len(test)} ratings); "
        f"{args.tasks} meta-training tasks a model"
    )
    start = time.perf_counter()
    model = HistGradientBoostingRegressor(random_state=args.seed)
    everyone = model.fit(X[train], ratings[train]).predict(X)
    global_seconds = time.perf_counter() - start
    new_users = [test[users[test] == user] for user in np.unique(users[test])]
    for k_shot in args.shots:
        tasks = [first_ratings(rows, data.timestamps, k_shot) for rows in new_users]
        rows = {
            "user's mean": (
                errors(tasks, ratings, lambda s, q: np.full(len(q), ratings[s].mean())),
                0.0,
            ),
            "global model": (
                errors(tasks, ratings, lambda s, q: everyone[q]),
                global_seconds,
            ),
            "global model + user's offset": (
                errors(
                    tasks,
                    ratings,
                    lambda s, q: everyone[q] + np.mean(ratings[s] - everyone[s]),
                ),
                global_seconds,
            ),
        }
        for name, learner in meta_learners(k_shot, args.tasks, args.seed).items():
            start = time.perf_counter()
            learner.fit(X[train], y[train], groups=users[train])
            seconds = time.perf_counter() - start

            def personal(s, q, learner=learner):
                return learner.adapt(X[s], y[s]).predict(X[q]) + offset

            rows[name] = errors(tasks, ratings, personal), seconds
        print(
            f"\nNew users, their first {k_shot} ratings as support, the other "
            f"{sum(len(q) for _, q in tasks)} as queries: mean absolute error "
            "(stars), mean ± 95% CI over users"
        )
        print(f"{'method':<30}{'MAE':>16}{'fit (s)':>9}")
        for name, (values, seconds) in rows.items():
            print(f"{name:<30}{summary(values, scale=1, decimals=3):>16}{seconds:9.1f}")


if __name__ == "__main__":
    main()
