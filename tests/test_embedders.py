"""Specification of the deep metric learning embedders.

The shared contract (shapes, dtype, normalisation, pickling, seeding,
training, errors) holds for every embedder; the tests after it are about one
loss each.
"""

import pickle

import numpy as np
import pytest
import torch
from helpers import EMBEDDERS
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from torch import nn

from skmeta import (
    ArcFaceEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    MetricEmbedder,
    NPairEmbedder,
    TripletEmbedder,
)
from skmeta.distances import Mahalanobis
from skmeta.losses import (
    LOSSES,
    ArcFaceLoss,
    ContrastiveLoss,
    CosFaceLoss,
    TripletMarginLoss,
)
from skmeta.metrics import mean_average_precision_at_r, retrieval_scorer
from skmeta.miners import BatchHardMiner
from skmeta.model_selection import ClassKFold

FAST = dict(max_epochs=3, batches_per_epoch=10, embedding_dim=16, random_state=0)

embedders = pytest.mark.parametrize("cls", EMBEDDERS, ids=lambda c: c.__name__)


@pytest.fixture(scope="module")
def split(digits):
    """Held-out samples of the training classes: what training must improve."""
    return train_test_split(
        digits.X_base,
        digits.y_base,
        test_size=0.3,
        random_state=0,
        stratify=digits.y_base,
    )


@pytest.fixture(scope="module")
def fitted(split):
    X_train, _, y_train, _ = split
    return {cls: cls(**FAST).fit(X_train, y_train) for cls in EMBEDDERS}


class Recorder(Callback):
    """Keeps what a test needs to see of the skorch net during training."""

    def on_train_begin(self, net, **kwargs):
        self.optimized = {
            id(p) for g in net.optimizer_.param_groups for p in g["params"]
        }
        self.batches = []

    def on_batch_begin(self, net, batch=None, **kwargs):
        self.batches.append(batch[1].cpu().numpy())


# --- the shared contract ---------------------------------------------------


@embedders
def test_transform_gives_float32_embeddings_of_embedding_dim(cls, fitted, digits):
    Z = fitted[cls].transform(digits.X_novel)
    assert Z.dtype == np.float32 and Z.shape == (len(digits.X_novel), 16)
    assert np.isfinite(Z).all()
    assert fitted[cls].n_features_in_ == 64 and fitted[cls].input_shape_ == (64,)


@embedders
def test_fit_transform_is_fit_then_transform(cls, split):
    X_train, _, y_train, _ = split
    np.testing.assert_array_equal(
        cls(**FAST).fit_transform(X_train, y_train),
        cls(**FAST).fit(X_train, y_train).transform(X_train),
    )


@embedders
def test_l2_normalization_puts_embeddings_on_the_unit_sphere(cls, split, digits):
    X_train, _, y_train, _ = split
    embedder = cls(**FAST, normalization="l2").fit(X_train, y_train)
    norms = np.linalg.norm(embedder.transform(digits.X_novel), axis=1)
    np.testing.assert_allclose(norms, 1, rtol=1e-5)


def test_without_normalize_embeddings_keep_their_norm(split):
    X_train, _, y_train, _ = split
    Z = NPairEmbedder(**FAST).fit_transform(X_train, y_train)
    assert np.ptp(np.linalg.norm(Z, axis=1)) > 0.1


@embedders
def test_training_lowers_the_loss_and_improves_retrieval_of_unseen_samples(
    cls, fitted, split
):
    # On held-out samples of the training classes. (On digits' 5 novel
    # classes, raw pixels already give precision@1 0.99 and 5 base classes
    # teach little that transfers, so novel-class retrieval is the
    # benchmark's job, on Omniglot.)
    X_train, X_test, y_train, y_test = split
    trained = fitted[cls]
    losses = trained.history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    untrained = cls(**{**FAST, "max_epochs": 0}).fit(X_train, y_train)
    before = mean_average_precision_at_r(untrained.transform(X_test), y_test)
    after = mean_average_precision_at_r(trained.transform(X_test), y_test)
    assert after > before + 0.05


