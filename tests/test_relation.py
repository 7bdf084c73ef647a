"""Specification of RelationClassifier (Sung et al., 2018)."""

import copy
import pickle

import numpy as np
import pytest
import torch
from helpers import FEW_SHOT_TRAINED as FAST
from torch import nn

from skmeta import EpisodeSampler, RelationClassifier
from skmeta.backbones import MLP, Conv4
from skmeta.fewshot.relation import (
    ConvRelation,
    MLPRelation,
    RelationEncoder,
    RelationLoss,
    RelationNetwork,
    class_features,
    pair_layer,
)
from skmeta.model_selection import evaluate_episodes


@pytest.fixture(scope="module")
def fitted(digits):
    return RelationClassifier(**FAST).fit(digits.X_base, digits.y_base)


@pytest.fixture(scope="module")
def fitted_images(tiny_images):
    X, y = tiny_images
    clf = RelationClassifier(k_shot=2, n_query=3, max_epochs=1, episodes_per_epoch=3)
    return clf.set_params(random_state=0).fit(X, y)


# The math.


def test_class_feature_is_the_sum_of_the_shot_features():
    z = torch.arange(24.0).view(6, 4)
    y = torch.tensor([1, 0, 1, 2, 0, 2])
    expected = torch.stack([z[1] + z[4], z[0] + z[2], z[3] + z[5]])
    torch.testing.assert_close(class_features(z, y, 3, k_shot=2), expected)
    # Feature maps are summed element-wise, keeping their shape.
    maps = torch.randn(6, 2, 3, 3)
    sums = class_features(maps, y, 3, k_shot=2)
    assert sums.shape == (3, 2, 3, 3)
    torch.testing.assert_close(sums[0], maps[1] + maps[4])
    # The module's support encoding is that sum.
    net = RelationNetwork(nn.Identity(), MLPRelation(4), (2, 3, 3), k_shot=2)
    torch.testing.assert_close(net.encode_support(z, y), expected)


def test_other_shot_counts_are_rescaled_to_k_shot_shots():
    z = torch.randn(5, 3)
    y = torch.tensor([0, 0, 0, 0, 1])
    features = class_features(z, y, 2, k_shot=2)
    torch.testing.assert_close(features[0], 2 * z[:4].mean(0))
    torch.testing.assert_close(features[1], 2 * z[4])


def test_relation_module_reads_class_features_and_query_embeddings():
    seen = []

    class Record(nn.Module):
        def forward(self, class_features, z_query):
            seen.append((class_features, z_query))
            return z_query[:, :1] - class_features[:, 0]

    net = RelationNetwork(nn.Identity(), Record(), (2,))
    classes = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    queries = torch.tensor([[5.0, 6.0], [7.0, 8.0], [9.0, 0.0]])
    logits = net.relation_logits(classes, queries)
    assert seen[0][0] is classes and seen[0][1] is queries
    torch.testing.assert_close(logits[2], torch.tensor([8.0, 6.0]))
    torch.testing.assert_close(net.relation_scores(classes, queries), logits.sigmoid())


def test_pair_layer_equals_the_layer_on_each_concatenated_pair():
    torch.manual_seed(0)
    classes, queries = torch.randn(3, 4, 5, 5), torch.randn(2, 4, 5, 5)
    pairs = torch.cat(
        [classes.expand(2, 3, 4, 5, 5), queries[:, None].expand(2, 3, 4, 5, 5)], 2
    ).flatten(0, 1)  # row j * n_way + i is C(class i, query j)
    conv = nn.Conv2d(8, 6, kernel_size=3, padding=1)
    torch.testing.assert_close(pair_layer(conv, classes, queries), conv(pairs))
    linear = nn.Linear(8, 6)
    torch.testing.assert_close(
        pair_layer(linear, classes[:, :, 0, 0], queries[:, :, 0, 0]),
        linear(pairs[:, :, 0, 0]),
    )


