"""A user's own images and network: 84x84 RGB, ResNet-12, a pretrained module."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skmeta import PrototypicalClassifier
from skmeta.model_selection import evaluate_episodes
from skmeta.persistence import load, save

pytest.importorskip("kornia")

#: One epoch of 2 episodes of 3 classes (1 support and 2 query images each).
EPOCH = dict(n_way=3, n_query=2, max_epochs=1, episodes_per_epoch=2, random_state=0)


@pytest.fixture(scope="module")
def rgb84():
    """8 classes of 6 RGB images of 84x84: a coloured square at a class's place."""
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(8), 6)
    X = rng.uniform(0, 0.3, size=(len(y), 3, 84, 84)).astype(np.float32)
    for c in range(8):
        r, col = divmod(c, 4)
        X[y == c, c % 3, 40 * r : 40 * r + 36, 21 * col : 21 * col + 20] += 0.7
    return X, y


def test_resnet12_meta_trains_on_84x84_rgb_adapts_saves_and_loads(rgb84, tmp_path):
    X, y = rgb84
    base, novel = y < 5, y >= 5
    narrow = {"channels": (4, 4, 8, 8)}
    clf = PrototypicalClassifier(
        backbone="resnet12", backbone_params=narrow, augment="natural", **EPOCH
    ).fit(X[base], y[base])
    assert clf.transform(X[:2]).shape == (2, 8)
    clf.adapt(X[novel][::2], y[novel][::2])
    proba = clf.predict_proba(X[novel])
    save(clf, tmp_path / "m.skmeta")
    loaded = load(tmp_path / "m.skmeta")
    np.testing.assert_allclose(loaded.predict_proba(X[novel]), proba, atol=1e-6)
    scores = evaluate_episodes(
        clf, X[novel], y[novel], n_way=3, k_shot=1, n_query=2, n_episodes=5
    )
    assert 0 <= scores.mean <= 1


class PretrainedNet(torch.nn.Module):
    """A user's network: conv, batch norm, pooling, a 16-d output."""

    def __init__(self, width=8):
        super().__init__()
        self.width = width
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1),
            torch.nn.BatchNorm2d(width),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(width, 16)

    def forward(self, x):
        return self.head(self.features(x))


def test_a_pretrained_module_keeps_its_weights_and_trains_as_asked(rgb84, tmp_path):
    X, y = rgb84
    torch.manual_seed(0)
    torch.save(PretrainedNet().state_dict(), tmp_path / "weights.pt")
    net = PretrainedNet()
    net.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    net.features.requires_grad_(False)  # frozen features, a new head
    clf = PrototypicalClassifier(backbone=net, augment="natural", **EPOCH)
    # Untrained: the given weights are used as they are.
    untrained = clone(clf).set_params(max_epochs=0).fit(X, y)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(X[:4])).numpy()
    np.testing.assert_allclose(untrained.transform(X[:4]), expected, atol=1e-5)
    clf.fit(X, y)
    trained = clf.module_.backbone
    for name, value in net.features.state_dict().items():
        torch.testing.assert_close(trained.features.state_dict()[name], value)
    assert not torch.equal(trained.head.weight, net.head.weight)
    clf.adapt(X[::3], y[::3])
    save(clf, tmp_path / "m.skmeta")
    loaded = load(tmp_path / "m.skmeta", trusted=[PretrainedNet])
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(("size", "samples"), [(28, 480), (84, 120), (168, 30)])
def test_default_episodes_keep_their_pixels_bounded(size, samples):
    # One default episode of 480 RGB images of 84x84 peaked at 4.1 GB.
    y = np.repeat(np.arange(40), 30)
    X = np.zeros((len(y), 3, size, size), np.float32)
    clf = PrototypicalClassifier(max_epochs=0).fit(X, y)
    assert clf.n_way_ * (clf.k_shot_ + clf.n_query_) <= samples
    assert clf.n_way_ * (clf.k_shot_ + clf.n_query_) >= samples * 0.9
    # Explicit shapes are kept.
    clf.set_params(n_way=30, n_query=10).fit(X, y)
    assert (clf.n_way_, clf.n_query_) == (30, 10)


def test_a_timm_model_is_a_backbone(rgb84):
    # The recipe of the docs; timm imports torchvision, which does not import
    # beside torch's CPU build of our CI machines: skipped there.
    timm = pytest.importorskip("timm")
    X, y = rgb84
    net = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    clf = PrototypicalClassifier(
        backbone=net, backbone_lr=1e-4, lr=1e-3, augment="natural", **EPOCH
    ).fit(X, y)
    assert clf.transform(X[:2]).shape == (2, net.num_features)


def test_a_torchvision_model_is_a_backbone(rgb84):
    models = pytest.importorskip("torchvision.models")
    X, y = rgb84
    net = models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    clf = PrototypicalClassifier(backbone=net, **EPOCH).fit(X, y)
    assert clf.transform(X[:2]).shape == (2, 512)
