"""
Why five base classes cannot teach a metric
===========================================

Meta-learning needs many base classes. scikit-learn's digits have ten: a
:class:`~skmeta.PrototypicalClassifier` meta-trained on 0-4 and tested 5-way
5-shot on 5-9 does worse than before training, and worse than the nearest
class mean of the raw pixels, because it learns to tell 0-4 apart instead of
what handwriting has in common. ``early_stopping=True`` holds out two base
digits, sees the held-out loss rise from the first epoch, and returns the
untrained weights. On Omniglot minimal, with 136 base characters, the same
method gains about 50 points over the pixels (see the other examples).
"""

import matplotlib.pyplot as plt
from torch import nn

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_digits_fewshot
from skmeta.model_selection import evaluate_episodes

data = load_digits_fewshot()
models = {
    "raw pixels": PrototypicalClassifier(backbone=nn.Flatten(), max_epochs=0),
    "untrained MLP": PrototypicalClassifier(max_epochs=0, random_state=0),
    "meta-trained, 10 epochs": PrototypicalClassifier(max_epochs=10, random_state=0),
    "early_stopping=True": PrototypicalClassifier(
        max_epochs=10, early_stopping=True, random_state=0
    ),
}
scores = {}
for name, model in models.items():
    model.fit(data.X_base, data.y_base)
    scores[name] = evaluate_episodes(
        model, data.X_novel, data.y_novel, n_way=5, k_shot=5, random_state=0
    )

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.barh(
    list(scores),
    [100 * s.mean for s in scores.values()],
    xerr=[100 * s.ci95 for s in scores.values()],
    color=["tab:gray", "tab:cyan", "tab:red", "tab:green"],
)
for i, s in enumerate(scores.values()):
    ax.text(100 * s.mean + 1, i, f"{100 * s.mean:.1f} %", va="center")
ax.set_xlim(0, 105)
ax.invert_yaxis()
ax.set_xlabel("5-way 5-shot accuracy on the novel digits 5-9 (%), 600 episodes")
ax.set_title("digits: base 0-4, novel 5-9")
fig.tight_layout()
plt.show()
