"""Specification of ClassBalancedBatchSampler: P classes x K samples per batch."""

import numpy as np
import pytest

from skmeta.batches import ClassBalancedBatchSampler

# 6 classes of unequal sizes, string labels, shuffled.
_RNG = np.random.RandomState(0)
Y = _RNG.permutation(np.repeat(list("abcdef"), [5, 6, 7, 8, 20, 40]))


def _batches(y=Y, **params):
    params = {"n_classes_per_batch": 3, "n_samples_per_class": 4, **params}
    return list(ClassBalancedBatchSampler(random_state=0, **params).split(y=y))


def test_every_batch_is_p_classes_times_k_distinct_samples():
    for batch in _batches(n_batches=50):
        assert batch.dtype == np.int64 and batch.shape == (12,)
        labels = Y[batch].reshape(3, 4)
        assert (labels == labels[:, :1]).all(), "class-major: one class per row"
        assert len(set(labels[:, 0])) == 3, "P distinct classes"
        assert len(set(batch)) == 12, "no sample twice when classes are big enough"


def test_split_yields_n_batches_and_get_n_splits_says_so():
    sampler = ClassBalancedBatchSampler(2, 2, n_batches=7)
    assert sampler.get_n_splits() == 7
    assert len(list(sampler.split(y=Y))) == 7
    assert sampler.batch_size == 4


def test_classes_are_drawn_uniformly_whatever_their_size():
    batches = np.stack(_batches(n_batches=2000))
    first = Y[batches[:, ::4]].ravel()  # one label per (batch, class)
    freq = np.array([np.mean(first == c) for c in "abcdef"])
    np.testing.assert_allclose(freq, 1 / 6, atol=0.02)


def test_samples_within_a_class_are_drawn_uniformly():
    batches = np.concatenate(_batches(n_batches=3000))
    of_f = batches[Y[batches] == "f"]
    counts = np.bincount(of_f, minlength=len(Y))[Y == "f"]
    np.testing.assert_allclose(counts / counts.mean(), 1, atol=0.25)


def test_int_seed_repeats_batches_and_random_state_instance_goes_on():
    assert all(
        np.array_equal(a, b) for a, b in zip(_batches(), _batches(), strict=True)
    )
    sampler = ClassBalancedBatchSampler(3, 4, 5, random_state=np.random.RandomState(0))
    first, second = list(sampler.split(y=Y)), list(sampler.split(y=Y))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_small_class_raises_by_default_naming_it():
    with pytest.raises(ValueError, match=r"at least 7 samples; 2 of 6 classes have "):
        _batches(n_samples_per_class=7)
    with pytest.raises(ValueError, match=r"class 'a' has 5, class 'b' has 5"):
        _batches(y=np.repeat(list("abc"), [5, 5, 9]), n_samples_per_class=6)


def test_skip_never_draws_small_classes():
    for batch in _batches(n_samples_per_class=7, small_classes="skip", n_batches=50):
        assert not np.isin(Y[batch], ["a", "b"]).any()
        assert len(set(batch)) == 21


def test_replace_uses_every_sample_of_a_small_class_then_repeats():
    y = np.repeat(list("abc"), [2, 5, 5])
    for batch in _batches(y=y, n_samples_per_class=4, small_classes="replace"):
        rows = batch.reshape(3, 4)
        small = rows[y[rows[:, 0]] == "a"]
        if len(small):
            assert set(small[0]) == {0, 1}, "both samples of 'a', then repeats"


def test_fewer_than_p_classes_with_k_samples_is_an_error():
    with pytest.raises(ValueError, match=r"n_classes_per_batch=7 needs 7 classes"):
        _batches(n_classes_per_batch=7)
    with pytest.raises(
        ValueError,
        match=r"needs 5 classes with at least n_samples_per_class=8 samples each; "
        r"y has 3 such classes \(of 6\)",
    ):
        _batches(n_classes_per_batch=5, n_samples_per_class=8, small_classes="skip")


def test_labels_are_required():
    with pytest.raises(ValueError, match="needs the labels y"):
        next(ClassBalancedBatchSampler().split(np.zeros((4, 2))))


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_classes_per_batch": 0}, "n_classes_per_batch"),
        ({"n_samples_per_class": 1.5}, "n_samples_per_class"),
        ({"n_batches": 0}, "n_batches"),
        ({"small_classes": "drop"}, "small_classes"),
    ],
)
def test_invalid_parameters_are_named(params, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        ClassBalancedBatchSampler(**params)


def test_repr_shows_the_parameters():
    assert repr(ClassBalancedBatchSampler(2, 3, 4, random_state=1)) == (
        "ClassBalancedBatchSampler(n_classes_per_batch=2, n_samples_per_class=3, "
        "n_batches=4, small_classes='raise', random_state=1)"
    )
