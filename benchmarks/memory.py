"""Peak memory of adapt, predict and evaluate_episodes on many or large classes.

Each case runs in a fresh process; a thread reads the resident set size from
``/proc/self/statm`` every millisecond while the operation runs, and the peak
above the size just before it is reported as a ratio to the bytes of the
embeddings the operation must hold (n_samples x embedding_dim x 4). Target
(issue 10): at most 3.

- ``adapt``: a support set of 200,000 samples of 64 features in 2000 classes,
  for PrototypicalClassifier, MatchingClassifier and RelationClassifier, with
  MLP backbones (untrained: memory does not depend on the weights);
- ``predict``: 1000 queries against that support set (Matching attends to all
  200,000 support samples);
- ``evaluate_episodes``: 100 5-way 1-shot episodes over one class of 100,000
  samples among 1000 classes of 100;
- ``predict many``: 50,000 queries among 1,000 classes of 10 support samples
  (issue 27), an identity backbone: ``predict`` (the ratio's reference is
  the embeddings and the returned labels) and ``predict_proba`` (the
  embeddings and the returned probabilities), for Prototypical and Matching.
  Target: at most 3.
- ``transform memmap``: 200,000 uint8 images of 28x28 (157 MB) in a NumPy
  memmap, transformed by an untrained Conv4 (one view): the ratio's reference
  is the file (its pages count in the resident set as they are read) and the
  returned embeddings; a float32 copy of the images alone would be 4x the
  file.
- ``fit memmap``: 2,700,000 uint8 images of 28x28 (2.1 GB) in 27,000 classes,
  a NumPy memmap, meta-trained on by PrototypicalClassifier for 20 default
  episodes (issue 27), after a warm-up fit: the peak is of anonymous memory
  alone (the file's pages read are the kernel's cache, shared and
  reclaimable), and the ratio's reference is the peak of the same fit, the
  same episodes, on the first 54,000 images in memory (42 MB of float32): the
  model, one episode and the constant. A float32 copy of the file alone would
  be 8.5 GB. Target: a ratio near 1.

Run from the repository root::

    python benchmarks/memory.py
"""

import multiprocessing
import os
import threading
import time

import numpy as np
from _common import machine

PAGE = os.sysconf("SC_PAGE_SIZE")
N, D, N_CLASSES, EMBEDDING = 200_000, 64, 2000, 64


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _anonymous():
    """Resident memory that is not file-backed: resident minus shared pages."""
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    return (int(fields[1]) - int(fields[2])) * PAGE


class PeakRSS:
    """Peak resident set size above the start, sampled every millisecond."""

    def __init__(self, read=_rss):
        self._read = read

    def __enter__(self):
        self.start = self.peak = self._read()
        self._running = True
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while self._running:
            self.peak = max(self.peak, self._read())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, self._read())

    @property
    def bytes(self):
        return self.peak - self.start


