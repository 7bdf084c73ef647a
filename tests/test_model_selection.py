"""Specification of class-disjoint splitters and episodic evaluation."""

import copy
import io
import sys

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmeta import PrototypicalClassifier
from skmeta.model_selection import (
    ClassKFold,
    ClassShuffleSplit,
    EpisodicScorer,
    TaskSplit,
    evaluate_episodes,
    evaluate_settings,
)


@pytest.fixture(scope="module")
def fitted(digits):
    clf = PrototypicalClassifier(max_epochs=1, episodes_per_epoch=20, random_state=0)
    return clf.fit(digits.X_base, digits.y_base)


def _snapshot(clf):
    return (
        clf.classes_.copy(),
        clf.prototypes_.copy(),
        {k: v.clone() for k, v in clf.module_.state_dict().items()},
    )


@pytest.mark.parametrize(
    "splitter",
    [
        ClassKFold(n_splits=3),
        ClassKFold(3, shuffle=True, random_state=0),
        ClassShuffleSplit(4, test_size=0.3, random_state=0),
    ],
)
def test_no_class_is_in_both_train_and_test(splitter):
    y = np.repeat([f"class{i}" for i in range(9)], 4)
    X = np.zeros((len(y), 2))
    n = 0
    for train, test in splitter.split(X, y):
        assert set(y[train]).isdisjoint(y[test])
        assert len(train) + len(test) == len(y) or isinstance(
            splitter, ClassShuffleSplit
        )
        n += 1
    assert n == splitter.get_n_splits(X, y)


def test_class_k_fold_tests_every_class_exactly_once():
    y = np.repeat(np.arange(7), 3)
    tested = np.concatenate([test for _, test in ClassKFold(n_splits=3).split(y, y)])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(y)))


def test_splitters_need_labels():
    with pytest.raises(ValueError, match="needs the labels y"):
        next(ClassKFold().split(np.zeros((4, 1))))


def test_class_k_fold_in_cross_validate_holds_out_classes():
    # An ordinary classifier never predicts the held-out classes, so its
    # accuracy under a class-disjoint split is 0: the split is by class.
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(6), 10)
    X = rng.normal(size=(60, 3)) + y[:, None]
    scores = cross_validate(LogisticRegression(), X, y, cv=ClassKFold(n_splits=3))
    np.testing.assert_array_equal(scores["test_score"], 0)


def test_scores_report_mean_and_95_percent_ci_half_width(fitted, digits):
    scores = evaluate_episodes(
        fitted, digits.X_novel, digits.y_novel, n_episodes=50, random_state=0
    )
    acc = scores.accuracies
    assert acc.shape == (50,) and acc.dtype == np.float64
    assert scores.mean == pytest.approx(acc.mean())
    assert scores.ci95 == pytest.approx(1.96 * acc.std() / np.sqrt(50))
    # 15 queries in each of 5 classes: accuracies are multiples of 1/75.
    np.testing.assert_allclose(acc * 75, np.round(acc * 75), atol=1e-4)
    assert "5-way 1-shot" in str(scores)


@pytest.fixture
def embedded(fitted, monkeypatch):
    """The rows of each call of the fitted network's ``embed``, from now on."""
    rows = []
    original = type(fitted.module_).embed

    def counting_embed(module, x):
        rows.append(len(x))
        return original(module, x)

    monkeypatch.setattr(type(fitted.module_), "embed", counting_embed)
    return rows


def test_each_sample_is_embedded_once_per_evaluation(fitted, digits, embedded):
    evaluate_episodes(
        fitted, digits.X_novel, digits.y_novel, n_episodes=100, random_state=0
    )
    assert sum(embedded) == len(digits.X_novel)


def test_settings_equal_separate_evaluations_from_one_embedding(
    fitted, digits, embedded
):
    settings = [(5, 1), (3, 5), (2, 1)]
    separate = {
        (n_way, k_shot): evaluate_episodes(
            fitted,
            digits.X_novel,
            digits.y_novel,
            n_way=n_way,
            k_shot=k_shot,
            n_query=4,
            n_episodes=20,
            random_state=3,
        )
        for n_way, k_shot in settings
    }
    embedded.clear()  # count the rows of evaluate_settings only
    together = evaluate_settings(
        fitted,
        digits.X_novel,
        digits.y_novel,
        settings,
        n_query=4,
        n_episodes=20,
        random_state=3,
    )
    assert list(together) == settings
    for setting, scores in together.items():
        np.testing.assert_array_equal(scores.accuracies, separate[setting].accuracies)
        assert (scores.n_way, scores.k_shot, scores.n_query) == (*setting, 4)
    assert sum(embedded) == len(digits.X_novel)  # once, for the three settings


