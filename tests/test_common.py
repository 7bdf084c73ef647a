"""The contract every few-shot classifier keeps, and what every estimator shares.

One test per promise, parametrized over the estimators: episode scoring equals
adapting a copy, adapting keeps the meta-learned weights, a seed fixes the
model, meta-training beats the untrained model, and the parameters (declared
once in :mod:`skmeta._params`) behave as scikit-learn and skorch users expect.
"""

import copy
import inspect
import logging
import pickle

import numpy as np
import pytest
import torch
from helpers import (
    EMBEDDERS,
    FEW_SHOT,
    FEW_SHOT_TRAINED,
    REGRESSORS,
    STUDENTS,
    TEST_PARAMS,
    UNSUPERVISED,
    assert_same_weights,
    instances,
    weights,
)
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from torch import nn

from skmeta import EpisodeSampler, PrototypicalClassifier
from skmeta.backbones import BACKBONES, MLP
from skmeta.fewshot import CLASSIFIERS as METHODS
from skmeta.fewshot import ReptileClassifier, TransferClassifier
from skmeta.model_selection import ClassKFold, EpisodicScorer, evaluate_episodes

#: Every registered few-shot classifier with short training, and the settings
#: of its own in helpers.TEST_PARAMS: a new method is checked with no entry.
CLASSIFIERS = instances(METHODS, FEW_SHOT_TRAINED)
ESTIMATORS = FEW_SHOT + EMBEDDERS + REGRESSORS + UNSUPERVISED + STUDENTS


def test_every_registered_classifier_is_checked():
    assert {type(clf) for clf in CLASSIFIERS.values()} == set(METHODS.values())
    assert set(TEST_PARAMS) <= set(METHODS.values()), "a setting of no classifier"


@pytest.fixture(scope="module", params=list(CLASSIFIERS))
def fitted(request, digits):
    return clone(CLASSIFIERS[request.param]).fit(digits.X_base, digits.y_base)


# Episodes.


def test_episode_scores_equal_adapting_a_copy_in_every_episode(fitted, digits):
    shape = dict(n_way=3, k_shot=2, n_query=4, n_episodes=8, random_state=7)
    scores = evaluate_episodes(fitted, digits.X_novel, digits.y_novel, **shape)
    slow = []
    for support, query in EpisodeSampler(**shape).split(y=digits.y_novel):
        twin = copy.deepcopy(fitted).adapt(
            digits.X_novel[support], digits.y_novel[support]
        )
        slow.append(twin.score(digits.X_novel[query], digits.y_novel[query]))
    np.testing.assert_allclose(scores.accuracies, slow, atol=1e-6)


def test_episode_losses_are_the_log_loss_of_predict_proba(fitted, digits):
    episodes = EpisodeSampler(3, 2, 4, 3, random_state=1)
    losses, _ = fitted.score_episodes(digits.X_novel, digits.y_novel, episodes)
    for loss, (support, query) in zip(
        losses, episodes.split(y=digits.y_novel), strict=True
    ):
        twin = copy.deepcopy(fitted).adapt(
            digits.X_novel[support], digits.y_novel[support]
        )
        proba = twin.predict_proba(digits.X_novel[query])
        truth = np.searchsorted(twin.classes_, digits.y_novel[query])
        expected = -np.mean(np.log(proba[np.arange(len(truth)), truth]))
        np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_evaluation_does_not_change_the_estimator(fitted, digits):
    state = weights(fitted.module_)
    before = fitted.predict_proba(digits.X_base[:20])
    evaluate_episodes(
        fitted, digits.X_novel, digits.y_novel, n_episodes=4, random_state=0
    )
    assert_same_weights(fitted.module_, state)
    np.testing.assert_array_equal(fitted.classes_, np.unique(digits.y_base))
    np.testing.assert_array_equal(fitted.predict_proba(digits.X_base[:20]), before)


def test_adapt_takes_novel_classes_and_keeps_the_meta_learned_weights(fitted, digits):
    twin = copy.deepcopy(fitted)
    state = weights(twin.module_)
    labels = np.array(list("abcde"))[digits.y_novel - 5]
    twin.adapt(digits.X_novel[::5], labels[::5])
    np.testing.assert_array_equal(twin.classes_, list("abcde"))
    assert set(twin.predict(digits.X_novel)) <= set("abcde")
    assert twin.predict_proba(digits.X_novel).shape == (len(labels), 5)
    assert_same_weights(twin.module_, state)


