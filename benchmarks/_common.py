"""Helpers shared by the benchmark scripts (not part of the package)."""

import argparse
import contextlib
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from skmeta.augmentation import RandomAffine
from skmeta.backbones import Conv4

#: The plain loop's episodes: PrototypicalClassifier's image defaults.
N_WAY, K_SHOT, N_QUERY = 60, 1, 5

#: Instruction-set extensions that decide the speed of float32 and bfloat16
#: matrix work on a CPU.
_ISA = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu():
    """The CPU's model name and which of ``_ISA`` it has, from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    have = [isa for isa in _ISA if isa in flags]
    return f"{model} ({' '.join(have) or 'none of ' + ' '.join(_ISA)})"


def argument_parser(doc, *, data_home=False, device=False):
    """The parser of a benchmark script, described by its docstring's first line.

    With ``--seed`` (default 0), and where asked ``--data-home`` (the Omniglot
    archives' folder) and ``--device`` (default ``"cpu"``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if data_home:
        parser.add_argument(
            "--data-home",
            default=None,
            help="archives' folder; default: the embedded copy",
        )
    parser.add_argument("--seed", type=int, default=0)
    if device:
        parser.add_argument("--device", default="cpu")
    return parser


def machine():
    """One line describing where the numbers come from: CPU, ISA, torch."""
    return (
        f"{cpu()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )


def plain_loop(
    X,
    y,
    n_episodes,
    seed,
    *,
    shape=(N_WAY, K_SHOT, N_QUERY),
    rotations=True,
    device="cpu",
):
    """Episodes per second of a hand-written Prototypical Networks loop.

    What a researcher would write by hand, the reference of the speed and
    budget benchmarks: numpy episode sampling (``shape``: n-way k-shot
    n-query, by default ``N_WAY``-way ``K_SHOT``-shot ``N_QUERY``-query, with
    Omniglot's rotations as classes), random affine distortion, one float32
    Conv4 forward pass over support and query, prototypes, squared Euclidean
    distances, cross-entropy, Adam with the learning rate halved every 1000
    episodes, on ``device``.
    """
    n_way, k_shot, n_query = shape
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(X).to(device)
    if rotations:
        X = torch.cat([torch.rot90(X, r, dims=(-2, -1)) for r in range(4)])
        y = np.concatenate([y + r * (y.max() + 1) for r in range(4)])
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    model, augment = Conv4(in_channels=X.shape[1]).to(device), RandomAffine()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000, gamma=0.5)
    target = torch.arange(n_way, device=device).repeat_interleave(n_query)
    model.train()
    start = time.perf_counter()
    for _ in range(n_episodes):
        classes = rng.choice(len(by_class), n_way, replace=False)
        picks = np.stack(
            [rng.choice(by_class[c], k_shot + n_query, replace=False) for c in classes]
        )
        index = np.concatenate([picks[:, :k_shot].ravel(), picks[:, k_shot:].ravel()])
        z = model(augment(X[torch.from_numpy(index).to(device)]))
        prototypes = z[: n_way * k_shot].view(n_way, k_shot, -1).mean(1)
        logits = -torch.cdist(z[n_way * k_shot :], prototypes).pow(2)
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return n_episodes / (time.perf_counter() - start)
