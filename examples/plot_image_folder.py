"""
From a folder of images to a few-shot classifier
================================================

Your data as a folder of image files, one subfolder per class, or per group
and class (``root/<group>/<class>/<file>``, as Omniglot's characters belong to
alphabets): :func:`skmeta.datasets.load_image_folder` reads it into the
``(n_samples, channels, height, width)`` float32 array that every skmeta
estimator takes, with the class and group of each image.

To have such a folder offline, this example first writes one: the 2,720
characters of five alphabets from the Omniglot copy embedded in skmeta, as
PNG files of black strokes on white, as the original files are. It then loads
the folder, meta-trains a :class:`~skmeta.PrototypicalClassifier` for 20
episodes on four alphabets, and scores it 5-way 1-shot on the characters of
the fifth, never seen in training. A longer meta-training (see the other
examples) raises the accuracy well above this short run's.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from skmeta import PrototypicalClassifier
from skmeta.datasets import load_image_folder, load_omniglot_minimal
from skmeta.model_selection import evaluate_episodes

# %%
# A folder of PNG files: ``root/<alphabet>/<character>/<n>.png``.
root = Path(tempfile.mkdtemp()) / "omniglot_pngs"
omniglot = load_omniglot_minimal()
for i, (image, label) in enumerate(zip(omniglot.X_base, omniglot.y_base, strict=True)):
    (root / label).mkdir(parents=True, exist_ok=True)
    dark_on_light = np.rint(255 * (1 - image[0])).astype(np.uint8)
    Image.fromarray(dark_on_light).save(root / label / f"{i}.png")

# %%
# Load it, classes and groups included.
data = load_image_folder(root)
print(data.X.shape, data.X.dtype, data.y[0], data.groups[0])

# Dark strokes on white, as stored: the augmentation fills with each image's
# own background, so either polarity trains alike.
X = data.X
novel = data.groups == "Korean"  # one alphabet held out, whole

# %%
# Meta-train on four alphabets, then 5-way 1-shot on the fifth.
clf = PrototypicalClassifier(
    max_epochs=1, episodes_per_epoch=20, test_time_views=1, random_state=0
)
clf.fit(X[~novel], data.y[~novel])
scores = evaluate_episodes(
    clf, X[novel], data.y[novel], n_way=5, k_shot=1, n_episodes=200, random_state=0
)
print(f"5-way 1-shot on Korean: {100 * scores.mean:.1f} ± {100 * scores.ci95:.1f} %")

# %%
# Five of the novel characters, as read from the PNG files.
fig, axes = plt.subplots(1, 5, figsize=(7, 1.8))
classes = np.unique(data.y[novel])[:5]
for ax, label in zip(axes, classes, strict=True):
    ax.imshow(data.X[np.flatnonzero(data.y == label)[0], 0], cmap="gray")
    ax.set_title(label.split("/")[1], fontsize=8)
    ax.axis("off")
fig.suptitle("five novel characters, as read from the PNG files")
fig.tight_layout()
plt.show()
