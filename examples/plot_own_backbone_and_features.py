"""
Your own backbone, and your own features
========================================

Any :class:`torch.nn.Module` that maps a batch of samples to a batch of
embeddings ``(batch, d)`` is a backbone: pass the instance (it is copied, never
trained in place) or its class (built with ``in_channels``/``out_channels`` or
``in_features``/``out_features`` where it takes them). A torchvision model
without its weights works the same way, e.g. ``torchvision.models.resnet18(
num_classes=64)`` on 3-channel images.

Users who already have embeddings from their own model need no training at
all: ``backbone=torch.nn.Identity()`` with ``max_epochs=0`` makes a
nearest-prototype few-shot classifier of the features as they are. The plot
compares, on the novel alphabets of Omniglot minimal, the raw pixels, a small
custom network meta-trained for 45 seconds, and that network's embeddings
reused as pre-computed features by an identity backbone (the same accuracy: the
same features, compared the same way).
"""

import matplotlib.pyplot as plt
from torch import nn

from skmeta import PrototypicalClassifier
from skmeta.callbacks import TimeLimit
from skmeta.datasets import load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes


class SmallConvNet(nn.Module):
    """Two convolutions and a linear layer: 28x28 images to 64-d embeddings."""

    def __init__(self, in_channels=1, out_features=64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, out_features),
        )

    def forward(self, x):
        return self.layers(x)


data = load_omniglot_minimal()
own = PrototypicalClassifier(
    backbone=SmallConvNet, rotations=True, callbacks=[TimeLimit(45)], random_state=0
).fit(data.X_base, data.y_base)

# %%
# The network's embeddings as pre-computed features: nothing to train.
features_base = own.transform(data.X_base)
features_novel = own.transform(data.X_novel)
on_features = PrototypicalClassifier(backbone=nn.Identity(), max_epochs=0)
on_features.fit(features_base, data.y_base)
pixels = PrototypicalClassifier(backbone=nn.Flatten(), max_epochs=0, test_time_views=1)
pixels.fit(data.X_base, data.y_base)

results = {
    "raw pixels": evaluate_episodes(
        pixels, data.X_novel, data.y_novel, n_episodes=600, random_state=0
    ),
    "SmallConvNet, 45 s": evaluate_episodes(
        own, data.X_novel, data.y_novel, n_episodes=600, random_state=0
    ),
    "its features + Identity": evaluate_episodes(
        on_features, features_novel, data.y_novel, n_episodes=600, random_state=0
    ),
}
fig, ax = plt.subplots(figsize=(6.5, 4))
names = list(results)
ax.barh(
    names,
    [100 * s.mean for s in results.values()],
    xerr=[100 * s.ci95 for s in results.values()],
    color=["tab:gray", "tab:blue", "tab:cyan"],
)
for i, s in enumerate(results.values()):
    ax.text(100 * s.mean + 2, i, f"{100 * s.mean:.1f} %", va="center")
ax.set_xlim(0, 110)
ax.set_xlabel("5-way 1-shot accuracy on novel characters (%), 600 episodes")
ax.invert_yaxis()
fig.tight_layout()
plt.show()