@embedders
def test_pickle_round_trip_keeps_the_embeddings(cls, fitted, digits):
    restored = pickle.loads(pickle.dumps(fitted[cls]))
    np.testing.assert_array_equal(
        restored.transform(digits.X_novel), fitted[cls].transform(digits.X_novel)
    )


@embedders
def test_clone_is_unfitted_with_the_same_parameters(cls, fitted):
    twin = clone(fitted[cls])
    assert twin.get_params() == fitted[cls].get_params()
    assert not hasattr(twin, "module_")


@embedders
def test_same_seed_same_embeddings_other_seed_others(cls, fitted, split, digits):
    X_train, _, y_train, _ = split
    again = cls(**FAST).fit(X_train, y_train)
    np.testing.assert_array_equal(
        again.transform(digits.X_novel), fitted[cls].transform(digits.X_novel)
    )
    other = cls(**{**FAST, "random_state": 1}).fit(X_train, y_train)
    assert not np.allclose(
        other.transform(digits.X_novel), again.transform(digits.X_novel)
    )


def test_transform_in_chunks_equals_transform_at_once(fitted, digits):
    embedder = fitted[TripletEmbedder]
    chunked = clone(embedder).set_params(batch_size=7)
    chunked.__dict__.update({k: v for k, v in vars(embedder).items() if k[-1] == "_"})
    np.testing.assert_allclose(
        chunked.transform(digits.X_novel),
        embedder.transform(digits.X_novel),
        atol=1e-6,
    )


def test_a_training_batch_is_p_classes_of_k_samples(split):
    X_train, _, y_train, _ = split
    recorder = Recorder()
    TripletEmbedder(
        **FAST, n_classes_per_batch=3, n_samples_per_class=5, callbacks=[recorder]
    ).fit(X_train, y_train)
    assert len(recorder.batches) == 30  # max_epochs * batches_per_epoch
    for labels in recorder.batches:
        _, counts = np.unique(labels, return_counts=True)
        assert counts.tolist() == [5, 5, 5]


def test_by_default_a_batch_holds_every_class_up_to_16(split):
    X_train, _, y_train, _ = split
    recorder = Recorder()
    ContrastiveEmbedder(**FAST, callbacks=[recorder]).fit(X_train, y_train)
    assert all(len(np.unique(labels)) == 5 for labels in recorder.batches)
    assert ContrastiveEmbedder.max_auto_classes == 16


def test_images_train_with_the_conv4_backbone(tiny_images):
    X, y = tiny_images
    embedder = TripletEmbedder(**{**FAST, "max_epochs": 1}).fit(X, y)
    assert embedder.transform(X).shape == (40, 16)
    assert type(embedder.module_.backbone).__name__ == "Conv4"


def test_feature_names_out_are_prefixed_by_the_estimator(fitted):
    names = fitted[CosFaceEmbedder].get_feature_names_out()
    assert names.tolist() == [f"cosfaceembedder{i}" for i in range(16)]


def test_labels_of_any_type_are_kept_in_classes(split):
    X_train, _, y_train, _ = split
    names = np.array(list("abcde"))[y_train]
    embedder = ArcFaceEmbedder(**FAST).fit(X_train, names)
    assert embedder.classes_.tolist() == list("abcde")


def test_pipeline_scaler_embedder_knn_classifies(split):
    X_train, X_test, y_train, y_test = split
    model = make_pipeline(
        StandardScaler(), TripletEmbedder(**FAST), KNeighborsClassifier()
    ).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.9