def test_the_training_data_is_the_default_support_set(fitted, digits):
    np.testing.assert_array_equal(fitted.classes_, np.unique(digits.y_base))
    assert fitted.score(digits.X_base, digits.y_base) > 0.6  # chance: 0.2


#: Classifiers whose short training shows no gain on digits, and why.
NO_GAIN_ON_DIGITS = {
    ReptileClassifier: "Reptile's 20 meta-updates here leave digits where they "
    "were (55% before and after); test_reptile.py shows its gain on Omniglot",
    TransferClassifier: "the untrained MLP's centred, normalised features already "
    "reach 93% (95% trained); test_transfer.py shows its gain on Omniglot",
}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_meta_training_beats_the_untrained_model_on_held_out_samples(name, digits):
    if type(CLASSIFIERS[name]) in NO_GAIN_ON_DIGITS:
        pytest.skip(NO_GAIN_ON_DIGITS[type(CLASSIFIERS[name])])
    # Digits has 5 base classes: too few to transfer to novel ones (the
    # Omniglot tests of test_prototypical and test_reptile do that);
    # meta-training must still classify unseen samples of its classes better
    # than the untrained model.
    train, held_out = slice(0, None, 2), slice(1, None, 2)

    def accuracy(max_epochs):
        clf = clone(CLASSIFIERS[name]).set_params(max_epochs=max_epochs)
        clf.fit(digits.X_base[train], digits.y_base[train])
        return clf.score(digits.X_base[held_out], digits.y_base[held_out])

    untrained, trained = accuracy(0), accuracy(3)
    assert trained > untrained + 0.02, (untrained, trained)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_max_epochs_zero_keeps_the_initial_weights(name, digits):
    clf = clone(CLASSIFIERS[name]).set_params(max_epochs=0)
    clf.fit(digits.X_base, digits.y_base)
    torch.manual_seed(clf._seed())  # the initialisation fit draws from its seed
    fresh = clf._build_network()
    assert_same_weights(clf.module_, weights(fresh))
    assert clf.n_steps_ == 0 and clf.stop_reason_ == "max_epochs"


# Round trips and seeds.


def test_predictions_do_not_depend_on_how_queries_are_chunked(fitted, digits):
    X = digits.X_novel[:45]
    whole = clone(fitted).set_params(batch_size=1000)
    chunked = clone(fitted).set_params(batch_size=4)
    for model in (whole, chunked):
        vars(model).update(
            {k: v for k, v in vars(fitted).items() if fitted._is_fitted_state(k)}
        )
    np.testing.assert_allclose(
        chunked.predict_proba(X), whole.predict_proba(X), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(chunked.predict(X), whole.predict(X))


def test_pickle_round_trip_keeps_predictions(fitted, digits):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        restored.predict_proba(digits.X_novel), fitted.predict_proba(digits.X_novel)
    )


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_same_seed_same_model_and_other_seed_another(name, digits):
    def fit(seed):
        clf = clone(CLASSIFIERS[name]).set_params(random_state=seed)
        return clf.fit(digits.X_base, digits.y_base).predict_proba(digits.X_novel)

    np.testing.assert_array_equal(fit(0), fit(0))
    assert not np.allclose(fit(0), fit(1))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_unfitted_use_raises_not_fitted(cls):
    est = cls()
    methods = ["transform"]
    methods += [
        m for m in ("predict", "predict_proba", "decision_function") if hasattr(est, m)
    ]
    for method in methods:
        with pytest.raises(NotFittedError):
            getattr(est, method)(np.zeros((2, 64)))
    if hasattr(est, "adapt"):
        with pytest.raises(NotFittedError):
            est.adapt(np.zeros((2, 64)), [0, 1])