@pytest.mark.parametrize(
    "relation, shape",
    [(ConvRelation((4, 7, 7)), (4, 7, 7)), (MLPRelation(4), (4,))],
    ids=["conv", "mlp"],
)
def test_relation_modules_equal_the_paper_on_concatenated_pairs(relation, shape):
    # The factorised first layer gives exactly g(C(class, query)) for every
    # pair, batch norm statistics included (training mode).
    torch.manual_seed(0)
    classes, queries = torch.randn(3, *shape), torch.randn(5, *shape)
    pairs = torch.cat(
        [classes.expand(5, 3, *shape), queries[:, None].expand(5, 3, *shape)], 2
    ).flatten(0, 1)
    layers = (
        nn.Sequential(relation.blocks, relation.fc)
        if isinstance(relation, ConvRelation)
        else relation.layers
    )
    torch.testing.assert_close(relation(classes, queries), layers(pairs).view(5, 3))


def test_relation_scores_lie_in_the_unit_interval(fitted, digits):
    module = copy.deepcopy(fitted.module_).eval().requires_grad_(False)
    z = torch.from_numpy(fitted.transform(digits.X_novel))
    scores = module.relation_scores(torch.from_numpy(fitted.class_features_), z)
    assert scores.shape == (len(z), 5)
    assert torch.all((scores >= 0) & (scores <= 1))
    x = torch.from_numpy(digits.X_novel[:10])
    out = module(x, torch.tensor([0, 1, 2, 3, 4, -1, -1, -1, -1, -1]))
    assert out.shape == (5, 5) and torch.all((out >= 0) & (out <= 1))


def test_mse_criterion_equals_the_hand_computed_value():
    scores = torch.tensor([[0.9, 0.2], [0.4, 0.7]])
    y = torch.tensor([0, 1])
    # (0.9 - 1)², 0.2², 0.4², (0.7 - 1)², averaged: (0.01 + 0.04 + 0.16 + 0.09) / 4.
    torch.testing.assert_close(RelationLoss()(scores, y), torch.tensor(0.075))


def test_bce_criterion_equals_the_hand_computed_value():
    scores = torch.tensor([[0.9, 0.2], [0.4, 0.7]])
    y = torch.tensor([0, 1])
    expected = -np.mean(np.log([0.9, 0.8, 0.6, 0.7]))
    torch.testing.assert_close(
        RelationLoss("bce")(scores, y), torch.tensor(expected, dtype=torch.float32)
    )


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_the_net_trains_with_the_chosen_loss(digits, loss):
    clf = RelationClassifier(loss=loss, **{**FAST, "max_epochs": 4})
    clf.fit(digits.X_base, digits.y_base)
    assert clf._criterion.loss == loss
    losses = clf.history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    # One-hot targets of 5 classes: the constant score 1/5 has MSE 0.16.
    if loss == "mse":
        assert losses[-1] < 0.16


def test_predict_proba_is_the_normalised_relation_scores(fitted, digits):
    z = torch.from_numpy(fitted.transform(digits.X_novel[:7]))
    module = copy.deepcopy(fitted.module_).eval().requires_grad_(False)
    r = module.relation_scores(torch.from_numpy(fitted.class_features_), z).numpy()
    np.testing.assert_allclose(
        fitted.predict_proba(digits.X_novel[:7]),
        r / r.sum(1, keepdims=True),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        fitted.decision_function(digits.X_novel[:7]), np.log(r), rtol=1e-4
    )


def test_predictions_use_batch_norm_running_statistics(fitted, digits):
    # Scores of a sample do not depend on the other samples predicted with it.
    proba = fitted.predict_proba(digits.X_novel)
    np.testing.assert_allclose(
        fitted.predict_proba(digits.X_novel[:3]), proba[:3], rtol=1e-5
    )


# Embedding and relation modules.


def test_images_keep_feature_maps_and_get_a_convolutional_relation_module(
    fitted_images, tiny_images
):
    X, _ = tiny_images
    module = fitted_images.module_
    assert isinstance(module.backbone, RelationEncoder)
    assert isinstance(module.relation, ConvRelation)
    assert fitted_images.feature_shape_ == (64, 7, 7)
    # Two poolings of the 7x7 maps leave 1x1: the first linear layer has
    # 64 inputs, as in the paper.
    assert module.relation.fc[1].in_features == 64
    assert fitted_images.class_features_.shape == (4, 64, 7, 7)
    Z = fitted_images.transform(X)
    assert Z.shape == (40, 64 * 7 * 7) and Z.dtype == np.float32
    assert fitted_images.get_feature_names_out().shape == (64 * 7 * 7,)
    assert fitted_images.predict(X).shape == (40,)


