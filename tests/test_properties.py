"""Property-based tests over the public API (hypothesis).

Random shapes, dtypes, NaN and inf, label types and parameter values: every
outcome is a result that keeps its promises, or a ValueError, TypeError or
NotFittedError naming what is wrong. No other exception escapes, and nothing
hangs (each example has a deadline).
"""

import os
import warnings

import numpy as np
import pytest
from helpers import FEW_SHOT, own_params
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from skmeta import (
    ArcFaceEmbedder,
    ClassBalancedBatchSampler,
    EpisodeSampler,
    PrototypicalClassifier,
    TripletEmbedder,
)
from skmeta.model_selection import evaluate_episodes

CLEAR = (ValueError, TypeError, NotFittedError)
SETTINGS = settings(
    max_examples=int(os.environ.get("SKMETA_HYPOTHESIS_EXAMPLES", 25)),
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def labels(draw, n):
    """n labels of one random kind (ints, strings, floats, bools, a mix, NaN)."""
    n_classes = draw(st.integers(1, 6))
    codes = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    kinds = ["int", "str", "int", "str", "bool", "float", "mixed", "nan"]
    kind = draw(st.sampled_from(kinds))
    codes = np.asarray(codes, dtype=np.int64)
    if kind == "str":
        return np.array([f"class {c}" for c in codes])
    if kind == "float":
        return codes.astype(float) + 0.5
    if kind == "bool":
        return codes % 2 == 0
    if kind == "mixed":
        return np.array([c if c % 2 else str(c) for c in codes.tolist()], object)
    if kind == "nan":
        y = codes.astype(float)
        if n:
            y[draw(st.integers(0, n - 1))] = np.nan
        return y
    return codes


@st.composite
def data(draw):
    """(X, y): tabular or image-like, float or int, with NaN or inf at times."""
    n = draw(st.integers(0, 40))
    shapes = [(n, 3), (n, 3), (n, 1), (n, 1, 16, 16), (n, 0), (n, 5, 2)]
    shape = draw(st.sampled_from(shapes))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    X = np.random.RandomState(draw(st.integers(0, 99))).rand(*shape) * 4
    X = X.astype(dtype)
    if dtype != np.int64 and X.size and draw(st.integers(0, 3)) == 0:
        X.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return X, draw(labels(n))


def _few_shot(draw):
    cls = draw(st.sampled_from(FEW_SHOT))
    params = dict(
        n_way=draw(st.one_of(st.none(), st.none(), st.integers(2, 4), st.just(-1))),
        k_shot=draw(st.one_of(st.integers(1, 2), st.integers(1, 2), st.just(0))),
        n_query=draw(st.one_of(st.none(), st.integers(1, 2), st.just(0))),
        max_epochs=1,
        episodes_per_epoch=2,
        random_state=0,
    )
    return cls(**own_params(cls, params))


def _embedder(draw):
    cls = draw(st.sampled_from([TripletEmbedder, ArcFaceEmbedder]))
    return cls(
        n_samples_per_class=draw(st.one_of(st.integers(2, 4), st.just(1))),
        small_classes=draw(st.sampled_from(["replace", "skip", "raise"])),
        max_epochs=1,
        batches_per_epoch=2,
        embedding_dim=4,
        random_state=0,
    )


@SETTINGS
@given(st.data(), data())
def test_fit_predict_transform_give_a_result_or_a_clear_error(draws, Xy):
    X, y = Xy
    model = (
        _few_shot(draws.draw) if draws.draw(st.booleans()) else _embedder(draws.draw)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X, y)
        except CLEAR as exc:
            event(f"fit: {type(exc).__name__}")
            with pytest.raises(NotFittedError):
                model.transform(X)
            return
        event("fitted")
        Z = model.transform(X)
        assert Z.shape[0] == len(X) and Z.dtype == np.float32
        assert np.isfinite(Z).all()
        if hasattr(model, "predict"):
            assert set(model.predict(X).tolist()) <= set(model.classes_.tolist())
            proba = model.predict_proba(X)
            np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-4)
        with pytest.raises(CLEAR):
            model.transform(X.reshape(len(X), -1)[:, :0])


@SETTINGS
@given(
    y=st.lists(st.integers(0, 5), min_size=0, max_size=40),
    n_way=st.integers(-1, 7),
    k_shot=st.integers(-1, 4),
    n_query=st.integers(-1, 4),
)
def test_episodes_keep_their_promises_or_raise_clearly(y, n_way, k_shot, n_query):
    y = np.asarray(y, dtype=np.int64)
    try:
        sampler = EpisodeSampler(n_way, k_shot, n_query, n_episodes=3, random_state=0)
        episodes = list(sampler.split(y=y))
    except CLEAR:
        return
    for support, query in episodes:
        s = y[support].reshape(n_way, k_shot)
        assert (s == s[:, :1]).all() and len(set(s[:, 0].tolist())) == n_way
        if n_query:
            q = y[query].reshape(n_way, n_query)
            assert (q == s[:, :1]).all()
        assert not set(support.tolist()) & set(query.tolist())


@SETTINGS
@given(
    y=st.lists(st.integers(0, 5), min_size=0, max_size=40),
    P=st.integers(-1, 7),
    K=st.integers(-1, 5),
    small=st.sampled_from(["raise", "skip", "replace"]),
)
def test_batches_keep_their_promises_or_raise_clearly(y, P, K, small):
    y = np.asarray(y, dtype=np.int64)
    try:
        sampler = ClassBalancedBatchSampler(
            P, K, n_batches=3, small_classes=small, random_state=0
        )
        batches = list(sampler.split(y=y))
    except CLEAR:
        return
    for batch in batches:
        rows = y[batch].reshape(P, K)
        assert (rows == rows[:, :1]).all() and len(set(rows[:, 0].tolist())) == P


@pytest.fixture(scope="module")
def fitted(digits):
    return PrototypicalClassifier(max_epochs=1, episodes_per_epoch=2).fit(
        digits.X_base, digits.y_base
    )


@settings(max_examples=30, deadline=5000)
@given(draws=st.data())
def test_evaluate_episodes_gives_accuracies_or_a_clear_error(draws, fitted):
    n = draws.draw(st.integers(0, 60))
    X = np.random.RandomState(0).rand(n, draws.draw(st.sampled_from([64, 63])))
    y = draws.draw(labels(n))
    kwargs = dict(
        n_way=draws.draw(st.integers(-1, 6)),
        k_shot=draws.draw(st.integers(-1, 3)),
        n_query=draws.draw(st.integers(-1, 3)),
        n_episodes=draws.draw(st.integers(-1, 4)),
    )
    try:
        scores = evaluate_episodes(fitted, X, y, **kwargs)
    except CLEAR:
        return
    assert scores.accuracies.shape == (kwargs["n_episodes"],)
    assert ((scores.accuracies >= 0) & (scores.accuracies <= 1)).all()
