"""Helpers shared by the benchmark scripts (not part of the package)."""

import os
import time
from pathlib import Path

import torch
from skorch.callbacks import Callback


def default_data_home():
    """SKMETA_DATA, else the shared data folder beside the checkout."""
    env = os.environ.get("SKMETA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


class TimeBudget(Callback):
    """Stop meta-training after ``seconds`` of wall-clock time.

    skorch ends ``fit`` cleanly on ``KeyboardInterrupt``; the number of
    episodes run is ``len(history[:, "batches"])`` summed over epochs.
    """

    def __init__(self, seconds):
        self.seconds = seconds

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.perf_counter()

    def on_batch_end(self, net, **kwargs):
        if time.perf_counter() - self.start_ > self.seconds:
            raise KeyboardInterrupt


def machine():
    """One line describing where the numbers come from."""
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
