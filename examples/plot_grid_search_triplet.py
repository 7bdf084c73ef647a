"""
Grid search of a learned metric in a Pipeline
=============================================

``make_pipeline(StandardScaler(), TripletEmbedder(), KNeighborsClassifier())``
classifies scikit-learn's digits by nearest neighbours in an embedding trained
with the triplet loss. :class:`~sklearn.model_selection.GridSearchCV` tunes the
embedder like any other step, through ``tripletembedder__margin`` and
``tripletembedder__embedding_dim``; the heat map shows the cross-validated
accuracy of each pair (3 folds, about a minute on 2 CPU cores), and the title
the best one's test accuracy beside scikit-learn's linear learned metric,
:class:`~sklearn.neighbors.NeighborhoodComponentsAnalysis`.

Every class is seen in training here: this is supervised metric learning for a
classifier. To score an embedder on classes it has never seen, give the search
a class-disjoint ``cv`` and a retrieval scorer (see the metric-learning guide).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmeta import TripletEmbedder

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
margins, dims = [0.1, 0.2, 0.5], [8, 16, 32]
pipeline = make_pipeline(
    StandardScaler(),
    TripletEmbedder(max_epochs=10, batches_per_epoch=20, random_state=0),
    KNeighborsClassifier(),
)
search = GridSearchCV(
    pipeline,
    {"tripletembedder__margin": margins, "tripletembedder__embedding_dim": dims},
    cv=3,
).fit(X_train, y_train)
nca = make_pipeline(
    StandardScaler(),
    NeighborhoodComponentsAnalysis(random_state=0),
    KNeighborsClassifier(),
).fit(X_train, y_train)

# %%
# The cross-validated accuracy of every (margin, embedding_dim) pair.
scores = np.empty((len(margins), len(dims)))
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
):
    i = margins.index(params["tripletembedder__margin"])
    j = dims.index(params["tripletembedder__embedding_dim"])
    scores[i, j] = score

fig, ax = plt.subplots(figsize=(6, 4.5))
image = ax.imshow(100 * scores, cmap="viridis")
for i in range(len(margins)):
    for j in range(len(dims)):
        ax.text(j, i, f"{100 * scores[i, j]:.1f}", ha="center", va="center", color="w")
ax.set_xticks(range(len(dims)), dims)
ax.set_yticks(range(len(margins)), margins)
ax.set_xlabel("embedding_dim")
ax.set_ylabel("margin")
fig.colorbar(image, label="cross-validated accuracy (%)")
best = search.best_params_
ax.set_title(
    f"best margin {best['tripletembedder__margin']}, embedding_dim "
    f"{best['tripletembedder__embedding_dim']}: test "
    f"{100 * search.score(X_test, y_test):.1f} %\n(NCA + kNN: "
    f"{100 * nca.score(X_test, y_test):.1f} %)"
)
fig.tight_layout()
plt.show()