def test_relation_encoder_is_conv4_without_its_last_two_poolings():
    encoder = RelationEncoder(in_channels=3, out_channels=16)
    assert encoder(torch.zeros(2, 3, 84, 84)).shape == (2, 16, 21, 21)
    pools = [isinstance(block[3], nn.MaxPool2d) for block in encoder.encoder]
    assert pools == [True, True, False, False]


def test_conv_relation_skips_pooling_on_tiny_maps():
    relation = ConvRelation((8, 1, 1))
    assert relation(torch.zeros(3, 8, 1, 1), torch.zeros(2, 8, 1, 1)).shape == (2, 3)


def test_tabular_data_gets_mlp_embedding_and_relation(fitted, digits):
    assert isinstance(fitted.module_.backbone, MLP)
    assert isinstance(fitted.module_.relation, MLPRelation)
    assert fitted.transform(digits.X_novel).shape == (len(digits.X_novel), 64)


def test_flat_backbone_on_images_gets_the_mlp_relation_module(tiny_images):
    X, y = tiny_images
    clf = RelationClassifier(
        backbone="conv4", n_query=2, max_epochs=1, episodes_per_epoch=2
    ).fit(X, y)
    assert isinstance(clf.module_.backbone, Conv4)
    assert isinstance(clf.module_.relation, MLPRelation)
    assert clf.transform(X).shape == (40, 64)


# The estimator contract.


def test_class_features_after_adapt_are_rescaled_sums_of_embeddings(fitted, digits):
    clf = copy.deepcopy(fitted).adapt(digits.X_novel[:40], digits.y_novel[:40])
    Z = clf.transform(digits.X_novel[:40])
    expected = [clf.k_shot * Z[digits.y_novel[:40] == c].mean(0) for c in clf.classes_]
    np.testing.assert_allclose(clf.class_features_, expected, rtol=1e-5, atol=1e-5)


def test_pickle_round_trip_keeps_predictions(fitted_images, tiny_images):
    X, y = tiny_images
    restored = pickle.loads(pickle.dumps(fitted_images))
    np.testing.assert_array_equal(
        restored.predict_proba(X), fitted_images.predict_proba(X)
    )
    restored.adapt(X[::2], y[::2])
    assert restored.predict(X[1::2]).shape == (20,)


@pytest.mark.parametrize("data", ["digits", "images"])
def test_episode_accuracies_equal_adapting_a_copy_in_every_episode(
    data, fitted, fitted_images, digits, tiny_images
):
    if data == "digits":
        clf, X, y = fitted, digits.X_novel, digits.y_novel
    else:
        clf, (X, y) = fitted_images, tiny_images
    scores = evaluate_episodes(
        clf, X, y, n_way=3, k_shot=2, n_query=4, n_episodes=8, random_state=7
    )
    slow = []
    for support, query in EpisodeSampler(3, 2, 4, 8, random_state=7).split(y=y):
        twin = copy.deepcopy(clf).adapt(X[support], y[support])
        slow.append(twin.score(X[query], y[query]))
    np.testing.assert_allclose(scores.accuracies, slow, atol=1e-6)


# Errors.


@pytest.mark.parametrize(
    "params, name",
    [({"loss": "l1"}, "loss"), ({"relation_dim": 0}, "relation_dim")],
)
def test_invalid_parameters(digits, params, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        RelationClassifier(**params).fit(digits.X_base, digits.y_base)


def test_relation_loss_rejects_unknown_names():
    with pytest.raises(ValueError, match="loss must be 'mse' or 'bce'; got 'l1'"):
        RelationLoss("l1")


def test_one_class_is_not_enough(digits):
    one = digits.y_base == 0
    with pytest.raises(ValueError, match="at least 2 classes in y.*got 1 class"):
        RelationClassifier(**FAST).fit(digits.X_base[one], digits.y_base[one])


def test_backbone_output_must_be_flat_or_feature_maps(digits):
    with pytest.raises(ValueError, match=r"\(batch, d\) or feature maps"):
        RelationClassifier(backbone=nn.Unflatten(1, (2, 32))).fit(
            digits.X_base, digits.y_base
        )


def test_adapt_with_another_feature_shape(fitted, digits):
    with pytest.raises(ValueError, match="features"):
        fitted.adapt(digits.X_novel[:, :10], digits.y_novel)