# Parameters, declared once (tests/test_params.py compares the declarations
# with the written signatures and docstrings).


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_parameters_past_the_first_few_are_keyword_only(cls):
    parameters = list(inspect.signature(cls).parameters.values())
    positional = [p for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert 1 <= len(positional) <= 3
    too_many = [p.default for p in parameters[: len(positional) + 1]]
    with pytest.raises(TypeError, match="positional argument"):
        cls(*too_many)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_backbone_parameters_are_nested_parameters(cls):
    est = cls(backbone_params={"hidden_dims": (8,)})
    assert est.get_params()["backbone__hidden_dims"] == (8,)
    assert "backbone__hidden_dims" not in est.get_params(deep=False)
    original = est.backbone_params
    est.set_params(backbone__hidden_dims=(4, 4), max_epochs=3)
    assert est.backbone_params == {"hidden_dims": (4, 4)} and est.max_epochs == 3
    assert original == {"hidden_dims": (8,)}, "the old dict is not changed"
    assert clone(est).get_params()["backbone__hidden_dims"] == (4, 4)


def test_grid_search_tunes_a_backbone_parameter(digits):
    search = GridSearchCV(
        PrototypicalClassifier(max_epochs=1, episodes_per_epoch=5, random_state=0),
        {"backbone__hidden_dims": [(8,), (32, 32)]},
        cv=ClassKFold(n_splits=2),
        scoring=EpisodicScorer(n_way=2, n_query=5, n_episodes=10),
        error_score="raise",
    ).fit(digits.X_base, digits.y_base)
    widths = [
        m.out_features
        for m in search.best_estimator_.module_.backbone.modules()
        if isinstance(m, nn.Linear)
    ][:-1]
    assert tuple(widths) == search.best_params_["backbone__hidden_dims"]
    assert len(search.cv_results_["params"]) == 2


def test_a_backbone_registered_after_import_is_a_valid_name(digits, monkeypatch):
    class Narrow(MLP):
        def __init__(self, in_features, out_features=64):
            super().__init__(in_features, out_features, hidden_dims=(4,))

    monkeypatch.setitem(BACKBONES, "narrow", Narrow)
    clf = PrototypicalClassifier(backbone="narrow", max_epochs=0).fit(
        digits.X_base, digits.y_base
    )
    assert isinstance(clf.module_.backbone, Narrow)
    with pytest.raises(ValueError, match="'backbone' parameter .*'narrow'"):
        PrototypicalClassifier(backbone="wide").fit(digits.X_base, digits.y_base)


def test_the_shape_of_the_training_episodes_is_recorded(fitted, digits):
    if isinstance(fitted, TransferClassifier):
        pytest.skip("TransferClassifier trains on mini-batches, not episodes")
    # Digits' 5 base classes of about 180 samples: None resolves to all 5
    # classes, the default shots (5 for Reptile, 1 for the others) and queries
    # (5, or for Prototypical as many as make episodes of 480 samples).
    k_shot = 5 if isinstance(fitted, ReptileClassifier) else 1
    n_query = 480 // 5 - 1 if isinstance(fitted, PrototypicalClassifier) else 5
    assert (fitted.n_way_, fitted.k_shot_, fitted.n_query_) == (5, k_shot, n_query)
    narrow = clone(fitted).set_params(n_way=3, n_query=2, max_epochs=0)
    narrow.fit(digits.X_base, digits.y_base)
    assert (narrow.n_way_, narrow.n_query_) == (3, 2)


class _CountSteps(Callback):
    def initialize(self):
        self.steps = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.steps += 1


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_skorch_callbacks_see_every_step_and_verbose_prints_the_epoch_log(
    name, digits, capsys, caplog
):
    count = _CountSteps()
    clf = clone(CLASSIFIERS[name]).set_params(verbose=1, callbacks=[count])
    clf.fit(digits.X_base, digits.y_base)
    # One step per episode, per meta-batch for MAML and Reptile, per
    # mini-batch for TransferClassifier.
    if isinstance(clf, TransferClassifier):
        per_epoch = -(-len(digits.X_base) // clf.train_batch_size)
    else:
        per_epoch = -(-clf.episodes_per_epoch // getattr(clf, "meta_batch_size", 1))
    assert count.steps == clf.n_steps_ == 2 * per_epoch
    out = capsys.readouterr().out
    assert "train_loss" in out
    # fit ends with its training: the support set waits for a prediction,
    # which says so on the skmeta logger.
    assert "support set" not in out
    with caplog.at_level(logging.INFO, logger="skmeta"):
        clf.predict(digits.X_base[:2])
    assert caplog.messages[-1] == (
        f"embedding the {len(digits.X_base)} training samples as the support set"
    )
