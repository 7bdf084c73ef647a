"""
Accuracy against the number of shots
=====================================

How much does each labelled example of a new class help? The three
metric-based few-shot classifiers, meta-trained for 25 seconds each on the
base characters of Omniglot minimal (Matching Networks with the paper's
cosine attention), and the nearest class mean of the raw pixels, classify
5-way episodes of the novel alphabets with 1, 2, 5 and 10 shots per class (mean
accuracy over 300 episodes of 10 queries per class, with 95% confidence bars).

The learned metrics need far fewer shots than the pixels: one drawing of a new
character is worth more to them than ten are to the raw-pixel rule. With
``distance="sqeuclidean", temperature=1`` a Matching Network 1-shot is a
Prototypical Network exactly; the cosine version here levels off lower (the
methods guide has the 20-minute figures).
"""

import matplotlib.pyplot as plt
from torch import nn

from skmeta import MatchingClassifier, PrototypicalClassifier, RelationClassifier
from skmeta.callbacks import TimeLimit
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes

data = load_omniglot_minimal()
models = {
    name: cls(rotations=True, callbacks=[TimeLimit(25)], random_state=0)
    for name, cls in [
        ("PrototypicalClassifier", PrototypicalClassifier),
        ("MatchingClassifier", MatchingClassifier),
        ("RelationClassifier", RelationClassifier),
    ]
}
models |= {
    "raw pixels, nearest class mean": PrototypicalClassifier(
        backbone=nn.Flatten(), max_epochs=0, test_time_views=1
    ),
}
for model in models.values():
    model.fit(data.X_base, data.y_base)

# %%
# Score each model on the same episodes for each number of shots.
shots = [1, 2, 5, 10]
fig, ax = plt.subplots(figsize=(7, 4.5))
for name, model in models.items():
    scores = [
        evaluate_episodes(
            model,
            data.X_novel,
            data.y_novel,
            n_way=5,
            k_shot=k,
            n_query=10,
            n_episodes=300,
            random_state=0,
        )
        for k in shots
    ]
    ax.errorbar(
        shots,
        [100 * s.mean for s in scores],
        yerr=[100 * s.ci95 for s in scores],
        marker="o",
        capsize=3,
        label=name,
    )
ax.set_xscale("log")
ax.set_xticks(shots, [str(k) for k in shots])
ax.set_xlabel("shots per class (support samples)")
ax.set_ylabel("5-way accuracy on novel characters (%)")
ax.set_ylim(0, 100)
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
ax.set_title("Omniglot minimal, novel alphabets: mean ± 95% CI, 300 episodes")
fig.tight_layout()
plt.show()
