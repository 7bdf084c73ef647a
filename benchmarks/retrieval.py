"""Retrieval at a million: skmeta's search against pytorch-metric-learning's.

Query-versus-reference retrieval metrics (precision@1, R-precision, MAP@R) of
``--n-queries`` query embeddings against ``--n-reference`` reference
embeddings of ``--dim`` dimensions, float32, synthetic and clustered: classes
of ``--per-class`` references around Gaussian centres, each query a new
sample of one class. Each method runs in a fresh process (the embeddings are
generated there, block by block), which reports its wall time and its peak
resident set size (``ru_maxrss``) above the size just before the method ran:

- ``exact``: :func:`skmeta.metrics.retrieval_scores`, exact search in chunks
  (float64, ties to the lower index), also recall@1 and recall@10;
- ``faiss-flat``, ``faiss-ivf``, ``faiss-hnsw``: the same through faiss
  (exact in float32, then the approximate indexes with their defaults; their
  time includes building the index);
- ``pml``: pytorch-metric-learning's ``AccuracyCalculator`` (``k =
  "max_bin_count"``, its faiss ``IndexFlatL2`` on the CPU) on the same
  embeddings: the reference, whose time the ratios divide.

Targets (issue 27): exact peak at most 3x the embeddings' bytes (peak with
the embeddings, over their bytes); the approximate indexes' MAP@R within 0.01
of exact; faster than ``AccuracyCalculator`` on the same work.

Run from the repository root (a million takes minutes; ``--n-reference
100000`` about one)::

    python benchmarks/retrieval.py [--n-reference 1000000]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

METHODS = ("exact", "faiss-flat", "faiss-ivf", "faiss-hnsw", "pml")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def embeddings(n_reference, n_queries, dim, per_class, seed=0):
    """Clustered float32 embeddings and labels, generated in blocks.

    ``n_reference // per_class`` classes with centres drawn from N(0, I);
    every sample is its centre plus N(0, I) noise. References come in
    class order, queries in random classes.
    """
    rng = np.random.default_rng(seed)
    n_classes = max(1, n_reference // per_class)
    centres = rng.standard_normal((n_classes, dim), dtype=np.float32)
    y_ref = np.arange(n_reference) % n_classes
    y_query = rng.integers(0, n_classes, n_queries)
    out = []
    for labels in (y_ref, y_query):
        X = np.empty((len(labels), dim), dtype=np.float32)
        for start in range(0, len(labels), 2**16):
            block = labels[start : start + 2**16]
            noise = rng.standard_normal((len(block), dim), dtype=np.float32)
            X[start : start + len(block)] = centres[block] + noise
        out.append(X)
    return out[1], y_query, out[0], y_ref


def worker(method, args):
    """Run one method; print a JSON line of its time, peak and scores."""
    import torch

    from skmeta.metrics import retrieval_scores

    Q, y_q, R, y_r = embeddings(
        args.n_reference, args.n_queries, args.dim, args.per_class
    )
    if method == "pml":
        from pytorch_metric_learning.utils.accuracy_calculator import (
            AccuracyCalculator,
        )

        calculator = AccuracyCalculator(
            include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
            k="max_bin_count",
            device=torch.device("cpu"),
        )
    before = _rss()
    start = time.perf_counter()
    if method == "pml":
        scores = calculator.get_accuracy(Q, y_q, R, y_r)
        scores["map_at_r"] = scores.pop("mean_average_precision_at_r")
    else:
        scores = retrieval_scores(Q, y_q, R, y_r, k=(1, 10), algorithm=method)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_extra": max(0, _peak() - before),
                "scores": scores,
            }
        )
    )


def run(method, args):
    command = [sys.executable, __file__, "--worker", method]
    for name in ("n_reference", "n_queries", "dim", "per_class"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-reference", type=int, default=1_000_000)
    parser.add_argument("--n-queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args)

    from _common import machine

    print(machine())
    data_bytes = (args.n_reference + args.n_queries) * args.dim * 4
    print(
        f"{args.n_queries:,} queries vs {args.n_reference:,} references, "
        f"{args.dim}-d float32 ({data_bytes / 2**20:,.0f} MiB), classes of "
        f"{args.per_class} references; one process per method"
    )
    results = {method: run(method, args) for method in args.methods}
    pml = results.get("pml", {}).get("seconds")
    exact_map = results.get("exact", {}).get("scores", {}).get("map_at_r")
    header = (
        f"{'method':<11}{'seconds':>9}{'vs pml':>8}{'peak MiB':>10}{'/ data':>8}"
        f"{'P@1':>8}{'R-prec':>8}{'MAP@R':>8}{'dMAP@R':>9}{'R@1':>7}{'R@10':>7}"
    )
    print(header)
    print("-" * len(header))
    for method, result in results.items():
        if "error" in result:
            print(f"{method:<11}failed: {result['error']}")
            continue
        s, extra = result["scores"], result["peak_extra"]
        ratio = f"{pml / result['seconds']:.2f}x" if pml else "-"
        delta = f"{s['map_at_r'] - exact_map:+.4f}" if exact_map is not None else "-"
        recall = [s.get(f"recall_at_{k}") for k in (1, 10)]
        recall = [f"{r:.4f}" if r is not None else "-" for r in recall]
        print(
            f"{method:<11}{result['seconds']:>9.1f}{ratio:>8}{extra / 2**20:>10,.0f}"
            f"{(data_bytes + extra) / data_bytes:>7.2f}x{s['precision_at_1']:>8.4f}"
            f"{s['r_precision']:>8.4f}{s['map_at_r']:>8.4f}{delta:>9}"
            f"{recall[0]:>7}{recall[1]:>7}"
        )
    print(
        "vs pml: AccuracyCalculator's seconds over the method's (above 1: faster);"
        " / data: (embeddings + peak above them) over the embeddings' bytes."
    )
    print(
        "Targets: exact / data <= 3.00x; |dMAP@R| <= 0.01 for faiss-ivf and "
        "faiss-hnsw; faster than pml."
    )


if __name__ == "__main__":
    main()
