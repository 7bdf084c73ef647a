"""Specification of PrototypicalClassifier (Snell et al., 2017)."""

import copy
import logging
import pickle
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
import torch
from helpers import FEW_SHOT_TRAINED as FAST
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from torch import nn

from skmeta import EpisodeSampler, PrototypicalClassifier
from skmeta.augmentation import AffineViews
from skmeta.backbones import MLP, Conv4
from skmeta.distances import SquaredEuclidean
from skmeta.fewshot.prototypical import PrototypicalNetwork, soft_kmeans
from skmeta.model_selection import ClassKFold, EpisodicScorer


@pytest.fixture(scope="module")
def fitted(digits):
    return PrototypicalClassifier(**FAST).fit(digits.X_base, digits.y_base)


def _state(clf):
    return {k: v.clone() for k, v in clf.module_.state_dict().items()}


def test_prototypes_are_class_means_of_support_embeddings(fitted, digits):
    Z = fitted.transform(digits.X_base)
    means = np.stack([Z[digits.y_base == c].mean(0) for c in fitted.classes_])
    np.testing.assert_allclose(fitted.prototypes_, means, rtol=1e-5, atol=1e-5)


def test_predict_proba_is_softmax_of_negative_squared_distances(fitted, digits):
    Z = fitted.transform(digits.X_novel[:7])
    d2 = ((Z[:, None, :] - fitted.prototypes_[None]) ** 2).sum(-1)
    expected = np.exp(-d2 + d2.min(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(
        fitted.predict_proba(digits.X_novel[:7]), expected, atol=1e-5
    )
    np.testing.assert_allclose(
        fitted.decision_function(digits.X_novel[:7]), -d2, rtol=1e-4
    )


@pytest.mark.filterwarnings("ignore:self.within_class_std_dev_:UserWarning")
def test_identity_embedding_agrees_with_nearest_centroid(digits):
    # A fixed identity embedding has nothing to meta-train; the prototype
    # rule with squared Euclidean distance is then sklearn's NearestCentroid.
    clf = PrototypicalClassifier(backbone=nn.Identity(), **FAST).fit(
        digits.X_base, digits.y_base
    )
    clf.adapt(digits.X_novel, digits.y_novel)
    nc = NearestCentroid().fit(digits.X_novel, digits.y_novel)
    np.testing.assert_allclose(clf.prototypes_, nc.centroids_, atol=1e-6)
    np.testing.assert_array_equal(
        clf.predict(digits.X_novel), nc.predict(digits.X_novel)
    )


def test_identity_embedding_with_manhattan_distance_is_nearest_mean_in_l1(digits):
    clf = PrototypicalClassifier(backbone=nn.Identity(), distance="manhattan", **FAST)
    clf.fit(digits.X_base, digits.y_base).adapt(digits.X_novel, digits.y_novel)
    means = np.stack(
        [digits.X_novel[digits.y_novel == c].mean(0) for c in clf.classes_]
    )
    l1 = np.abs(digits.X_novel[:, None] - means[None]).sum(-1)
    np.testing.assert_array_equal(
        clf.predict(digits.X_novel), clf.classes_[l1.argmin(1)]
    )


def test_meta_training_improves_novel_class_episodes_on_omniglot(omniglot_data_home):
    from skmeta.datasets import load_omniglot_minimal
    from skmeta.model_selection import evaluate_episodes

    data = load_omniglot_minimal(data_home=omniglot_data_home)

    def accuracy(max_epochs):
        clf = PrototypicalClassifier(
            n_way=20,
            max_epochs=max_epochs,
            episodes_per_epoch=15,
            test_time_views=1,  # what training does; 16 views would take 16x
            random_state=0,
        ).fit(data.X_base, data.y_base)
        scores = evaluate_episodes(
            clf, data.X_novel, data.y_novel, n_episodes=200, random_state=0
        )
        return scores.mean

    assert accuracy(1) > accuracy(0) + 0.05


def test_meta_training_fits_held_out_samples_of_the_base_classes(digits):
    train, held_out = slice(0, None, 2), slice(1, None, 2)

    def accuracy(max_epochs):
        clf = PrototypicalClassifier(
            max_epochs=max_epochs, episodes_per_epoch=20, random_state=0
        )
        clf.fit(digits.X_base[train], digits.y_base[train])
        return clf.score(digits.X_base[held_out], digits.y_base[held_out])

    assert accuracy(2) > max(accuracy(0) + 0.02, 0.95)


def test_string_labels_are_kept(digits):
    y = np.array(["zero", "one", "two", "three", "four"])[digits.y_base]
    clf = PrototypicalClassifier(**FAST).fit(digits.X_base, y)
    assert set(clf.predict(digits.X_base[:20])) <= set(y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))


def test_fit_leaves_torch_global_rng_alone(digits):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    PrototypicalClassifier(**FAST).fit(digits.X_base, digits.y_base)
    torch.testing.assert_close(torch.rand(3), expected)


def test_transform_returns_float32_embeddings(fitted, digits):
    Z = fitted.transform(digits.X_novel)
    assert Z.shape == (len(digits.X_novel), 64)
    assert Z.dtype == np.float32


def test_embedding_dim_sets_the_mlp_output(digits):
    clf = PrototypicalClassifier(embedding_dim=7, **FAST).fit(
        digits.X_base, digits.y_base
    )
    assert clf.transform(digits.X_base[:3]).shape == (3, 7)
    assert isinstance(clf.module_.backbone, MLP)


def test_history_records_every_episode_and_learning_rate_halves(digits):
    clf = PrototypicalClassifier(max_epochs=2, episodes_per_epoch=3, lr=1e-2, lr_step=2)
    clf.fit(digits.X_base, digits.y_base)
    assert len(clf.history_) == 2
    assert [len(epoch["batches"]) for epoch in clf.history_] == [3, 3]
    # Halved after every second episode; skorch records the rate in use.
    lrs = [lr for epoch in clf.history_[:, "batches", :, "event_lr"] for lr in epoch]
    assert lrs == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3])


