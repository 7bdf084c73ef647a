"""
Cold-start recommendation: each new user a few-shot task
========================================================

A new user has rated a handful of movies: which of the others will they like?
Cold-start recommendation is few-shot learning whose classes are *shared*:
every user's task has the same two classes, like (at least 4 stars) and
dislike, but the ratings are the user's own. ``fit(X, y, groups=users)``
meta-trains on episodes drawn within one user each; ``adapt`` on a few of a new
user's ratings personalises the model to that user. MeLU (Lee et al., 2019)
is MAML on this problem.

The ratings are MovieLens's (100,004 ratings of 9,066 movies by 671 users),
from the optional extra ``pip install "skmeta[movielens]"``; a movie is
described by its genres, its year and its share of likes among the training
users. The plot gives the per-user ROC AUC of the query movies against the
number of support ratings of each class, for new users only, beside one global
model trained on every training user's ratings, which cannot personalise.
``benchmarks/cold_start.py`` reports the full table (accuracy too, and
movies without the popularity feature).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from skmeta import MAMLClassifier
from skmeta.datasets import load_movielens
from skmeta.model_selection import TaskSplit

data = load_movielens()
y, users = data.y, data.groups
train, test = next(GroupShuffleSplit(test_size=0.3, random_state=0).split(y, y, users))

# %%
# Each movie's share of likes among the training users (shrunk towards the
# overall share by 5 pseudo-ratings) is a feature beside its genres and year.
# Training ratings get it from the other training users (5 folds of users),
# so that no rating's own label leaks into its feature.


def like_share(among, rows, prior=5):
    """Share of likes of the movies of ``rows`` among the ratings ``among``."""
    movies, index = np.unique(data.movies[among], return_inverse=True)
    mean = y[among].mean()
    share = (np.bincount(index, weights=y[among]) + prior * mean) / (
        np.bincount(index) + prior
    )
    known = np.isin(data.movies[rows], movies)
    out = np.full(len(rows), mean)
    out[known] = share[np.searchsorted(movies, data.movies[rows][known])]
    return out


popularity = np.empty(len(y))
popularity[test] = like_share(train, test)
for others, fold in GroupKFold(n_splits=5).split(train, groups=users[train]):
    popularity[train[fold]] = like_share(train[others], train[fold])
X = np.column_stack([data.X, popularity])
X = StandardScaler().fit(X[train]).transform(X).astype(np.float32)

# %%
# Meta-train MAML on tasks of the training users: 2-way (like, dislike),
# 5 ratings of each as support and 10 as queries, 5000 tasks (15 s on 2 CPU
# cores), with an MLP (the default backbone of tabular X). Within groups, the
# episode's classes keep their order, so the meta-learned head knows which
# output means "like" before any fine-tuning.
episodes = dict(n_way=2, k_shot=5, n_query=10)
maml = MAMLClassifier(**episodes, embedding_dim=32, max_epochs=50, random_state=0)
maml.fit(X[train], y[train], groups=users[train])
everyone = HistGradientBoostingClassifier(random_state=0).fit(X[train], y[train])
p_global = everyone.predict_proba(X)[:, 1]

# %%
# Each new user with more than 10 likes and 10 dislikes is a cold start at
# every support size: ``TaskSplit`` draws ``k_shot`` ratings of each class as
# the support set; all the user's other ratings are the queries.
eligible = TaskSplit(k_shot=10).split(None, y[test], users[test])
new_users = [test[np.r_[support, query]] for support, query in eligible]
shots = [1, 2, 5, 10]
auc = {"MAML, adapted to the user": [], "global model": []}
for k in shots:
    personal, shared = [], []
    for rows in new_users:
        support, query = next(
            TaskSplit(k_shot=k, random_state=0).split(
                None, y[rows], np.zeros(len(rows))
            )
        )
        s, q = rows[support], rows[query]
        p = maml.adapt(X[s], y[s]).predict_proba(X[q])[:, 1]
        personal.append(roc_auc_score(y[q], p))
        shared.append(roc_auc_score(y[q], p_global[q]))
    auc["MAML, adapted to the user"].append(personal)
    auc["global model"].append(shared)

# %%
# The global model ranks the movies the same way for everyone. MAML starts
# from what it learnt of all users and fine-tunes towards each user's taste:
# from one rating of each class it ranks worse than the global model (about
# 67 against 69 % ROC AUC on this split), it catches up at 5, and at 10 it
# ranks better (about 70 against 69 %, the intervals still overlapping):
# personalisation starts to pay once a new user has rated a few movies of
# each kind.
fig, ax = plt.subplots(figsize=(6, 4))
for name, values in auc.items():
    values = 100 * np.asarray(values)
    mean = values.mean(1)
    ci = 1.96 * values.std(1) / np.sqrt(values.shape[1])
    ax.errorbar(shots, mean, yerr=ci, marker="o", capsize=3, label=name)
ax.set_xscale("log")
ax.set_xticks(shots, [str(k) for k in shots])
ax.set_xlabel("support ratings of each class (likes = dislikes)")
ax.set_ylabel("ROC AUC of the other movies (%)")
ax.set_title(f"{len(new_users)} new users: mean ± 95% CI over users")
ax.legend()
fig.tight_layout()
plt.show()
