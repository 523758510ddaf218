"""Process memory: give freed model memory back to the OS, and read peak/current RSS.

glibc keeps freed heap pages for reuse; after dropping a multi-GB model (umT5-XXL) the process
still looks that large until ``malloc_trim(0)`` returns them (measured: 3.6 GB given back).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys

import torch


@functools.lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - musl and others lack it
    except (OSError, AttributeError):
        return None
    return libc


def release_memory() -> bool:
    """Collect garbage, empty the CUDA cache, and hand freed heap pages back to the OS.

    Call it after the last reference to a large module is dropped (``del encoder``).
    Returns whether glibc's ``malloc_trim`` was available (and ran).
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def peak_rss_bytes(children: bool = False) -> int:
    """Peak resident memory of this process (or of its finished children) in bytes."""
    import resource

    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    peak = resource.getrusage(who).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def current_rss_bytes() -> int | None:
    """Resident memory of this process now, in bytes (``None`` where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return resident_pages * os.sysconf("SC_PAGE_SIZE")
