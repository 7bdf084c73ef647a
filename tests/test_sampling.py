"""Specification of the sampling core (skmeta._sampling.ClassIndex)."""

import numpy as np
import pytest

from skmeta._sampling import ClassIndex
from skmeta.episodes import EpisodeSampler


@pytest.fixture
def skewed():
    """One class of 10,000 samples among 50 classes of 20: padding would cost 500k."""
    return np.concatenate([np.zeros(10_000, int), 1 + np.repeat(np.arange(50), 20)])


def test_each_row_holds_distinct_samples_of_its_class(skewed):
    index = ClassIndex(skewed)
    rng = np.random.RandomState(0)
    rows = np.array([0, 3, 7, 0])
    picks = index.draw(rows, 15, rng)
    assert picks.shape == (4, 15) and picks.dtype == np.int64
    for row, class_ in zip(picks, rows, strict=True):
        assert len(set(row.tolist())) == 15
        assert (skewed[row] == index.classes[class_]).all()


def test_a_large_class_is_drawn_uniformly_without_padding(skewed):
    index = ClassIndex(skewed)
    rng = np.random.RandomState(0)
    counts = np.zeros(10_000)
    for _ in range(2000):
        counts[index.draw(np.array([0]), 50, rng)[0]] += 1
    # 2000 draws of 50 of 10,000: each sample 10 times on average.
    assert counts.mean() == pytest.approx(10)
    assert 0.5 < counts[:5000].sum() / counts[5000:].sum() < 2
    assert counts.std() < 2 * np.sqrt(10)  # binomial spread, no favourites


def test_fill_repeats_the_samples_of_a_small_class_after_each_once():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    picks = ClassIndex(y).draw(np.array([0]), 7, np.random.RandomState(0), fill=True)
    assert set(picks[0, :3].tolist()) == {0, 1, 2}
    assert set(picks[0].tolist()) == {0, 1, 2}


def test_episodes_over_a_skewed_label_array_stay_small_and_correct(skewed):
    sampler = EpisodeSampler(
        n_way=5, k_shot=2, n_query=3, n_episodes=50, random_state=0
    )
    for support, query in sampler.split(y=skewed):
        s, q = skewed[support].reshape(5, 2), skewed[query].reshape(5, 3)
        assert (s == s[:, :1]).all() and (q == s[:, :1]).all()
        assert len(set(s[:, 0].tolist())) == 5
        assert not set(support.tolist()) & set(query.tolist())
