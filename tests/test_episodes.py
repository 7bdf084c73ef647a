"""Specifications of the N-way K-shot episode sampler in skmeta.episodes."""

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from skmeta.episodes import EpisodeSampler

# 6 classes of 7 samples each, shuffled so that a class's samples are not
# contiguous in y: class-major output must come from the sampler, not from y.
Y6 = np.random.RandomState(0).permutation(np.repeat(np.arange(6), 7))


def episodes(y, groups=None, **params):
    params = {"n_way": 3, "k_shot": 2, "n_query": 3, "n_episodes": 20} | params
    return list(EpisodeSampler(**params).split(y=y, groups=groups))


def assert_same_episodes(first, second):
    assert len(first) == len(second)
    for (s1, q1), (s2, q2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(q1, q2)


# -- shapes and structure ---------------------------------------------------


def test_yields_n_episodes_of_int64_index_arrays_of_the_episode_sizes():
    eps = episodes(Y6, n_way=3, k_shot=2, n_query=4, n_episodes=11, random_state=0)
    assert len(eps) == 11
    for support, query in eps:
        assert support.dtype == np.int64
        assert query.dtype == np.int64
        assert support.shape == (3 * 2,)
        assert query.shape == (3 * 4,)


def test_indices_are_valid_positions_in_y():
    for support, query in episodes(Y6, random_state=0):
        both = np.concatenate([support, query])
        assert both.min() >= 0
        assert both.max() < len(Y6)


def test_support_rows_hold_one_class_each_and_query_rows_the_same_classes():
    n_way, k_shot, n_query = 4, 2, 3
    eps = episodes(Y6, n_way=n_way, k_shot=k_shot, n_query=n_query, random_state=1)
    for support, query in eps:
        support_labels = Y6[support].reshape(n_way, k_shot)
        query_labels = Y6[query].reshape(n_way, n_query)
        # every row is a single class ...
        assert (support_labels == support_labels[:, :1]).all()
        assert (query_labels == query_labels[:, :1]).all()
        # ... and row i of the query set is the class of row i of the support set
        np.testing.assert_array_equal(query_labels[:, 0], support_labels[:, 0])


def test_exactly_n_way_distinct_classes_per_episode():
    for support, query in episodes(Y6, n_way=5, k_shot=1, n_query=2, random_state=2):
        assert len(np.unique(Y6[support])) == 5
        assert set(Y6[query]) == set(Y6[support])


def test_no_query_index_is_in_its_episodes_support_set():
    for support, query in episodes(Y6, n_way=6, k_shot=3, n_query=4, random_state=3):
        assert np.intersect1d(support, query).size == 0


def test_indices_are_unique_within_an_episode():
    # k_shot + n_query == class size: every sample of a class is used once.
    for support, query in episodes(Y6, n_way=6, k_shot=3, n_query=4, random_state=4):
        both = np.concatenate([support, query])
        assert len(np.unique(both)) == len(both) == 6 * 7
        assert np.array_equal(np.sort(both), np.arange(len(Y6)))


def test_n_query_zero_gives_an_empty_query_set():
    support, query = episodes(Y6, n_way=2, k_shot=2, n_query=0, random_state=0)[0]
    assert support.shape == (4,)
    assert query.shape == (0,)
    assert query.dtype == np.int64


def test_works_with_string_labels():
    y = np.repeat(["cat", "dog", "emu", "fox"], 3).astype(object)
    for support, query in episodes(y, n_way=2, k_shot=1, n_query=2, random_state=0):
        support_labels = y[support].reshape(2, 1)
        query_labels = y[query].reshape(2, 2)
        assert set(support_labels[:, 0]) <= {"cat", "dog", "emu", "fox"}
        assert len(set(support_labels[:, 0])) == 2
        assert (query_labels == support_labels).all()


def test_works_with_non_contiguous_int_labels_and_list_input():
    labels = [-7, 3, 1000, 42]
    y = list(np.repeat(labels, 4))
    seen = set()
    for support, query in episodes(
        y, n_way=3, k_shot=2, n_query=2, n_episodes=50, random_state=0
    ):
        support_labels = np.asarray(y)[support].reshape(3, 2)
        query_labels = np.asarray(y)[query].reshape(3, 2)
        assert (support_labels == support_labels[:, :1]).all()
        assert (query_labels[:, 0] == support_labels[:, 0]).all()
        seen.update(support_labels[:, 0].tolist())
    assert seen == set(labels)


def test_classes_smaller_than_k_shot_plus_n_query_are_never_drawn():
    # classes 0..3 have 5 samples, class 4 has 4, class 5 has 1: with
    # k_shot + n_query = 5 only classes 0..3 are eligible.
    y = np.concatenate([np.repeat(np.arange(4), 5), np.full(4, 4), [5]])
    drawn = set()
    for support, query in episodes(
        y, n_way=2, k_shot=2, n_query=3, n_episodes=200, random_state=0
    ):
        drawn.update(y[support].tolist())
        drawn.update(y[query].tolist())
    assert drawn == {0, 1, 2, 3}


# -- randomness -------------------------------------------------------------


def test_same_int_seed_gives_identical_episodes_across_calls_and_instances():
    sampler = EpisodeSampler(n_way=3, k_shot=2, n_query=3, random_state=7)
    first = list(sampler.split(y=Y6))
    second = list(sampler.split(y=Y6))
    assert_same_episodes(first, second)
    other = EpisodeSampler(n_way=3, k_shot=2, n_query=3, random_state=7)
    assert_same_episodes(first, list(other.split(y=Y6)))


def test_different_seeds_give_different_episodes():
    first = episodes(Y6, random_state=0)
    second = episodes(Y6, random_state=1)
    assert any(
        not np.array_equal(s1, s2) or not np.array_equal(q1, q2)
        for (s1, q1), (s2, q2) in zip(first, second, strict=True)
    )


def test_episodes_differ_within_one_call():
    eps = episodes(Y6, n_episodes=10, random_state=0)
    assert len({tuple(s) + tuple(q) for s, q in eps}) > 1


def test_a_random_state_instance_advances_between_calls():
    rng = np.random.RandomState(0)
    sampler = EpisodeSampler(n_way=3, k_shot=2, n_query=3, random_state=rng)
    first = list(sampler.split(y=Y6))
    second = list(sampler.split(y=Y6))
    assert any(
        not np.array_equal(s1, s2)
        for (s1, _), (s2, _) in zip(first, second, strict=True)
    )
    # ... and it goes on from the instance's state: the same start replays.
    replay = EpisodeSampler(
        n_way=3, k_shot=2, n_query=3, random_state=np.random.RandomState(0)
    )
    assert_same_episodes(first, list(replay.split(y=Y6)))


def test_random_state_none_still_yields_valid_episodes():
    for support, query in episodes(Y6, random_state=None):
        assert len(np.unique(Y6[support])) == 3
        assert np.intersect1d(support, query).size == 0


# -- uniformity (deterministic: fixed seed, generous bounds) ----------------


def test_classes_are_drawn_uniformly_among_eligible_classes():
    # 10 eligible classes of 6 samples, 1 ineligible class of 1 sample (< 2).
    y = np.concatenate([np.repeat(np.arange(10), 6), [10]])
    n_episodes, n_way = 2000, 3
    counts = Counter()
    sampler = EpisodeSampler(
        n_way=n_way, k_shot=1, n_query=1, n_episodes=n_episodes, random_state=0
    )
    for support, _ in sampler.split(y=y):
        counts.update(y[support].tolist())
    assert set(counts) == set(range(10))
    observed = np.array([counts[c] for c in range(10)])
    assert observed.sum() == n_episodes * n_way
    # Each class is expected n_episodes * n_way / 10 = 600 times.
    assert stats.chisquare(observed).pvalue > 1e-4


def test_samples_are_drawn_uniformly_within_a_class_and_role():
    # 4 classes of 8 samples; an episode uses 2 + 2 of each of 2 classes.
    y = np.repeat(np.arange(4), 8)
    support_counts = np.zeros(len(y), dtype=int)
    query_counts = np.zeros(len(y), dtype=int)
    sampler = EpisodeSampler(
        n_way=2, k_shot=2, n_query=2, n_episodes=3000, random_state=0
    )
    for support, query in sampler.split(y=y):
        np.add.at(support_counts, support, 1)
        np.add.at(query_counts, query, 1)
    # every sample is drawn, and both as support and as query
    assert (support_counts > 0).all()
    assert (query_counts > 0).all()
    for counts in (support_counts, query_counts):
        assert stats.chisquare(counts).pvalue > 1e-4
    # Each sample: P(class drawn) * P(in support) = 2/4 * 2/8; 3000 * 1/8 = 375.
    np.testing.assert_allclose(support_counts.mean(), 375)
    assert np.abs(support_counts - 375).max() < 100


# -- errors -------------------------------------------------------------------


def test_too_few_eligible_classes_names_n_way_and_k_shot_plus_n_query():
    # 3 classes with >= 5 samples, n_way = 4
    y = np.concatenate([np.repeat(np.arange(3), 5), np.repeat([3, 4], 4)])
    sampler = EpisodeSampler(n_way=4, k_shot=2, n_query=3)
    with pytest.raises(ValueError, match=r"n_way=4.*k_shot \+ n_query = 5"):
        next(sampler.split(y=y))


def test_too_few_classes_at_all_is_an_error():
    y = np.repeat(np.arange(2), 10)
    with pytest.raises(ValueError, match=r"n_way=5"):
        next(EpisodeSampler(n_way=5, k_shot=1, n_query=1).split(y=y))


def test_exactly_n_way_eligible_classes_is_enough():
    y = np.repeat(np.arange(3), 5)
    support, _ = episodes(y, n_way=3, k_shot=2, n_query=3, random_state=0)[0]
    assert set(y[support]) == {0, 1, 2}


def test_y_none_is_an_error():
    with pytest.raises(ValueError, match=r"needs the labels y"):
        next(EpisodeSampler().split(X=np.zeros((10, 2))))


def test_two_dimensional_y_is_an_error():
    with pytest.raises(ValueError, match=r"1d array"):
        next(EpisodeSampler(n_way=2, k_shot=1, n_query=1).split(y=np.zeros((4, 2))))


def test_empty_y_gets_the_n_way_message():
    with pytest.raises(ValueError, match=r"n_way=5"):
        next(EpisodeSampler(n_way=5).split(y=np.array([], dtype=int)))


#: Values that each parameter of EpisodeSampler refuses.
REFUSED = {
    "n_way": [0, -2, 2.0],
    "k_shot": [0, "1"],
    "n_query": [-1],
    "n_episodes": [0, 1.5],
    "random_state": ["seed"],
}


@pytest.mark.parametrize(
    ("name", "value"), [(name, v) for name, values in REFUSED.items() for v in values]
)
def test_invalid_constructor_params_raise_invalid_parameter_error(name, value):
    with pytest.raises(ValueError, match=rf"'{name}' parameter"):
        EpisodeSampler(**{name: value})


def test_invalid_params_are_value_errors():
    with pytest.raises(ValueError, match=r"'n_way' parameter.*Got 0"):
        EpisodeSampler(n_way=0)


def test_numpy_integers_are_valid_params():
    sampler = EpisodeSampler(n_way=np.int64(2), k_shot=np.int32(1), n_query=1)
    support, query = next(sampler.split(y=Y6))
    assert support.shape == (2,)
    assert query.shape == (2,)


# -- episodes within groups (tasks) ------------------------------------------

# 4 users who each rated 6 items liked (1) or not (0); user "d" liked 5 of
# them, so has too few dislikes for an episode of 2 samples per class.
USERS = np.repeat(["a", "b", "c", "d"], 6)
LIKES = np.array([1, 0, 1, 0, 1, 0] * 3 + [1, 1, 1, 1, 1, 0])
#: An episode of one like and one dislike, with one query each.
ONE_SHOT = dict(n_way=2, k_shot=1, n_query=1)


def test_with_groups_every_episode_lies_within_one_eligible_group():
    eps = episodes(LIKES, groups=USERS, **ONE_SHOT, n_episodes=300, random_state=0)
    drawn = Counter()
    for support, query in eps:
        users = set(USERS[np.concatenate([support, query])])
        assert len(users) == 1
        drawn[users.pop()] += 1
        # Both classes, support and query class-major in the same order.
        assert sorted(LIKES[support]) == [0, 1]
        np.testing.assert_array_equal(LIKES[support], LIKES[query])
    # Groups are drawn uniformly among those that can host an episode.
    assert set(drawn) == {"a", "b", "c"}
    assert stats.chisquare(list(drawn.values())).pvalue > 1e-3


def test_within_groups_the_episode_classes_come_in_sorted_order():
    # Without groups the order is random; within groups, label order.
    grouped = episodes(Y6, groups=np.zeros(len(Y6)), n_episodes=50, random_state=0)
    for support, query in grouped:
        labels = Y6[support].reshape(3, 2)[:, 0]
        np.testing.assert_array_equal(labels, np.sort(labels))
        np.testing.assert_array_equal(Y6[query].reshape(3, 3)[:, 0], labels)
    ungrouped = episodes(Y6, n_episodes=50, random_state=0)
    assert any(np.any(np.diff(Y6[s][::2]) < 0) for s, _ in ungrouped)


def test_no_group_with_n_way_eligible_classes_is_an_error_naming_the_best():
    with pytest.raises(
        ValueError, match=r"none of the 4 groups has them \(the best has 1\)"
    ):
        episodes(LIKES, groups=USERS, n_way=2, k_shot=2, n_query=2)


def test_groups_of_another_length_or_mixed_types_are_errors():
    with pytest.raises(ValueError, match=r"groups has \d+ entries and y has \d+"):
        episodes(LIKES, groups=USERS[:-1], **ONE_SHOT)
    with pytest.raises(ValueError, match="groups must be of one sortable type"):
        mixed = np.array([1, "a"] * 12, dtype=object)
        episodes(LIKES, groups=mixed, **ONE_SHOT)


# -- splitter API -------------------------------------------------------------


def test_get_n_splits_is_n_episodes_and_ignores_its_arguments():
    sampler = EpisodeSampler(n_episodes=37)
    assert sampler.get_n_splits() == 37
    assert sampler.get_n_splits(np.zeros((5, 2)), Y6, groups=Y6) == 37
    assert len(list(EpisodeSampler(n_way=2, n_query=1, n_episodes=37).split(y=Y6))) == (
        sampler.get_n_splits()
    )


def test_x_is_ignored():
    with_x = list(
        EpisodeSampler(n_way=3, k_shot=1, n_query=2, random_state=0).split(
            np.zeros((len(Y6), 3)), Y6
        )
    )
    without_x = episodes(
        Y6, n_way=3, k_shot=1, n_query=2, n_episodes=100, random_state=0
    )
    assert_same_episodes(with_x, without_x)


def test_constructor_stores_params_verbatim_and_repr_shows_them():
    rng = np.random.RandomState(3)
    sampler = EpisodeSampler(
        n_way=4, k_shot=2, n_query=5, n_episodes=9, random_state=rng
    )
    assert sampler.n_way == 4
    assert sampler.k_shot == 2
    assert sampler.n_query == 5
    assert sampler.n_episodes == 9
    assert sampler.random_state is rng
    text = repr(EpisodeSampler(n_way=4, k_shot=2, n_query=5, random_state=1))
    assert text == (
        "EpisodeSampler(n_way=4, k_shot=2, n_query=5, n_episodes=100, random_state=1)"
    )