@pytest.mark.parametrize("settings", [[], [(5,)], [(1, 1)], [(5, 0)], [(5.0, 1)], [5]])
def test_settings_must_be_n_way_k_shot_pairs(fitted, digits, settings):
    with pytest.raises(ValueError, match="settings must hold"):
        evaluate_settings(fitted, digits.X_novel, digits.y_novel, settings)


def test_every_setting_is_checked_before_anything_is_embedded(fitted, digits):
    fitted = copy.copy(fitted)
    fitted._episode_scorer = None  # would raise TypeError if reached
    with pytest.raises(ValueError, match="n_way=50 needs 50 classes"):
        evaluate_settings(fitted, digits.X_novel, digits.y_novel, [(5, 1), (50, 1)])


def test_same_seed_same_episodes(fitted, digits):
    a = evaluate_episodes(
        fitted, digits.X_novel, digits.y_novel, n_episodes=30, random_state=3
    )
    b = evaluate_episodes(
        fitted, digits.X_novel, digits.y_novel, n_episodes=30, random_state=3
    )
    np.testing.assert_array_equal(a.accuracies, b.accuracies)


def test_scorer_returns_the_mean_accuracy(fitted, digits):
    shape = dict(n_way=4, k_shot=3, n_query=5, n_episodes=25, random_state=1)
    scorer = EpisodicScorer(**shape)
    expected = evaluate_episodes(fitted, digits.X_novel, digits.y_novel, **shape).mean
    assert scorer(fitted, digits.X_novel, digits.y_novel) == expected
    assert "n_way=4" in repr(scorer)


def test_cross_validate_with_class_folds_and_episodic_scorer(digits):
    result = cross_validate(
        PrototypicalClassifier(max_epochs=1, episodes_per_epoch=5, random_state=0),
        digits.X_base,
        digits.y_base,
        cv=ClassKFold(n_splits=2),
        scoring=EpisodicScorer(n_way=2, n_query=5, n_episodes=10),
        error_score="raise",
    )
    assert np.all((result["test_score"] > 0.5) & (result["test_score"] <= 1))


def test_errors(fitted, digits):
    with pytest.raises(
        TypeError, match="few-shot classifier .*adapt.*LogisticRegression"
    ):
        evaluate_episodes(LogisticRegression(), digits.X_novel, digits.y_novel)
    with pytest.raises(ValueError, match="n_way=6 needs 6 classes"):
        evaluate_episodes(fitted, digits.X_novel, digits.y_novel, n_way=6)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        evaluate_episodes(fitted, digits.X_novel, digits.y_novel[:-1])
    with pytest.raises(ValueError, match="'n_episodes' parameter"):
        evaluate_episodes(fitted, digits.X_novel, digits.y_novel, n_episodes=0)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        evaluate_episodes(PrototypicalClassifier(), digits.X_novel, digits.y_novel)


# --- any few-shot classifier, and what cannot be scored ------------------------------


class _CentroidFewShot(ClassifierMixin, BaseEstimator):
    """A few-shot classifier outside skmeta: NearestCentroid on the support set."""

    def fit(self, X, y):
        return self.adapt(X, y)

    def adapt(self, X, y):
        self.centroid_ = NearestCentroid().fit(X, y)
        self.classes_ = self.centroid_.classes_
        return self

    def predict(self, X):
        return self.centroid_.predict(X)


def test_any_classifier_with_adapt_is_scored_by_adapting_a_copy(digits):
    ours = PrototypicalClassifier(backbone=torch.nn.Flatten(), max_epochs=0)
    ours.fit(digits.X_base, digits.y_base)
    other = _CentroidFewShot().fit(digits.X_base, digits.y_base)
    kwargs = dict(n_way=3, k_shot=2, n_episodes=20, random_state=0)
    expected = evaluate_episodes(ours, digits.X_novel, digits.y_novel, **kwargs)
    got = evaluate_episodes(other, digits.X_novel, digits.y_novel, **kwargs)
    np.testing.assert_allclose(got.accuracies, expected.accuracies, atol=1e-6)
    assert set(other.classes_) == set(digits.y_base)  # its copies adapted, not it


class _SeenGroups(_CentroidFewShot):
    """Records feature 0 (the group) of every support set and query batch.

    In a class attribute: the copies that evaluation adapts record there too.
    """

    seen = []

    def adapt(self, X, y):
        self.seen.append(set(X[:, 0].tolist()))
        return super().adapt(X, y)

    def predict(self, X):
        self.seen.append(set(X[:, 0].tolist()))
        return super().predict(X)