def _case(name, queue):
    import torch

    from skmeta import MatchingClassifier, PrototypicalClassifier, RelationClassifier
    from skmeta.model_selection import evaluate_episodes

    torch.set_num_threads(2)
    rng = np.random.RandomState(0)
    make = {
        "prototypical": PrototypicalClassifier,
        "matching": MatchingClassifier,
        "relation": RelationClassifier,
    }
    if name == "transform memmap":
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "X.npy")
            images = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.uint8, shape=(200_000, 1, 28, 28)
            )
            images[:] = rng.randint(0, 256, size=(1000, 1, 28, 28), dtype=np.uint8)[
                np.arange(200_000) % 1000
            ]
            images.flush()
            del images
            clf = PrototypicalClassifier(max_epochs=0, test_time_views=1).fit(
                np.zeros((10, 1, 28, 28), np.float32), np.arange(10) % 2
            )
            X = np.load(path, mmap_mode="r")
            start = time.perf_counter()
            with PeakRSS() as peak:
                out = clf.transform(X)
            seconds = time.perf_counter() - start
        # The file's pages count in the resident set as they are read.
        queue.put((peak.bytes, X.nbytes + out.nbytes, seconds))
        return
    if name == "fit memmap":
        import tempfile

        n, per_class = 2_700_000, 100
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "X.npy")
            images = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.uint8, shape=(n, 1, 28, 28)
            )
            source = rng.randint(0, 256, size=(1000, 1, 28, 28), dtype=np.uint8)
            for start in range(0, n, 100_000):
                rows = np.arange(start, min(start + 100_000, n))
                images[rows] = source[rows % 1000]
            images.flush()
            del images
            X = np.load(path, mmap_mode="r")
            y = np.arange(n) // per_class

            def fit(X, y):
                clf = PrototypicalClassifier(
                    max_epochs=1, episodes_per_epoch=20, random_state=0
                )
                with PeakRSS(_anonymous) as peak:
                    clf.fit(X, y)
                return clf, peak.bytes

            fit(np.asarray(X[:1000], np.float32) / 255, y[:1000])  # warm-up
            # The reference: the same episodes' fit on 54,000 images in memory.
            small = np.asarray(X[:54_000], np.float32) / 255
            clf, in_memory = fit(small, y[:54_000])
            del small
            start = time.perf_counter()
            clf, on_disk = fit(X, y)
            seconds = time.perf_counter() - start
        print(
            f"  fit memmap: {clf.n_way_}-way {clf.k_shot_}-shot {clf.n_query_}-query "
            f"episodes; peak {in_memory / 1e6:.1f} MB for 54,000 images in memory "
            f"(the reference), {n * 8 / 1e6:.1f} MB of int64 labels",
            flush=True,
        )
        queue.put((on_disk, in_memory, seconds))
        return
    if name.endswith("many"):
        method, operation, _ = name.split(" ")
        y_support = np.repeat(np.arange(1000), 10)
        X_support = rng.normal(size=(len(y_support), D)).astype(np.float32)
        X = rng.normal(size=(50_000, D)).astype(np.float32)
        clf = make[method](backbone="identity", max_epochs=0).fit(X_support, y_support)
        clf.adapt(X_support, y_support)
        start = time.perf_counter()
        with PeakRSS() as peak:
            out = getattr(clf, operation)(X)
        seconds = time.perf_counter() - start
        queue.put((peak.bytes, X.nbytes + out.nbytes, seconds))
        return
    if name == "evaluate_episodes":
        y = np.concatenate(
            [np.zeros(100_000, int), 1 + np.repeat(np.arange(1000), 100)]
        )
        X = rng.normal(size=(len(y), D)).astype(np.float32)
        clf = PrototypicalClassifier(max_epochs=0, embedding_dim=EMBEDDING)
        clf.fit(X[:1000], y[:1000] % 5)
        start = time.perf_counter()
        with PeakRSS() as peak:
            evaluate_episodes(clf, X, y, n_way=5, k_shot=1, n_episodes=100)
    else:
        method, operation = name.split(" ")
        y = rng.randint(N_CLASSES, size=N)
        X = rng.normal(size=(N, D)).astype(np.float32)
        clf = make[method](max_epochs=0, embedding_dim=EMBEDDING)
        clf.fit(X[:1000], y[:1000] % 5)
        if operation == "predict":
            clf.adapt(X, y)
        start = time.perf_counter()
        with PeakRSS() as peak:
            if operation == "adapt":
                clf.adapt(X, y)
            else:
                clf.predict(X[:1000])
    seconds = time.perf_counter() - start
    queue.put((peak.bytes, len(y) * EMBEDDING * 4, seconds))


def main():
    print(f"# {machine()}")
    print(
        "| case | peak above start (MB) | embeddings (+ output) (MB) | ratio "
        "| time (s) |"
    )
    print("|---|---|---|---|---|")
    context = multiprocessing.get_context("spawn")
    for name in [
        "prototypical adapt",
        "matching adapt",
        "relation adapt",
        "matching predict",
        "evaluate_episodes",
        "prototypical predict many",
        "prototypical predict_proba many",
        "matching predict many",
        "matching predict_proba many",
        "transform memmap",
        "fit memmap",
    ]:
        queue = context.Queue()
        process = context.Process(target=_case, args=(name, queue))
        process.start()
        peak, embeddings, seconds = queue.get()
        process.join()
        print(
            f"| {name} | {peak / 1e6:.1f} | {embeddings / 1e6:.1f} | "
            f"{peak / embeddings:.2f} | {seconds:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
