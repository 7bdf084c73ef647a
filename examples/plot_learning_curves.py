"""
Learning curves on held-out classes
===================================

``validation_fraction=0.1`` holds out a tenth of the base characters, whole,
and after each epoch scores the network on fixed validation episodes of them:
``history_`` then records ``valid_loss`` and ``valid_acc`` beside the training
loss, so over-fitting to the base classes shows, and skorch's
``EarlyStopping`` and ``Checkpoint`` work on it. Here 8 epochs of 20 episodes
(about a minute on 2 CPU cores) on Omniglot minimal.
"""

import matplotlib.pyplot as plt

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_omniglot_minimal

data = load_omniglot_minimal()
budget = dict(max_epochs=8, episodes_per_epoch=20)  # about a minute
clf = PrototypicalClassifier(
    rotations=True, validation_fraction=0.1, **budget, random_state=0
).fit(data.X_base, data.y_base)

# %%
# Everything skorch recorded is in ``history_``: per epoch, and per episode.
history = clf.history_
epochs = history[:, "epoch"]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(epochs, history[:, "train_loss"], marker="o", label="training episodes")
left.plot(epochs, history[:, "valid_loss"], marker="o", label="held-out classes")
left.set_xlabel("epoch")
left.set_ylabel("query cross-entropy")
left.legend()
left.set_title("loss")
right.plot(epochs, [100 * a for a in history[:, "valid_acc"]], marker="o")
right.set_xlabel("epoch")
right.set_ylabel("accuracy (%)")
right.set_title(
    f"accuracy of {clf.n_validation_episodes} validation episodes (held-out classes)"
)
for ax in (left, right):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
