"""
Retrieval of characters never seen in training
==============================================

An embedding that compares well retrieves: given a query drawing, its nearest
neighbours in the embedding should be drawings of the same character. A
:class:`~skmeta.TripletEmbedder` trains on the base characters of Omniglot
minimal for 60 seconds; each row shows a query from the novel alphabets (left)
and its 6 nearest neighbours among all other novel drawings, framed green when
they are of the query's character. The title gives precision@1 and MAP@R over
every novel drawing as a query (Musgrave et al., 2020).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import NearestNeighbors

from skmeta import TripletEmbedder
from skmeta.callbacks import TimeLimit
from skmeta.datasets import load_omniglot_minimal
from skmeta.metrics import retrieval_scores

data = load_omniglot_minimal()
embedder = TripletEmbedder(callbacks=[TimeLimit(60)], random_state=0)
Z = embedder.fit(data.X_base, data.y_base).transform(data.X_novel)
scores = retrieval_scores(Z, data.y_novel)

# %%
# Six queries and their nearest neighbours (the query itself left out).
neighbours = NearestNeighbors(n_neighbors=7).fit(Z)
queries = np.random.RandomState(0).choice(len(Z), 6, replace=False)
_, found = neighbours.kneighbors(Z[queries])

fig, axes = plt.subplots(len(queries), 7, figsize=(8, 7.5))
for row, (query, hits) in enumerate(zip(queries, found, strict=True)):
    for col, index in enumerate([query, *hits[1:]]):
        ax = axes[row, col]
        ax.imshow(data.X_novel[index, 0], cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        if col:
            same = data.y_novel[index] == data.y_novel[query]
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if same else "tab:red")
                spine.set_linewidth(2.5)
    alphabet = data.y_novel[query].split("/")[0]
    axes[row, 0].set_ylabel(alphabet.replace("Japanese_(katakana)", "Katakana"))
axes[0, 0].set_title("query", fontsize=9)
fig.suptitle(
    f"novel alphabets: precision@1 {100 * scores['precision_at_1']:.1f} %, "
    f"MAP@R {100 * scores['map_at_r']:.1f} %"
)
fig.tight_layout()
plt.show()
