"""Data-parallel training over a process group: 2 processes equal 1 on the same steps.

The test of two processes forks 2 worker processes (``torch.multiprocessing``,
start method "fork": they inherit the imported torch and skmeta, so they start
in a fraction of a second) that form a gloo process group over TCP on a free
local port, fit a few-shot classifier and a metric-learning embedder, and save
their histories and weights. This process then replays the same global batches
by hand (two steps of the shared sequence per optimizer step) and compares.
"""

import datetime
import socket
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.base import clone
from torch.nn import functional as F

from skmeta import (
    MAMLClassifier,
    PrototypicalClassifier,
    ReptileClassifier,
    SelfSupervisedEmbedder,
    TripletEmbedder,
)
from skmeta.batches import ClassBalancedBatchSampler
from skmeta.distributed import _Share
from skmeta.episodes import EpisodeSampler
from skmeta.training import OPTIMIZERS

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not dist.is_available(),
    reason="forks worker processes that need torch.distributed with gloo (Linux)",
)

N_PROCESSES = 2
EPOCHS = 2
STEPS = 4  # per epoch, in the global sequence: 2 optimizer steps of 2

FEW_SHOT = {
    "backbone": "mlp",
    "embedding_dim": 8,
    "n_way": 3,
    "k_shot": 2,
    "n_query": 2,
    "episodes_per_epoch": STEPS,
    "max_epochs": EPOCHS,
    "lr": 0.01,
    "random_state": 0,
}
# MAML's and Reptile's: the episodes and network of FEW_SHOT, STEPS
# meta-batches of 2 episodes an epoch; Reptile takes no lr (its outer step
# is meta_step_size).
META = {**FEW_SHOT, "meta_batch_size": 2, "episodes_per_epoch": 2 * STEPS}
MAML = {**META, "n_inner_steps": 1}
REPTILE = {
    **{name: value for name, value in META.items() if name != "lr"},
    "n_inner_steps": 2,
    "inner_batch_size": None,  # every row at each inner step: no random draw
    # Each task from the same inner optimizer state, as one process of 4 tasks.
    "reset_inner_optimizer": True,
}
SELF_SUPERVISED = {
    "backbone": "mlp",
    "embedding_dim": 8,
    "train_batch_size": 4,
    "batches_per_epoch": STEPS,
    "max_epochs": EPOCHS,
    "random_state": 0,
}
FITTED = ("fewshot", "maml", "embedder", "reptile", "self-supervised")
EMBEDDER = {
    "backbone": "mlp",
    "embedding_dim": 8,
    "miner": "hard",  # each anchor's farthest positive, nearest negative
    "n_classes_per_batch": 3,
    "n_samples_per_class": 2,
    "batches_per_epoch": STEPS,
    "max_epochs": EPOCHS,
    "lr": 0.01,
    "random_state": 0,
}


def _data():
    """5 classes of 8 samples in 6 features, labels 0 to 4 (encoded as they are)."""
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(5), 8)
    X = (rng.normal(size=(40, 6)) + y[:, None]).astype(np.float32)
    return X, y


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, folder):
    """One process of the group: fit both estimators, save what they learned."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=N_PROCESSES,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        X, y = _data()
        fitted = {
            "fewshot": PrototypicalClassifier(**FEW_SHOT).fit(X, y),
            "maml": MAMLClassifier(**MAML).fit(X, y),
            "embedder": TripletEmbedder(**EMBEDDER).fit(X, y),
            "reptile": ReptileClassifier(**REPTILE).fit(X, y),
            "self-supervised": SelfSupervisedEmbedder(**SELF_SUPERVISED).fit(X),
        }
        for name, estimator in fitted.items():
            torch.save(
                {
                    "losses": estimator.history_[:, "batches", :, "train_loss"],
                    "state": estimator.module_.state_dict(),
                    "predicted": estimator.predict(X)
                    if hasattr(estimator, "predict")
                    else estimator.transform(X),
                },
                folder / f"{name}-{rank}.pt",
            )
        with pytest.raises(ValueError, match="random_state must be an int"):
            PrototypicalClassifier(**{**FEW_SHOT, "random_state": None}).fit(X, y)
    finally:
        dist.destroy_process_group()


def _run_two_processes(folder, timeout=60):
    context = mp.start_processes(
        _worker,
        args=(_free_port(), folder),
        nprocs=N_PROCESSES,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {N_PROCESSES} processes ran past {timeout} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    return {
        (name, rank): torch.load(folder / f"{name}-{rank}.pt", weights_only=False)
        for name in FITTED
        for rank in range(N_PROCESSES)
    }


def _initial_module(estimator, X, y):
    """The estimator's untrained network: fit for 0 epochs with the same seed."""
    return clone(estimator).set_params(max_epochs=0).fit(X, y).module_


