"""What machine a figure was measured on: the CPU's model name and the GPU's, for benchmark headers."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU's model name as ``lscpu`` prints it (from ``/proc/cpuinfo``), else what
    :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str | None = None) -> str:
    """``"<GPU name>"`` when ``device`` is CUDA and one is there, else ``"<CPU name>, N cores"``."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    return f"{cpu_name()}, {os.cpu_count()} cores"