def test_with_groups_every_episode_is_drawn_within_one_group(digits):
    X, y = digits.X_novel.copy(), digits.y_novel
    groups = np.arange(len(y)) % 3
    X[:, 0] = groups
    kwargs = dict(n_way=3, k_shot=2, n_episodes=20, random_state=0, groups=groups)
    other = _SeenGroups().fit(X, y)
    _SeenGroups.seen.clear()
    got = evaluate_episodes(other, X, y, **kwargs)
    assert len(_SeenGroups.seen) == 40 and all(len(g) == 1 for g in _SeenGroups.seen)
    # score_episodes (the fast path) draws the same grouped episodes.
    ours = PrototypicalClassifier(backbone=torch.nn.Flatten(), max_epochs=0).fit(X, y)
    expected = evaluate_episodes(ours, X, y, **kwargs)
    np.testing.assert_allclose(got.accuracies, expected.accuracies, atol=1e-6)
    with pytest.raises(ValueError, match=f"groups has {len(y) - 1} entries"):
        evaluate_episodes(ours, X, y, **{**kwargs, "groups": groups[1:]})


def test_a_pipeline_ending_in_a_few_shot_classifier_is_scored(digits):
    pipe = make_pipeline(StandardScaler(), PrototypicalClassifier(max_epochs=0))
    pipe.fit(digits.X_base, digits.y_base)
    kwargs = dict(n_way=5, k_shot=1, n_episodes=20, random_state=0)
    got = evaluate_episodes(pipe, digits.X_novel, digits.y_novel, **kwargs)
    X = pipe[0].transform(digits.X_novel)
    expected = evaluate_episodes(pipe[-1], X, digits.y_novel, **kwargs)
    np.testing.assert_array_equal(got.accuracies, expected.accuracies)
    scorer = EpisodicScorer(n_way=5, k_shot=1, n_episodes=20, random_state=0)
    assert scorer(pipe, digits.X_novel, digits.y_novel) == pytest.approx(got.mean)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_way": 1}, "n_way"),
        ({"k_shot": 0}, "k_shot"),
        ({"n_episodes": 0.5}, "n_episodes"),
    ],
)
def test_episodic_scorer_checks_its_arguments_when_built(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter of EpisodicScorer"):
        EpisodicScorer(**kwargs)


def test_labels_are_checked_as_in_fit(fitted, digits):
    y = digits.y_novel.astype(float)
    y[:3] = np.nan
    with pytest.raises(ValueError, match="y must be class labels.*NaN"):
        evaluate_episodes(fitted, digits.X_novel, y, n_episodes=5)


def test_plain_accuracy_on_classes_outside_the_support_set_names_the_scorer(
    fitted, digits
):
    with pytest.raises(ValueError, match="outside the support set.*EpisodicScorer"):
        fitted.score(digits.X_novel, digits.y_novel)
    # In cross_validate that is a warning and NaN scores, never a silent 0.0.
    with pytest.warns(UserWarning, match="Scoring failed"):
        scores = cross_validate(
            PrototypicalClassifier(max_epochs=1, episodes_per_epoch=2),
            digits.X_base,
            digits.y_base,
            cv=ClassKFold(n_splits=2),
        )["test_score"]
    assert np.isnan(scores).all()


# --- TaskSplit: one cold-start task per group ---------------------------------

# Users a and b can give 2 likes and 2 dislikes with queries of both left;
# c has only 2 dislikes, so no query dislike: it is left out.
TASK_Y = np.array([1, 0, 1, 0, 1, 0, 1] + [0, 0, 0, 1, 1, 1] + [1, 1, 1, 0, 0])
TASK_GROUPS = np.array(["a"] * 7 + ["b"] * 6 + ["c"] * 5)


def test_task_split_gives_each_eligible_group_k_shot_per_class_then_the_rest():
    splitter = TaskSplit(k_shot=2, random_state=0)
    tasks = list(splitter.split(None, TASK_Y, TASK_GROUPS))
    assert len(tasks) == splitter.get_n_splits(None, TASK_Y, TASK_GROUPS) == 2
    for (support, query), user in zip(tasks, ["a", "b"], strict=True):
        rows = np.flatnonzero(np.equal(TASK_GROUPS, user))
        np.testing.assert_array_equal(TASK_Y[support], [0, 0, 1, 1])  # class-major
        assert support.dtype == query.dtype == np.int64
        np.testing.assert_array_equal(np.sort(np.r_[support, query]), rows)
        assert set(TASK_Y[query]) == {0, 1}
    again = list(TaskSplit(k_shot=2, random_state=0).split(None, TASK_Y, TASK_GROUPS))
    for (s1, _), (s2, _) in zip(tasks, again, strict=True):
        np.testing.assert_array_equal(s1, s2)


def test_task_split_needs_labels_and_groups_of_one_length():
    with pytest.raises(
        ValueError, match="the labels y and the groups; got groups=None"
    ):
        list(TaskSplit().split(None, TASK_Y, None))
    with pytest.raises(ValueError, match="got y=None and groups=None"):
        TaskSplit().get_n_splits()
    with pytest.raises(ValueError, match=f"groups has {len(TASK_Y) - 1} entries"):
        list(TaskSplit().split(None, TASK_Y, TASK_GROUPS[1:]))
    with pytest.raises(ValueError, match="k_shot"):
        TaskSplit(k_shot=0)


def test_episodic_scorer_draws_episodes_within_the_routed_groups():
    # 8 users, each with 4 liked and 4 disliked items: scored through
    # cross_validate with routing, each fold's score is evaluate_episodes'
    # with the test fold's groups.
    rng = np.random.RandomState(0)
    groups = np.repeat(np.arange(8), 8)
    y = np.tile(np.repeat([0, 1], 4), 8)
    X = rng.normal(size=(len(y), 5)).astype(np.float32) + y[:, None]
    shape = dict(n_way=2, k_shot=1, n_query=3, n_episodes=10, random_state=0)
    model = PrototypicalClassifier(max_epochs=0, n_way=2, k_shot=1, n_query=1)
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            model.set_fit_request(groups=True),
            X,
            y,
            cv=GroupKFold(n_splits=2),
            params={"groups": groups},
            scoring=EpisodicScorer(**shape).set_score_request(groups=True),
            return_estimator=True,
            return_indices=True,
            error_score="raise",
        )
    for estimator, test, score in zip(
        result["estimator"],
        result["indices"]["test"],
        result["test_score"],
        strict=True,
    ):
        within = evaluate_episodes(
            estimator, X[test], y[test], groups=groups[test], **shape
        )
        assert score == within.mean
        across = evaluate_episodes(estimator, X[test], y[test], **shape)
        assert not np.array_equal(within.accuracies, across.accuracies)