def test_grid_search_chooses_margin_and_size_by_retrieval_on_held_out_classes(
    digits,
):
    X = np.concatenate([digits.X_base, digits.X_novel])
    y = np.concatenate([digits.y_base, digits.y_novel])
    grid = {
        "tripletembedder__margin": [0.1, 0.5],
        "tripletembedder__embedding_dim": [4, 8],
    }
    search = GridSearchCV(
        make_pipeline(StandardScaler(), TripletEmbedder(**{**FAST, "max_epochs": 1})),
        grid,
        scoring=retrieval_scorer("map_at_r"),
        cv=ClassKFold(n_splits=2),
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["tripletembedder__margin"] in (0.1, 0.5)
    assert search.transform(X[:3]).shape == (
        3,
        search.best_params_["tripletembedder__embedding_dim"],
    )


# --- errors ------------------------------------------------------------------


@embedders
def test_nan_in_X_is_an_error(cls, digits):
    X = digits.X_base.copy()
    X[3, 5] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        cls(**FAST).fit(X, digits.y_base)


@embedders
def test_small_classes_train_with_the_defaults_by_repeats(cls):
    X = np.random.RandomState(0).rand(12, 4).astype(np.float32)
    y = np.repeat([0, 1, 2], [6, 4, 2])  # K = 4: class 2 is drawn with repeats
    model = cls(**FAST).fit(X, y)
    assert model.transform(X).shape == (12, 16)


@embedders
def test_too_small_classes_for_p_by_k_batches_are_an_error(cls):
    X = np.random.RandomState(0).rand(12, 4).astype(np.float32)
    y = np.repeat([0, 1, 2], [6, 4, 2])
    with pytest.raises(ValueError, match=r"class 2 has 2\). Lower n_samples_per"):
        cls(**FAST, small_classes="raise").fit(X, y)
    with pytest.raises(ValueError, match=r"needs 3 classes with at least n_samples"):
        cls(**FAST, n_classes_per_batch=3, small_classes="skip").fit(X, y)
    with pytest.raises(
        ValueError,
        match=r"at least 2 classes; y has 1 class with at least n_samples_per_class=5",
    ):
        cls(**FAST, n_samples_per_class=5, small_classes="skip").fit(X, y)


def test_small_classes_can_be_skipped_or_drawn_with_replacement():
    X = np.random.RandomState(0).rand(12, 4).astype(np.float32)
    y = np.repeat([0, 1, 2], [6, 4, 2])
    for small_classes in ("skip", "replace"):
        recorder = Recorder()
        TripletEmbedder(**FAST, small_classes=small_classes, callbacks=[recorder]).fit(
            X, y
        )
        seen = np.unique(np.concatenate(recorder.batches))
        assert seen.tolist() == ([0, 1] if small_classes == "skip" else [0, 1, 2])


@pytest.mark.parametrize(
    "cls, params",
    [
        (TripletEmbedder, {"margin": -0.1}),
        (ContrastiveEmbedder, {"margin": -1}),
        (ArcFaceEmbedder, {"margin": 3.5}),
        (CosFaceEmbedder, {"margin": "large"}),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_bad_margin_is_named(cls, params, digits):
    with pytest.raises(ValueError, match=r"'margin' parameter of "):
        cls(**FAST, **params).fit(digits.X_base, digits.y_base)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_classes_per_batch": 1}, "n_classes_per_batch"),
        ({"n_samples_per_class": 1}, "n_samples_per_class"),
        ({"miner": "hardest"}, "miner"),
        ({"distance": "chebyshev"}, "distance"),
        ({"small_classes": "drop"}, "small_classes"),
    ],
)
def test_bad_parameters_are_named(params, name, digits):
    with pytest.raises(ValueError, match=f"'{name}' parameter of "):
        TripletEmbedder(**FAST, **params).fit(digits.X_base, digits.y_base)


def test_semi_hard_mining_needs_a_positive_margin(digits):
    with pytest.raises(ValueError, match="margin must be > 0"):
        TripletEmbedder(**FAST, margin=0).fit(digits.X_base, digits.y_base)


def test_transform_before_fit_and_with_other_features_are_errors(fitted, digits):
    with pytest.raises(NotFittedError):
        TripletEmbedder().transform(digits.X_base)
    with pytest.raises(ValueError, match="expecting 64 features"):
        fitted[TripletEmbedder].transform(digits.X_base[:, :10])


def test_fit_needs_y(digits):
    with pytest.raises(ValueError, match="requires y to be passed"):
        TripletEmbedder(**FAST).fit(digits.X_base, None)


# --- one loss each ------------------------------------------------------------


def test_triplet_parameters_reach_the_loss(split):
    X_train, _, y_train, _ = split
    miner = BatchHardMiner()
    embedder = TripletEmbedder(
        **{**FAST, "max_epochs": 1}, margin=0.3, miner=miner, distance="cosine"
    ).fit(X_train, y_train)
    loss = embedder.module_.loss
    assert isinstance(loss, TripletMarginLoss) and loss.margin == 0.3
    assert loss.miner is miner and type(loss.distance).__name__ == "Cosine"


@pytest.mark.parametrize("miner", ["all", "hard", "semi-hard"])
def test_every_miner_trains(miner, split):
    X_train, _, y_train, _ = split
    embedder = TripletEmbedder(**FAST, miner=miner).fit(X_train, y_train)
    assert embedder.history_[-1, "train_loss"] < embedder.history_[0, "train_loss"]


def test_mahalanobis_distance_is_learned_and_transform_applies_it(split):
    X_train, X_test, y_train, _ = split
    embedder = TripletEmbedder(**FAST, distance="mahalanobis").fit(X_train, y_train)
    distance = embedder.module_.loss.distance
    assert isinstance(distance, Mahalanobis)
    assert not torch.equal(distance.L.detach(), torch.eye(16))
    # Squared Euclidean distance between outputs is the learned distance.
    with torch.no_grad():
        z = embedder.module_(torch.from_numpy(X_test[:6]))
        expected = distance(z, z).numpy()
    Z = embedder.transform(X_test[:6])
    np.testing.assert_allclose(
        ((Z[:, None] - Z[None]) ** 2).sum(-1), expected, atol=1e-5
    )


def test_contrastive_margin_reaches_the_loss(split):
    X_train, _, y_train, _ = split
    embedder = ContrastiveEmbedder(**{**FAST, "max_epochs": 1}, margin=0.7)
    assert embedder.fit(X_train, y_train).module_.loss.margin == 0.7


def test_npair_l2_reg_reaches_the_loss(split):
    X_train, _, y_train, _ = split
    embedder = NPairEmbedder(**{**FAST, "max_epochs": 1}, l2_reg=0.5)
    assert embedder.fit(X_train, y_train).module_.loss.l2_reg == 0.5


@pytest.mark.parametrize(
    "cls, loss_cls", [(ArcFaceEmbedder, ArcFaceLoss), (CosFaceEmbedder, CosFaceLoss)]
)
def test_class_weights_train_with_the_net_and_pickle_with_it(cls, loss_cls, split):
    X_train, X_test, y_train, _ = split
    recorder = Recorder()
    embedder = cls(**FAST, scale=16, margin=0.2, callbacks=[recorder])
    embedder.fit(X_train, y_train)
    loss = embedder.module_.loss
    assert isinstance(loss, loss_cls) and (loss.scale, loss.margin) == (16, 0.2)
    assert loss.W.shape == (5, 16)
    assert id(loss.W) in recorder.optimized, "W is in the optimizer"
    untrained = cls(**{**FAST, "max_epochs": 0}, scale=16, margin=0.2)
    initial = untrained.fit(X_train, y_train).module_.loss.W
    assert not torch.allclose(loss.W, initial), "W changed with training"
    restored = pickle.loads(pickle.dumps(embedder))
    torch.testing.assert_close(restored.module_.loss.W, loss.W, rtol=0, atol=0)
    # The trained class weights classify: each sample is nearest its class's W.
    cos = restored.module_.loss.cosines(torch.from_numpy(restored.transform(X_test)))
    assert (cos.argmax(1).numpy() == _encoded(restored, split[3])).mean() > 0.9


def test_margin_softmax_embedders_need_only_one_sample_per_class(split):
    X_train, _, y_train, _ = split
    recorder = Recorder()
    CosFaceEmbedder(**FAST, n_samples_per_class=1, callbacks=[recorder]).fit(
        X_train, y_train
    )
    assert all(len(labels) == 5 for labels in recorder.batches)


def _encoded(embedder, y):
    return np.searchsorted(embedder.classes_, y)


def test_verbose_shows_skorch_epoch_log_and_device_auto_picks_one(split, capsys):
    X_train, _, y_train, _ = split
    embedder = NPairEmbedder(**{**FAST, "max_epochs": 2}, verbose=1, device="auto")
    embedder.fit(X_train, y_train)
    assert "train_loss" in capsys.readouterr().out
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert embedder.device_.type == expected


# --- the generic embedder and its presets ----------------------------------


@pytest.mark.parametrize(
    "preset, generic",
    [
        (
            TripletEmbedder(margin=0.1, miner="hard"),
            MetricEmbedder(
                "triplet",
                loss_params={"margin": 0.1},
                miner="hard",
                distance="euclidean",
                reduction="mean",
            ),
        ),
        (
            ContrastiveEmbedder(margin=0.5, miner="margin", reduction="mean-nonzero"),
            MetricEmbedder(
                "contrastive",
                loss_params={"margin": 0.5},
                miner="margin",
                reduction="mean-nonzero",
            ),
        ),
        (
            NPairEmbedder(l2_reg=0.01),
            MetricEmbedder("npair", loss_params={"l2_reg": 0.01}, normalization=None),
        ),
        (
            ArcFaceEmbedder(margin=0.3, scale=16),
            MetricEmbedder("arcface", loss_params={"margin": 0.3, "scale": 16}),
        ),
        (
            CosFaceEmbedder(margin=0.2, scale=16),
            MetricEmbedder("cosface", loss_params={"margin": 0.2, "scale": 16}),
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_each_embedder_is_a_preset_of_the_generic_one(preset, generic, split):
    X_train, X_test, y_train, _ = split
    ours = preset.set_params(**FAST).fit(X_train, y_train)
    theirs = generic.set_params(**FAST).fit(X_train, y_train)
    assert repr(ours.module_.loss) == repr(theirs.module_.loss)
    np.testing.assert_array_equal(ours.transform(X_test), theirs.transform(X_test))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_trains_by_name(name, split):
    X_train, _, y_train, _ = split
    embedder = MetricEmbedder(name, **FAST).fit(X_train, y_train)
    assert type(embedder.module_.loss) is LOSSES[name]
    assert embedder.n_steps_ == 30


def test_a_new_loss_is_one_class_registered_by_name(split, monkeypatch):
    class CenterLoss(nn.Module):
        """Squared distance to a learned centre per class (Wen et al., 2016)."""

        def __init__(self, n_classes, embedding_dim):
            super().__init__()
            self.centers = nn.Parameter(torch.zeros(n_classes, embedding_dim))

        def forward(self, embeddings, labels):
            return (embeddings - self.centers[labels]).pow(2).sum(1).mean()

    monkeypatch.setitem(LOSSES, "center", CenterLoss)
    X_train, X_test, y_train, _ = split
    embedder = MetricEmbedder("center", **FAST).fit(X_train, y_train)
    centers = embedder.module_.loss.centers
    assert centers.shape == (5, 16) and centers.abs().sum() > 0  # trained
    assert embedder.transform(X_test).shape == (len(X_test), 16)


def test_a_loss_module_is_copied_and_trained_as_it_is(split):
    X_train, _, y_train, _ = split
    loss = ContrastiveLoss(margin=0.5, miner="margin")
    embedder = MetricEmbedder(loss, **FAST).fit(X_train, y_train)
    assert embedder.module_.loss is not loss
    assert repr(embedder.module_.loss) == repr(loss)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(loss="npair", miner="hard"), "loss='npair' takes no miner"),
        (dict(loss="arcface", distance="cosine"), "loss='arcface' takes no distance"),
        (dict(loss="npair", reduction="mean-nonzero"), "takes no reduction"),
        (dict(loss=TripletMarginLoss(), miner="hard"), "used as it is; miner"),
        (dict(loss=TripletMarginLoss(), loss_params={"margin": 1}), "loss_params"),
        (dict(loss="triplet", miner="margin"), "Unknown miner 'margin'"),
        (dict(loss="hinge"), "'loss' parameter"),
    ],
)
def test_parts_a_loss_does_not_take_are_errors(params, message, split):
    X_train, _, y_train, _ = split
    with pytest.raises(ValueError, match=message):
        MetricEmbedder(**params, **FAST).fit(X_train, y_train)


def test_normalized_embeddings_of_huge_and_tiny_inputs_have_unit_norm(digits):
    # Issue 25: at X * 1e19 the squared norm overflowed float32 and transform
    # returned zeros.
    emb = TripletEmbedder(backbone="identity", max_epochs=0).fit(
        digits.X_base, digits.y_base
    )
    for scale in (1e19, 1.0, 1e-30):
        z = emb.transform(digits.X_base[:20] * scale)
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
