"""Shared fixtures: small data sets that train in a second on 2 CPU cores."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from skmeta.datasets import load_digits_fewshot

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per xdist worker: several threads per worker
    # oversubscribe the cores and slow small models down many times over.
    torch.set_num_threads(1)


def _data_home():
    env = os.environ.get("SKMETA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def digits():
    """Digits split into base digits 0-4 and novel digits 5-9."""
    return load_digits_fewshot()


@pytest.fixture(scope="session")
def omniglot_data_home():
    """Folder holding omniglot/images_background_small{1,2}.zip, or a skip."""
    home = _data_home()
    if not (home / "omniglot" / "images_background_small1.zip").exists():
        pytest.skip(f"Omniglot minimal sets not found under {home} (set SKMETA_DATA)")
    return home


@pytest.fixture(scope="session")
def tiny_images():
    """40 random 1x28x28 'images' of 4 classes, each class a bright square."""
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 0.2, size=(40, 1, 28, 28)).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    for c in range(4):
        r, col = divmod(c, 2)
        X[y == c, 0, 14 * r : 14 * r + 10, 14 * col : 14 * col + 10] += 0.8
    return X, y
