"""Inference and model selection on a Dask cluster (the ``dask`` extra).

A fitted estimator's ``transform``, ``predict`` and ``predict_proba`` mapped
over the row chunks of a Dask array (``dask.array.map_blocks``, the recipe of
the user guide's "Scaling out" page), and ``GridSearchCV`` through joblib's
Dask backend, on a real in-process ``LocalCluster``: each gives exactly what
the estimator gives on the NumPy array, except where threads of one worker
race (the two ``xfail`` marks below).
"""

import contextlib

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.model_selection import GridSearchCV

from skmeta import PrototypicalClassifier, TripletEmbedder
from skmeta.model_selection import ClassKFold, EpisodicScorer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")


def map_rows(method, X, dtype, width=None):
    """``method`` over the row chunks of the Dask array ``X``, lazily.

    Each chunk holds whole samples (X is rechunked along rows only); the
    output chunk shape is declared, so that Dask never calls ``method`` to
    guess it: ``(rows, width)`` for ``transform`` and ``predict_proba``,
    ``(rows,)`` for ``predict`` (``width=None``).
    """
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    if width is None:
        return X.map_blocks(
            method,
            drop_axis=list(range(1, X.ndim)),
            chunks=(X.chunks[0],),
            meta=np.empty((0,), dtype),
        )
    return X.map_blocks(
        method,
        drop_axis=list(range(2, X.ndim)),
        chunks=(X.chunks[0], (width,)),
        meta=np.empty((0, 0), dtype),
    )


@contextlib.contextmanager
def local_client(threads):
    """A client of an in-process cluster of one worker of ``threads`` threads.

    The client closes first, then the cluster, on leaving the block.
    """
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=threads,
            processes=False,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def client():
    """Two threads: joblib's Dask backend runs a search in the calling process
    when the cluster has one thread in all (its n_jobs is that count)."""
    with local_client(2) as client:
        yield client


#: Row chunks of the novel digits (896 rows): one of 3 rows, fewer than an
#: inference batch's minimum of 8, and one larger than ``batch_size``.
CHUNKS = ((300, 3, 93, 500),)


def _computed_on(client, lazy):
    """``lazy`` computed on ``client``, and how many tasks the cluster ran."""
    with distributed.get_task_stream(client) as tasks:
        result = client.compute(lazy).result()
    return result, len(tasks.data)


def test_transform_over_a_dask_array_equals_transform_on_numpy(client, digits):
    embedder = TripletEmbedder(
        max_epochs=1, batches_per_epoch=3, embedding_dim=8, random_state=0
    ).fit(digits.X_base, digits.y_base)
    X = da.from_array(digits.X_novel, chunks=CHUNKS + ((64,),))
    width = len(embedder.get_feature_names_out())
    lazy = map_rows(embedder.transform, X, np.float32, width)
    assert lazy.shape == (896, 8)
    embeddings, n_tasks = _computed_on(client, lazy)
    assert n_tasks >= len(CHUNKS[0])
    assert embeddings.dtype == np.float32
    assert_array_equal(embeddings, embedder.transform(digits.X_novel))


def test_predictions_over_a_dask_array_equal_those_on_numpy(client, digits):
    clf = PrototypicalClassifier(
        max_epochs=1, episodes_per_epoch=3, embedding_dim=8, random_state=0
    ).fit(digits.X_base, digits.y_base)
    clf.adapt(digits.X_novel[:25], digits.y_novel[:25])
    X = da.from_array(digits.X_novel, chunks=CHUNKS + ((64,),))
    labels, n_tasks = _computed_on(client, map_rows(clf.predict, X, clf.classes_.dtype))
    assert n_tasks >= len(CHUNKS[0])
    assert_array_equal(labels, clf.predict(digits.X_novel))
    proba, _ = _computed_on(
        client, map_rows(clf.predict_proba, X, np.float32, len(clf.classes_))
    )
    assert_array_equal(proba, clf.predict_proba(digits.X_novel))


def _conv4_embedder(tiny_images):
    """A Conv4 embedder (batch norm, left untrained): images, 64-d embeddings."""
    X, y = tiny_images
    return TripletEmbedder(backbone="conv4", max_epochs=0, random_state=0).fit(X, y)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("threads", [1, 4])
def test_images_embed_over_a_dask_array_as_on_numpy(tiny_images, threads):
    # Several tasks at once on one estimator: a worker's threads share it.
    embedder = _conv4_embedder(tiny_images)
    X = tiny_images[0]
    expected, state = embedder.transform(X), _state(embedder.module_)
    mode = embedder.module_.training
    with local_client(threads) as client:
        # Chunks of 2 images, split along the height too: map_rows rechunks.
        lazy = map_rows(
            embedder.transform, da.from_array(X, chunks=(2, 1, 14, 28)), np.float32, 64
        )
        embeddings, _ = _computed_on(client, lazy)
    assert_array_equal(embeddings, expected)
    after = _state(embedder.module_)
    for name, value in state.items():
        assert_array_equal(after[name], value, err_msg=name)
    assert embedder.module_.training == mode


def _search(n_jobs):
    return GridSearchCV(
        PrototypicalClassifier(
            max_epochs=1, episodes_per_epoch=3, embedding_dim=8, random_state=0
        ),
        {"distance": ["euclidean", "cosine"]},
        cv=ClassKFold(2),
        scoring=EpisodicScorer(n_way=2, n_episodes=5),
        n_jobs=n_jobs,
    )


def test_grid_search_on_dask_gives_the_results_of_one_process(client, digits):
    # The candidates fit at once, in the two threads of the worker.
    X, y = digits.X_base, digits.y_base
    one_process = _search(n_jobs=1).fit(X, y)
    with (
        client.as_current(),
        distributed.get_task_stream(client) as tasks,
        joblib.parallel_config(backend="dask"),
    ):
        on_dask = _search(n_jobs=-1).fit(X, y)
    assert len(tasks.data) >= 4  # 2 candidates x 2 folds ran on the cluster
    assert on_dask.cv_results_["params"] == one_process.cv_results_["params"]
    for key in ("split0_test_score", "split1_test_score", "rank_test_score"):
        assert_array_equal(on_dask.cv_results_[key], one_process.cv_results_[key])
    assert len(set(one_process.cv_results_["mean_test_score"])) == 2
    assert on_dask.best_params_ == one_process.best_params_
