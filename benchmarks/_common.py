"""Helpers shared by the benchmark scripts (not part of the package)."""

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


def machine():
    """One line describing where the numbers come from: CPU, ISA, torch."""
    return (
        f"{cpu()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )


def plain_loop(X, y, n_episodes, seed):
    """Episodes per second of a hand-written Prototypical Networks loop.

    What a researcher would write by hand, the reference of the speed and
    budget benchmarks: numpy episode sampling (``N_WAY``-way ``K_SHOT``-shot
    ``N_QUERY``-query, Omniglot rotations as classes), random affine
    distortion, one float32 Conv4 forward pass over support and query,
    prototypes, squared Euclidean distances, cross-entropy, Adam with the
    learning rate halved every 1000 episodes.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(X)
    X = torch.cat([torch.rot90(X, r, dims=(-2, -1)) for r in range(4)])
    y = np.concatenate([y + r * (y.max() + 1) for r in range(4)])
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    model, augment = Conv4(), RandomAffine()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000, gamma=0.5)
    target = torch.arange(N_WAY).repeat_interleave(N_QUERY)
    model.train()
    start = time.perf_counter()
    for _ in range(n_episodes):
        classes = rng.choice(len(by_class), N_WAY, replace=False)
        picks = np.stack(
            [rng.choice(by_class[c], K_SHOT + N_QUERY, replace=False) for c in classes]
        )
        index = np.concatenate([picks[:, :K_SHOT].ravel(), picks[:, K_SHOT:].ravel()])
        z = model(augment(X[torch.from_numpy(index)]))
        prototypes = z[: N_WAY * K_SHOT].view(N_WAY, K_SHOT, -1).mean(1)
        logits = -torch.cdist(z[N_WAY * K_SHOT :], prototypes).pow(2)
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return n_episodes / (time.perf_counter() - start)