def _replay(estimator, X, y, sequence, per_step, loss_of):
    """One process over the global batches: one update per ``per_step`` draws.

    ``sequence`` yields each epoch's draws (episodes or batches) as fit draws
    them; ``loss_of(module, draws)`` is the loss of the draws of one update.
    """
    assert estimator.optimizer == "adam" and estimator.optimizer_params is None
    module = _initial_module(estimator, X, y)
    module.train()
    optimizer = OPTIMIZERS["adam"](module.parameters(), lr=estimator.lr)
    losses = []
    for epoch_draws in sequence:
        draws = list(epoch_draws)
        for start in range(0, len(draws), per_step):
            optimizer.zero_grad()
            loss = loss_of(module, draws[start : start + per_step])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses, module.state_dict()


def _episodes(estimator, X, y):
    """The episodes of each epoch, as fit draws them from random_state."""
    sampler = EpisodeSampler(
        estimator.n_way,
        estimator.k_shot,
        estimator.n_query,
        estimator.episodes_per_epoch,
        random_state=np.random.RandomState(estimator._seed()),
    )
    return (sampler.split(y=y) for _ in range(EPOCHS))


def _episode_rows(episodes, X):
    """Inputs and row labels (-1 for queries) of episodes, and query labels."""
    n_way, k, q = FEW_SHOT["n_way"], FEW_SHOT["k_shot"], FEW_SHOT["n_query"]
    classes = torch.arange(n_way)
    y_rows = torch.cat([classes.repeat_interleave(k), torch.full((n_way * q,), -1)])
    x = torch.stack([torch.from_numpy(X[np.concatenate(e)]) for e in episodes])
    y_query = classes.repeat_interleave(q).repeat(len(episodes))
    return x, y_rows.repeat(len(episodes), 1), y_query


def _prototypical_loss(module, episodes, X):
    """The mean over the episodes of their query cross-entropy."""
    x, y_rows, y_query = _episode_rows(episodes, X)
    logits = [module(x=x_e, y=y_e) for x_e, y_e in zip(x, y_rows, strict=True)]
    return F.cross_entropy(torch.cat(logits), y_query)


def _maml_loss(module, episodes, X):
    """The mean over meta-batches of their query cross-entropy after the inner loop."""
    size = MAML["meta_batch_size"]
    losses = []
    for start in range(0, len(episodes), size):
        x, y_rows, y_query = _episode_rows(episodes[start : start + size], X)
        losses.append(F.cross_entropy(module(x=x, y=y_rows), y_query))
    return torch.stack(losses).mean()


def _batches(estimator, X, y):
    """The P x K batches of each epoch, as fit draws them from random_state."""
    sampler = ClassBalancedBatchSampler(
        EMBEDDER["n_classes_per_batch"],
        EMBEDDER["n_samples_per_class"],
        STEPS,
        small_classes=estimator.small_classes,
        random_state=np.random.RandomState(estimator._seed()),
    )
    return (sampler.split(y=y) for _ in range(EPOCHS))


def _gathered_batch_loss(module, batches, X, y):
    """The loss on the batches concatenated in process order, as one batch."""
    rows = np.concatenate(batches)
    return module.loss(module(torch.from_numpy(X[rows])), torch.from_numpy(y[rows]))


