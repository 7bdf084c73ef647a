"""
Saving, loading, and the device
===============================

:func:`skmeta.persistence.save` writes a fitted estimator as data only: its
parameters and fitted attributes as JSON, its weights and arrays as raw tensor
bytes. It writes a temporary file and renames it only once it is whole, so a
failed save never destroys the model saved before. :func:`skmeta.persistence.load`
checks every entry before it allocates anything, imports nothing the file
names (a custom backbone class is passed in ``trusted=[MyNet]``), and rebuilds
the model on the device asked for, so a model trained on a GPU
(``device="cuda"``) loads on a laptop's CPU. Pickle and joblib also work, as
for every scikit-learn estimator, but loading such a file runs code from it.

On a GPU, only ``device`` changes: ``PrototypicalClassifier(device="cuda")``
(or ``"auto"``) trains, adapts and predicts there, and ``transform`` still
returns float32 NumPy arrays. The plot shows the probabilities a loaded model
gives for five queries of five novel characters, equal to the saved model's.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skmeta import PrototypicalClassifier
from skmeta.callbacks import TimeLimit
from skmeta.datasets import load_omniglot_minimal
from skmeta.persistence import load, save

data = load_omniglot_minimal()
clf = PrototypicalClassifier(rotations=True, callbacks=[TimeLimit(30)], random_state=0)
clf.fit(data.X_base, data.y_base)
characters = np.unique(data.y_novel)[:5]
support = [np.flatnonzero(data.y_novel == c)[0] for c in characters]
queries = [np.flatnonzero(data.y_novel == c)[1] for c in characters]
clf.adapt(data.X_novel[support], data.y_novel[support])

# %%
# Save, load on the CPU, and predict again.
with tempfile.TemporaryDirectory() as folder:
    path = save(clf, Path(folder) / "protonet.skmeta")
    print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB")
    loaded = load(path, device="cpu")

proba = loaded.predict_proba(data.X_novel[queries])
assert np.array_equal(proba, clf.predict_proba(data.X_novel[queries]))

fig, ax = plt.subplots(figsize=(6, 4.5))
image = ax.imshow(proba, cmap="Blues", vmin=0, vmax=1)
labels = [c.replace("_(katakana)", "") for c in characters]
ax.set_xticks(range(5), labels, rotation=30, ha="right", fontsize=8)
ax.set_yticks(range(5), [f"query of {label}" for label in labels], fontsize=8)
fig.colorbar(image, label="predict_proba of the loaded model")
ax.set_title("5-way 1-shot after save and load: the same probabilities")
fig.tight_layout()
plt.show()
