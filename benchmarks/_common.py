"""Helpers shared by the benchmark scripts (not part of the package)."""

import contextlib
import os
import platform
from pathlib import Path

import torch

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