@pytest.mark.slow
@pytest.mark.processes
def test_two_processes_train_as_one_over_the_same_global_batches(tmp_path):
    """Starts 2 processes (gloo): losses and weights equal one process's to 1e-5.

    Few-shot: each process meta-trains on every other episode and DDP averages
    the gradients, as one process averaging the losses of 2 episodes per step.
    Embedder: the batch-hard miner sees the embeddings of both processes'
    batches, and the loss is that of one process on the 2 batches as one.
    """
    X, y = _data()
    prototypical = PrototypicalClassifier(**FEW_SHOT)
    maml = MAMLClassifier(**MAML)
    embedder = TripletEmbedder(**EMBEDDER)
    expected = {
        "fewshot": _replay(
            prototypical,
            X,
            y,
            _episodes(prototypical, X, y),
            N_PROCESSES,
            lambda module, draws: _prototypical_loss(module, draws, X),
        ),
        "maml": _replay(
            maml,
            X,
            y,
            _episodes(maml, X, y),
            N_PROCESSES * MAML["meta_batch_size"],
            lambda module, draws: _maml_loss(module, draws, X),
        ),
        "embedder": _replay(
            embedder,
            X,
            y,
            _batches(embedder, X, y),
            N_PROCESSES,
            lambda module, draws: _gathered_batch_loss(module, draws, X, y),
        ),
    }
    # After the replay: the processes fork with everything imported and warm.
    results = _run_two_processes(tmp_path)
    for name, (losses, state) in expected.items():
        first, second = results[name, 0], results[name, 1]
        assert len(losses) == EPOCHS * STEPS // N_PROCESSES
        for result in (first, second):
            recorded = np.concatenate(result["losses"])
            np.testing.assert_allclose(recorded, losses, rtol=1e-5, atol=1e-6)
            for key, value in state.items():
                torch.testing.assert_close(
                    result["state"][key], value, rtol=1e-5, atol=1e-6
                )
    # Reptile: each process meta-updates with its 2 tasks, the gradients
    # averaged by hand, as one process with meta-batches of 4 tasks (the same
    # episodes), whose epsilon anneals over as many meta-updates.
    reptile = ReptileClassifier(**{**REPTILE, "meta_batch_size": 4}).fit(X, y)
    expected_losses = np.concatenate(reptile.history_[:, "batches", :, "train_loss"])
    for rank in range(N_PROCESSES):
        result = results["reptile", rank]
        np.testing.assert_allclose(
            np.concatenate(result["losses"]), expected_losses, rtol=1e-5, atol=1e-6
        )
        for key, value in reptile.module_.state_dict().items():
            torch.testing.assert_close(
                result["state"][key], value, rtol=1e-5, atol=1e-6
            )
    for name in FITTED:  # one fitted estimator: the same weights and outputs
        first, second = results[name, 0], results[name, 1]
        for key, value in first["state"].items():
            assert torch.equal(value, second["state"][key]), (name, key)
        np.testing.assert_array_equal(first["predicted"], second["predicted"])
    assert np.isfinite(np.concatenate(results["self-supervised", 0]["losses"])).all()


@pytest.mark.parametrize("size", [1, 2, 3])
def test_each_process_takes_every_nth_step_and_all_are_drawn(size):
    drawn = []

    class Steps(torch.utils.data.IterableDataset):
        def __len__(self):
            return 7

        def __iter__(self):
            for step in range(7):
                drawn.append(step)
                yield step

    shares = [list(_Share(Steps(), rank, size)) for rank in range(size)]
    n = 7 // size
    assert shares == [list(range(rank, n * size, size)) for rank in range(size)]
    assert all(len(share) == len(_Share(Steps(), 0, size)) == n for share in shares)
    # Every process draws the whole sequence, so its random draws stay aligned.
    assert drawn == list(range(7)) * size


def test_torchrun_without_a_process_group_warns_that_each_process_trains_alone(
    monkeypatch,
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    X, y = _data()
    with pytest.warns(UserWarning, match="no torch.distributed process group"):
        fitted = PrototypicalClassifier(**{**FEW_SHOT, "max_epochs": 1}).fit(X, y)
    assert len(fitted.history_) == 1  # trained alone: every step of the epoch
    assert len(fitted.history_[0, "batches"]) == STEPS