# --- folds that cannot form an episode; progress ---------------------------------


def _six_classes():
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(6), 10)
    return rng.normal(size=(60, 3)).astype(np.float32) + y[:, None], y


def _grid_search(**kwargs):
    """Three class folds of 2 classes each, scored 5-way: no fold has an episode."""
    return GridSearchCV(
        PrototypicalClassifier(backbone="identity", embedding_dim=3, max_epochs=0),
        {"distance": ["euclidean", "cosine"]},
        cv=ClassKFold(3),
        scoring=EpisodicScorer(n_way=5, n_episodes=2),
        **kwargs,
    )


def test_a_search_whose_folds_cannot_form_an_episode_stops_with_what_to_do():
    X, y = _six_classes()
    with pytest.raises(ValueError) as error:
        _grid_search(error_score="raise").fit(X, y)
    message = str(error.value)
    for part in ("n_way=5", "these 2 classes", "smaller n_way", "fewer folds"):
        assert part in message


def test_under_the_default_error_score_the_warning_says_what_to_do():
    # scikit-learn catches what a scorer raises: with error_score=np.nan each
    # fold scores NaN, and its warning carries the scorer's message.
    X, y = _six_classes()
    with pytest.warns(UserWarning) as record:
        search = _grid_search().fit(X, y)
    messages = [str(w.message) for w in record]
    assert any("error_score='raise' stops at such a fold" in m for m in messages)
    assert np.isnan(search.cv_results_["mean_test_score"]).all()


class _NeverScores(_CentroidFewShot):
    def score_episodes(self, X, y, episodes, groups=None):
        raise AssertionError("scored although no episode can be drawn")


def test_evaluation_checks_the_episode_shape_before_scoring(digits):
    clf = _NeverScores().fit(digits.X_base, digits.y_base)
    two_classes = np.isin(digits.y_novel, [5, 6])
    with pytest.raises(ValueError, match="n_way=5 needs 5 classes"):
        evaluate_episodes(clf, digits.X_novel[two_classes], digits.y_novel[two_classes])


def _evaluate_quickly(scorer=evaluate_episodes, **kwargs):
    X, y = _six_classes()
    clf = _CentroidFewShot().fit(X, y)
    return scorer(clf, X, y, **kwargs)


_SHAPE = dict(n_way=2, k_shot=2, n_query=1, n_episodes=3, random_state=0)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_shown_on_a_terminal_or_when_asked(capsys, monkeypatch):
    _evaluate_quickly(**_SHAPE)  # pytest's captured stderr is not a terminal
    _evaluate_quickly(**_SHAPE, verbose=False)
    assert capsys.readouterr().err == ""
    _evaluate_quickly(**_SHAPE, verbose=True)
    assert "2-way 2-shot episodes" in capsys.readouterr().err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _evaluate_quickly(**_SHAPE)
    assert "3/3" in terminal.getvalue()
    _evaluate_quickly(**_SHAPE, verbose=False)
    _evaluate_quickly(EpisodicScorer(**_SHAPE))  # nor in model selection
    assert terminal.getvalue().count("3/3") == 1