@pytest.mark.parametrize("flips, n_way", [(False, 16), (True, 32)])
def test_images_get_conv4_and_rotations_and_flips_multiply_the_classes(
    tiny_images, flips, n_way
):
    X, y = tiny_images
    seen = []

    class RecordEpisode(Callback):
        def on_batch_begin(self, net, batch=None, **kwargs):
            seen.append((int(batch[0]["y"].max()) + 1, len(batch[1])))

    clf = PrototypicalClassifier(
        n_query=1,
        rotations=True,
        flips=flips,
        max_epochs=1,
        episodes_per_epoch=2,
        callbacks=[RecordEpisode()],
        random_state=0,
    ).fit(X, y)
    # n_way = all 4 x 4 rotated (x 2 flipped) training classes, one query each.
    assert seen == [(n_way, n_way)] * 2
    assert isinstance(clf.module_.backbone, Conv4)
    assert clf.transform(X).shape == (40, 64)
    np.testing.assert_array_equal(clf.classes_, np.arange(4))


def test_test_time_views_average_the_embeddings_of_fixed_affine_views(tiny_images):
    X, y = tiny_images
    clf = PrototypicalClassifier(test_time_views=1, **FAST).fit(X, y)
    each = [clf.transform(view.numpy()) for view in AffineViews(4)(torch.from_numpy(X))]
    clf.set_params(test_time_views=4)
    np.testing.assert_allclose(clf.transform(X), np.mean(each, 0), rtol=1e-5, atol=1e-6)
    # Support and queries alike: prototypes and scores come from those means.
    clf.adapt(X[::2], y[::2])
    Z = clf.transform(X[1::2])
    means = np.stack([clf.transform(X[::2])[y[::2] == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(clf.prototypes_, means, rtol=1e-5, atol=1e-5)
    d2 = ((Z[:, None] - means[None]) ** 2).sum(-1)
    np.testing.assert_allclose(
        clf.decision_function(X[1::2]), -d2, rtol=1e-4, atol=1e-3
    )


def test_the_training_set_is_embedded_as_support_set_once_on_first_use(
    tiny_images, caplog, capsys
):
    X, y = tiny_images
    caplog.set_level(logging.INFO, logger="skmeta")
    clf = PrototypicalClassifier(test_time_views=3, **FAST).fit(X, y)
    assert caplog.messages == []
    before = dict(vars(clf))
    proba = clf.predict_proba(X)
    assert caplog.messages == [
        f"embedding the {len(X)} training samples as the support set "
        "(3 test-time views each)"
    ]
    assert caplog.records[0].name == "skmeta.fewshot._base"
    # Once: a second prediction embeds nothing more, and neither changed the
    # estimator's attributes (scikit-learn's check_dict_unchanged).
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    assert len(caplog.messages) == 1
    assert vars(clf) == before
    # The prototypes are those of adapt() to the same samples.
    prototypes = clf.prototypes_
    adapted = clone(clf).fit(X, y).adapt(X, y)
    np.testing.assert_allclose(adapted.prototypes_, prototypes)
    assert capsys.readouterr().out == ""  # logged, never printed


def test_threads_predicting_at_once_embed_the_training_set_once(tiny_images, caplog):
    X, y = tiny_images
    clf = PrototypicalClassifier(**FAST).fit(X, y)
    copied = pickle.loads(pickle.dumps(clf))  # before the support set exists
    caplog.set_level(logging.INFO, logger="skmeta")
    with ThreadPoolExecutor(4) as pool:
        predictions = list(pool.map(lambda _: clf.predict_proba(X), range(4)))
    assert len(caplog.messages) == 1
    for proba in predictions[1:]:
        np.testing.assert_array_equal(proba, predictions[0])
    np.testing.assert_allclose(copied.predict_proba(X), predictions[0], atol=1e-6)


@pytest.mark.parametrize(
    ("augment", "expected"), [("auto", 16), ("affine", 16), (None, 1)]
)
def test_auto_test_time_views_are_16_for_affine_trained_images(
    tiny_images, augment, expected
):
    X, y = tiny_images
    clf = PrototypicalClassifier(augment=augment, **FAST).fit(X, y)
    assert clf.test_time_views == "auto"
    Z = clf.transform(X)
    np.testing.assert_array_equal(
        Z, clf.set_params(test_time_views=expected).transform(X)
    )
    assert expected == 1 or not np.allclose(
        Z, clf.set_params(test_time_views=1).transform(X), atol=1e-3
    )


def test_auto_test_time_views_are_one_for_tabular_data(digits):
    clf = PrototypicalClassifier(**FAST).fit(digits.X_base, digits.y_base)
    Z = clf.transform(digits.X_novel)
    clf.set_params(test_time_views=1)
    np.testing.assert_array_equal(Z, clf.transform(digits.X_novel))


def test_test_time_views_on_tabular_data_are_a_value_error(digits):
    with pytest.raises(ValueError, match=r"test_time_views=4 distorts images.*\(64,\)"):
        PrototypicalClassifier(test_time_views=4, **FAST).fit(
            digits.X_base, digits.y_base
        )


def test_pickle_and_joblib_round_trips_keep_predictions(fitted, digits, tmp_path):
    expected = fitted.predict_proba(digits.X_novel)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(digits.X_novel), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.predict_proba(digits.X_novel), expected)
    restored.adapt(digits.X_novel[::3], digits.y_novel[::3])
    assert restored.score(digits.X_novel, digits.y_novel) > 0.5


def test_custom_backbone_class_and_instance(digits):
    class Linear(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.linear = nn.Linear(in_features, out_features)

        def forward(self, x):
            return self.linear(x)

    clf = PrototypicalClassifier(backbone=Linear, embedding_dim=5, **FAST)
    assert clf.fit(digits.X_base, digits.y_base).transform(digits.X_base).shape[1] == 5
    instance = nn.Sequential(nn.Linear(64, 9), nn.Tanh())
    clf = PrototypicalClassifier(backbone=instance, **FAST).fit(
        digits.X_base, digits.y_base
    )
    assert clf.transform(digits.X_base).shape[1] == 9
    assert (
        clf.module_.backbone is not instance
    )  # the user's module is not trained in place


def test_mahalanobis_distance_is_learned_with_the_backbone(digits):
    clf = PrototypicalClassifier(distance="mahalanobis", embedding_dim=8, **FAST)
    clf.fit(digits.X_base, digits.y_base)
    L = clf.module_.distance.L.detach()
    assert L.shape == (8, 8)
    assert not torch.allclose(L, torch.eye(8))


def test_pipeline_with_scaler(digits):
    pipe = make_pipeline(StandardScaler(), PrototypicalClassifier(**FAST))
    pipe.fit(digits.X_base, digits.y_base)
    assert pipe.score(digits.X_base, digits.y_base) > 0.9
    assert pipe.transform(digits.X_novel).shape == (len(digits.X_novel), 64)


def test_grid_search_over_embedding_dim_and_n_way(digits):
    # Base digits 0-4 split by class in two folds: 3 and 2 training classes.
    search = GridSearchCV(
        PrototypicalClassifier(max_epochs=1, episodes_per_epoch=10, random_state=0),
        {"embedding_dim": [8, 16], "n_way": [2]},
        cv=ClassKFold(n_splits=2),
        scoring=EpisodicScorer(n_way=2, k_shot=1, n_query=5, n_episodes=20),
        error_score="raise",
    )
    search.fit(digits.X_base, digits.y_base)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_index_ == np.argmax(scores) and scores.min() > 0.5
    best = search.best_params_["embedding_dim"]
    assert search.best_estimator_.transform(digits.X_base[:1]).shape == (1, best)


# Errors: each names the parameter, what was expected and what was given.


def test_unfitted_use_raises_not_fitted():
    clf = PrototypicalClassifier()
    for method in ("predict", "predict_proba", "decision_function", "transform"):
        with pytest.raises(NotFittedError):
            getattr(clf, method)(np.zeros((2, 64)))
    with pytest.raises(NotFittedError):
        clf.adapt(np.zeros((2, 64)), [0, 1])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_X(digits, bad):
    X = digits.X_base.copy()
    X[3, 5] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        PrototypicalClassifier(**FAST).fit(X, digits.y_base)


def test_three_dimensional_X(digits):
    with pytest.raises(ValueError, match=r"2-D \(n_samples, n_features\) or 4-D"):
        PrototypicalClassifier(**FAST).fit(
            digits.X_base.reshape(-1, 8, 8), digits.y_base
        )


def test_fewer_classes_than_n_way(digits):
    with pytest.raises(ValueError, match="n_way=6 is more than the 5 classes"):
        PrototypicalClassifier(n_way=6, **FAST).fit(digits.X_base, digits.y_base)


def test_class_with_fewer_than_k_shot_plus_n_query_samples(digits):
    keep = np.r_[
        np.flatnonzero(digits.y_base != 4), np.flatnonzero(digits.y_base == 4)[:3]
    ]
    X, y = digits.X_base[keep], digits.y_base[keep]
    with pytest.raises(ValueError, match=r"k_shot \+ n_query = 6 samples"):
        PrototypicalClassifier(n_way=5, n_query=5, **FAST).fit(X, y)
    # n_query=None fits the queries to the 5th largest class: 3 - 1 = 2.
    seen = []

    class Rows(Callback):
        def on_batch_begin(self, net, batch=None, **kwargs):
            seen.append(len(batch[1]))

    PrototypicalClassifier(n_way=5, callbacks=[Rows()], **FAST).fit(X, y)
    assert set(seen) == {5 * 2}


def test_adapt_with_another_feature_shape(fitted, digits):
    with pytest.raises(ValueError, match="features"):
        fitted.adapt(digits.X_novel[:, :10], digits.y_novel)


def test_adapt_with_mismatched_lengths(fitted, digits):
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fitted.adapt(digits.X_novel[:10], digits.y_novel[:9])


def test_predict_on_images_of_another_size(tiny_images):
    X, y = tiny_images
    clf = PrototypicalClassifier(n_query=2, max_epochs=1, episodes_per_epoch=1).fit(
        X, y
    )
    with pytest.raises(
        ValueError, match=r"samples of shape \(1, 32, 32\).*\(1, 28, 28\)"
    ):
        clf.predict(np.zeros((2, 1, 32, 32), np.float32))


def test_unknown_distance(digits):
    with pytest.raises(ValueError, match="'distance' parameter.*Got 'hamming'"):
        PrototypicalClassifier(distance="hamming").fit(digits.X_base, digits.y_base)


def test_unknown_backbone(digits):
    with pytest.raises(ValueError, match="'backbone' parameter"):
        PrototypicalClassifier(backbone="resnet").fit(digits.X_base, digits.y_base)


@pytest.mark.parametrize("name", ["rotations", "flips"])
def test_rotations_and_flips_need_images(digits, name):
    with pytest.raises(ValueError, match=f"{name}=True needs images"):
        PrototypicalClassifier(**{name: True}, **FAST).fit(digits.X_base, digits.y_base)


def test_affine_augmentation_needs_images(digits):
    with pytest.raises(ValueError, match="augment='affine' needs images"):
        PrototypicalClassifier(augment="affine", **FAST).fit(
            digits.X_base, digits.y_base
        )


def test_cuda_without_cuda_is_a_clear_error(digits):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        PrototypicalClassifier(device="cuda", **FAST).fit(digits.X_base, digits.y_base)


def test_forward_gives_negative_distances_of_the_query_rows_to_the_prototypes():
    net = PrototypicalNetwork(nn.Identity(), SquaredEuclidean())
    x = torch.tensor([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    y = torch.tensor([0, 1, -1, -1])
    logits = net(x, y)
    torch.testing.assert_close(logits, -torch.tensor([[1.0, 9.0], [9.0, 1.0]]))


def test_soft_kmeans_step_by_hand():
    prototypes = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    counts = torch.tensor([1, 3])
    z_query = torch.tensor([[1.0, 0.0], [4.0, 2.0]])
    # Weights softmax(-d^2): query 0 at 1 and 9, query 1 at 20 and 4.
    w = torch.tensor([[1, np.exp(-8)], [np.exp(-16), 1]], dtype=torch.float32)
    w = w / w.sum(1, keepdim=True)
    expected = (prototypes * counts[:, None] + w.T @ z_query) / (
        counts[:, None] + w.sum(0)[:, None]
    )
    refined = soft_kmeans(prototypes, counts, z_query, SquaredEuclidean())
    torch.testing.assert_close(refined, expected)
    # No query: the prototypes stay.
    torch.testing.assert_close(
        soft_kmeans(prototypes, counts, z_query[:0], SquaredEuclidean()), prototypes
    )


def test_transductive_predictions_use_the_queries_and_inductive_ones_do_not(digits):
    clf = PrototypicalClassifier(backbone="identity").fit(digits.X_base, digits.y_base)
    clf.adapt(digits.X_novel[:10], digits.y_novel[:10])
    X = digits.X_novel[10:60]
    alone = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(alone, clf.predict_proba(X), rtol=1e-5)
    clf.set_params(transductive_steps=1)
    together = clf.predict_proba(X)
    assert not np.allclose(clf.predict_proba(X[:5]), together[:5])
    prototypes = soft_kmeans(
        torch.from_numpy(clf.prototypes_),
        torch.from_numpy(clf.support_counts_),
        torch.from_numpy(X),
        SquaredEuclidean(),
    )
    expected = (-torch.cdist(torch.from_numpy(X), prototypes).square()).softmax(1)
    np.testing.assert_allclose(together, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_transductive_episodes_refine_with_each_episodes_queries(digits):
    clf = PrototypicalClassifier(backbone="identity", transductive_steps=1)
    clf.fit(digits.X_base, digits.y_base)
    episodes = EpisodeSampler(5, 1, 5, 6, random_state=0)
    _, accuracies = clf.score_episodes(digits.X_novel, digits.y_novel, episodes)
    for accuracy, (support, query) in zip(
        accuracies, episodes.split(y=digits.y_novel), strict=True
    ):
        X_s, y_s = digits.X_novel[support], digits.y_novel[support]
        twin = copy.deepcopy(clf).adapt(X_s, y_s)
        expected = twin.score(digits.X_novel[query], digits.y_novel[query])
        assert accuracy == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("normalization", ["l2", "centered-l2"])
def test_normalization_compares_normalised_embeddings(normalization, digits):
    clf = PrototypicalClassifier(backbone="identity", normalization=normalization)
    clf.fit(digits.X_base, digits.y_base)
    z = digits.X_novel
    if normalization == "centered-l2":
        np.testing.assert_allclose(clf.feature_mean_, digits.X_base.mean(0), rtol=1e-5)
        z = z - digits.X_base.mean(0)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    clf.adapt(digits.X_novel[:50], digits.y_novel[:50])
    means = np.stack([z[:50][digits.y_novel[:50] == c].mean(0) for c in clf.classes_])
    np.testing.assert_allclose(clf.prototypes_, means, rtol=1e-4, atol=1e-6)
    expected = clf.classes_[((z[:, None] - means) ** 2).sum(2).argmin(1)]
    np.testing.assert_array_equal(clf.predict(digits.X_novel), expected)
    plain = PrototypicalClassifier(backbone="identity").fit(z, digits.y_novel)
    assert not hasattr(plain, "feature_mean_")


def test_fine_tuning_at_adapt_starts_from_the_meta_learned_weights(digits):
    clf = PrototypicalClassifier(max_epochs=1, episodes_per_epoch=5, random_state=0)
    clf.fit(digits.X_base, digits.y_base)
    meta = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    support, other = slice(0, None, 20), slice(1, None, 20)
    clf.set_params(fine_tuning_steps=5, fine_tuning_lr=1e-2)
    first = clf.adapt(digits.X_novel[support], digits.y_novel[support])
    proba = first.predict_proba(digits.X_novel)
    tuned = dict(clf.fine_tuned_params_)
    # module_ keeps the meta-learned weights; the backbone's copy moved.
    for name, value in clf.module_.state_dict().items():
        torch.testing.assert_close(value, meta[name], rtol=0, atol=0)
    assert set(tuned) == {k for k in meta if k.startswith("backbone.")}
    assert any(not torch.equal(tuned[k], meta[k]) for k in tuned)
    # Another support set, then the first again: the same model as before.
    clf.adapt(digits.X_novel[other], digits.y_novel[other])
    clf.adapt(digits.X_novel[support], digits.y_novel[support])
    np.testing.assert_array_equal(clf.predict_proba(digits.X_novel), proba)
    # Without fine-tuning, adapt drops the tuned weights.
    clf.set_params(fine_tuning_steps=0).adapt(
        digits.X_novel[support], digits.y_novel[support]
    )
    assert not hasattr(clf, "fine_tuned_params_")


def test_evaluation_with_fine_tuning_adapts_a_copy_to_each_episode(digits):
    clf = PrototypicalClassifier(max_epochs=0, fine_tuning_steps=2, random_state=0)
    clf.fit(digits.X_base, digits.y_base)
    sampler = EpisodeSampler(3, 1, 2, 3, random_state=0)
    losses, accuracies = clf.score_episodes(digits.X_novel, digits.y_novel, sampler)
    assert not hasattr(clf, "fine_tuned_params_")
    for (s, q), loss, accuracy in zip(
        sampler.split(y=digits.y_novel), losses, accuracies, strict=True
    ):
        episode = clone(clf).fit(digits.X_base, digits.y_base)
        episode.adapt(digits.X_novel[s], digits.y_novel[s])
        assert accuracy == pytest.approx(
            episode.score(digits.X_novel[q], digits.y_novel[q])
        )
        expected = log_loss(
            digits.y_novel[q],
            episode.predict_proba(digits.X_novel[q]),
            labels=episode.classes_,
        )
        assert loss == pytest.approx(expected, rel=1e-5)


#: Initial weights: batch-norm statistics 0 and 1 until re-estimated.
UNTRAINED = dict(max_epochs=0, random_state=0)


def _batch_norm_layers(backbone):
    return [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]


def test_adapt_batch_norm_takes_the_statistics_of_the_support_set(tiny_images):
    X, y = tiny_images
    clf = PrototypicalClassifier(test_time_views=1, **UNTRAINED).fit(X, y)
    meta = _state(clf)
    support = torch.from_numpy(X[::2])
    # What every batch-norm layer sees of the support set in training mode.
    backbone, inputs = copy.deepcopy(clf.module_.backbone).train(), []
    for layer in _batch_norm_layers(backbone):
        layer.register_forward_pre_hook(lambda _, args: inputs.append(args[0]))
    with torch.no_grad():
        backbone(support)
    clf.set_params(adapt_batch_norm=True).adapt(X[::2], y[::2])
    tuned = clf.fine_tuned_params_
    names = [n[: -len(".running_mean")] for n in tuned if n.endswith("running_mean")]
    assert len(names) == len(inputs) == 4
    for name, seen in zip(names, inputs, strict=True):
        torch.testing.assert_close(tuned[f"{name}.running_mean"], seen.mean((0, 2, 3)))
        torch.testing.assert_close(
            tuned[f"{name}.running_var"], seen.var((0, 2, 3), correction=1)
        )
        assert int(tuned[f"{name}.num_batches_tracked"]) == 1
        # The weights are the meta-learned ones; module_ keeps its statistics.
        torch.testing.assert_close(tuned[f"{name}.weight"], meta[f"{name}.weight"])
    for name, value in clf.module_.state_dict().items():
        torch.testing.assert_close(value, meta[name], rtol=0, atol=0)
    assert all(m.momentum == 0.1 for m in _batch_norm_layers(clf.module_))
    # The support set's embeddings come from the re-estimated statistics.
    adapted = copy.deepcopy(clf.module_)
    adapted.load_state_dict(tuned)
    with torch.no_grad():
        expected = adapted.eval().embed(support).mean(0)
    np.testing.assert_allclose(clf.transform(X[::2]).mean(0), expected, atol=1e-5)


def test_adapt_batch_norm_averages_over_test_time_views_and_batches(tiny_images):
    X, y = tiny_images
    clf = PrototypicalClassifier(test_time_views=3, batch_size=4, **UNTRAINED)
    clf.fit(X, y)
    support = slice(0, 36, 4)  # 9 samples of the 4 classes
    clf.set_params(adapt_batch_norm=True).adapt(X[support], y[support])
    # Nine batches (three of three samples, not 4 + 4 + 1, each in three
    # views), of equal size: the average of their means is the mean over all.
    views = torch.cat(list(AffineViews(3)(torch.from_numpy(X[support]))))
    first = clf.module_.backbone.encoder[0][0]  # the first convolution
    with torch.no_grad():
        expected = first(views).mean((0, 2, 3))
    tuned = clf.fine_tuned_params_
    torch.testing.assert_close(tuned["backbone.encoder.0.1.running_mean"], expected)
    assert int(tuned["backbone.encoder.0.1.num_batches_tracked"]) == 9


def test_evaluation_with_adapt_batch_norm_adapts_a_copy_to_each_episode():
    # Noise: every episode has a loss that the statistics change.
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 1, 16, 16)).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    clf = PrototypicalClassifier(test_time_views=1, adapt_batch_norm=True, **UNTRAINED)
    clf.fit(X, y)
    sampler = EpisodeSampler(3, 1, 2, 3, random_state=0)
    losses, accuracies = clf.score_episodes(X, y, sampler)
    assert not hasattr(clf, "fine_tuned_params_")
    for (s, q), loss, accuracy in zip(
        sampler.split(y=y), losses, accuracies, strict=True
    ):
        episode = copy.deepcopy(clf).adapt(X[s], y[s])
        assert accuracy == pytest.approx(episode.score(X[q], y[q]))
        expected = log_loss(y[q], episode.predict_proba(X[q]), labels=episode.classes_)
        assert loss == pytest.approx(expected, rel=1e-5)
    plain = clf.set_params(adapt_batch_norm=False).score_episodes(X, y, sampler)[0]
    assert not np.allclose(plain, losses, rtol=1e-3)
