"""Running torch modules: the device, seeded blocks, eval mode, rows of a pass."""

import contextlib
import threading
import weakref

import numpy as np
import torch


def trains(module, max_epochs):
    """Whether fit has anything to train: epochs, and a trainable parameter.

    A fixed embedding (``backbone="identity"`` on features computed
    beforehand) with a parameter-free comparison has nothing to learn, and
    ``fit`` then draws no episode or batch, so it needs no minimum class size.
    """
    return max_epochs > 0 and any(p.requires_grad for p in module.parameters())


def resolve_device(device):
    """Return the torch device for an estimator's ``device`` parameter.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks ``"cuda"`` when available, else ``"cpu"``; ``"cpu"``,
        ``"cuda"``, ``"cuda:<index>"``, or another torch device type that this
        torch build supports and finds available (``"mps"``, ``"xpu"``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a device name torch knows, or names a device
        that is not available here (CUDA without a GPU, say).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            "device must be 'cpu', 'cuda', 'cuda:<index>', 'auto' or another "
            f"torch device name; got {device!r}."
        ) from exc
    if device.type == "cpu":
        return device
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} but CUDA is not available; use device='cpu' "
            "or device='auto'."
        )
    if device.type != "cuda" and not (callable(available) and available()):
        raise ValueError(
            f"device={str(device)!r} is not available in this torch build on this "
            "machine; use device='cpu', 'cuda' or 'auto'."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={str(device)!r} but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)."
        )
    return device


#: Held while a block draws from torch's global generators (see :func:`seeded`).
_SEED_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch's generators for the block, restoring them afterwards.

    torch's generators are global to the process: two fits in threads of one
    process (a Dask worker's, joblib's threading backend) would draw from
    each other's sequence. The block holds a process-wide lock, so that
    seeded blocks of different threads run one at a time and each fit is
    reproducible.
    """
    cuda = [device.index or 0] if device.type == "cuda" else []
    with _SEED_LOCK, torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


#: Modules inside :func:`eval_mode`: how many blocks, and the mode to restore.
_EVAL_BLOCKS = weakref.WeakKeyDictionary()


_EVAL_LOCK = threading.Lock()


@contextlib.contextmanager
def eval_mode(module):
    """Run the block with ``module`` in eval mode, then restore its mode.

    Batch norm then uses its running statistics and dropout is off, so a
    prediction does not depend on what else is in the batch. Blocks of
    several threads on one module (a Dask worker's threads predicting with
    one estimator) share the eval mode: the module's mode is restored when
    the last of them ends, never while another still runs.
    """
    with _EVAL_LOCK:
        entry = _EVAL_BLOCKS.setdefault(module, [0, module.training])
        entry[0] += 1
        module.eval()
    try:
        yield module
    finally:
        with _EVAL_LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                del _EVAL_BLOCKS[module]
                module.train(entry[1])


#: The fewest rows of an inference forward pass. float32 matrix products on
#: fewer rows take other kernels (matrix-vector ones), which round differently:
#: a sample's embedding or scores would depend on how many samples came with
#: it (by 2e-7 on a CPU). Measured identical, bit for bit, from 8 rows on.
_MIN_ROWS = 8


def _at_least_rows(x):
    """``x`` (a tensor or an ndarray), its last row repeated up to ``_MIN_ROWS`` rows.

    The extra rows' outputs are to be dropped: with the network in eval mode,
    every row's output depends on that row alone. Empty ``x`` is returned as
    it is.
    """
    missing = _MIN_ROWS - len(x)
    if missing <= 0 or len(x) == 0:
        return x
    if torch.is_tensor(x):
        return torch.cat([x, x[-1:].expand(missing, *x.shape[1:])])
    return np.concatenate([x, np.repeat(x[-1:], missing, axis=0)])
