"""Batch-norm running statistics averaged exactly over the first batches."""

import types

import pytest
import torch
from torch import nn

from skmeta import PrototypicalClassifier
from skmeta._batchnorm import RunningStatsWarmup


def _train(layer, batches):
    """Forward ``batches`` through ``layer`` in train mode under the callback."""
    callback = RunningStatsWarmup()
    net = types.SimpleNamespace(module_=nn.Sequential(layer))
    callback.on_train_begin(net)
    layer.train()
    with torch.no_grad():
        for batch in batches:
            layer(batch)
    callback.on_train_end(net)
    return callback


def _batches(n, rows=6, features=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, features, generator=gen) * 3 + 5 for _ in range(n)]


@pytest.mark.parametrize("n", [1, 4, 9])
def test_first_batches_are_averaged_exactly(n):
    batches = _batches(n)
    layer = nn.BatchNorm1d(3)
    _train(layer, batches)
    means = torch.stack([b.mean(0) for b in batches])
    variances = torch.stack([b.var(0) for b in batches])  # unbiased, as BN keeps
    torch.testing.assert_close(layer.running_mean, means.mean(0))
    torch.testing.assert_close(layer.running_var, variances.mean(0))


def test_exponential_average_after_the_warm_up():
    batches = _batches(14)
    layer = nn.BatchNorm1d(3)
    _train(layer, batches)
    expected = torch.stack([b.mean(0) for b in batches[:10]]).mean(0)
    for batch in batches[10:]:
        expected = 0.9 * expected + 0.1 * batch.mean(0)
    torch.testing.assert_close(layer.running_mean, expected)
    assert layer.momentum == 0.1
    assert not layer._forward_pre_hooks


def test_momentum_restored_and_hooks_removed_when_training_ends_early():
    layer = nn.BatchNorm1d(3, momentum=0.2)
    _train(layer, _batches(2))
    assert layer.momentum == 0.2
    assert not layer._forward_pre_hooks


def test_layers_without_an_exponential_average_are_left_alone():
    cumulative = nn.BatchNorm1d(3, momentum=None)
    untracked = nn.BatchNorm1d(3, track_running_stats=False)
    callback = _train(cumulative, _batches(3))
    assert callback.handles_ == {} and cumulative.momentum is None
    _train(untracked, _batches(3))
    assert untracked.momentum == 0.1


def test_eval_forward_passes_do_not_count():
    batches = _batches(3)
    layer = nn.BatchNorm1d(3)
    callback = RunningStatsWarmup()
    net = types.SimpleNamespace(module_=layer)
    callback.on_train_begin(net)
    with torch.no_grad():
        layer(batches[0])
        layer.eval()
        layer(batches[2] * 100)
        layer.train()
        layer(batches[1])
    callback.on_train_end(net)
    expected = (batches[0].mean(0) + batches[1].mean(0)) / 2
    torch.testing.assert_close(layer.running_mean, expected)


def test_fit_uses_it():
    """Three episodes: every batch-norm layer's statistics are exact means."""
    rng = torch.Generator().manual_seed(0)
    X = (torch.randn(60, 4, generator=rng) * 4 + 10).numpy()
    y = torch.arange(60).remainder(6).numpy()
    # A batch norm at the input, which sees raw X (mean 10).
    clf = PrototypicalClassifier(
        backbone=nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8)),
        max_epochs=1,
        episodes_per_epoch=3,
        random_state=0,
    ).fit(X, y)
    layer = clf.module_.backbone[0]
    assert int(layer.num_batches_tracked) == 3
    # With 0.9**3 of the initial 0 left, the mean would be about 2.7.
    assert (layer.running_mean > 8).all()
    assert layer.momentum == 0.1
