"""Process memory: keep freed activations for reuse, give freed model memory back to the OS, and
read peak/current RSS.

glibc keeps freed heap pages for reuse; after dropping a multi-GB model (umT5-XXL) the process
still looks that large until ``malloc_trim(0)`` returns them (measured: 3.6 GB given back).
Blocks above glibc's mmap threshold (at most 32 MiB), though, get their own mapping, unmapped on
free: every new activation of the full-size VAE (100 MB and more) then starts as untouched pages,
faulted in one by one as it is written (``docs/benchmarks.md``: its copies ran at 2.0-2.9 GB/s
instead of 12.8). :func:`keep_freed_memory` turns that off for the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys


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
    torch = sys.modules.get("torch")  # no torch import just for this
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, as glibc's malloc.h numbers them
_TRIM_ABOVE = 2**31 - 1  # bytes free at the heap's top before free() trims: mallopt's largest (an int)


def keep_freed_memory() -> bool:
    """Make glibc serve every allocation from its heap and keep freed blocks there for reuse.

    Process-wide (``mallopt``: no allocation gets its own mapping; free trims the heap only past
    2 GiB free at its top), so it is the program's call, made once at its start
    (:func:`flowrvs.apps.cli.run`); a library user may make it too. Freed tensors are then reused
    without page faults. :func:`release_memory` still hands freed pages back when a model is
    dropped. Returns whether glibc was there to take it.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_ABOVE))


def _status_kib(field: str, pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes(pid: int | None = None) -> int | None:
    """Peak resident memory in bytes of this process, or of the running process ``pid``.

    Reads ``VmHWM`` from ``/proc``: ``getrusage``'s ``ru_maxrss`` is wrong for a child started
    by a large parent, as Linux carries the parent's peak over ``exec`` (a child of a 6 GB
    process reports at least 6 GB). Falls back to ``ru_maxrss`` for this process elsewhere
    (macOS); ``None`` for another process without ``/proc``.
    """
    hwm = _status_kib("VmHWM", "self" if pid is None else pid)
    if hwm is not None:
        return hwm * 1024
    if pid is not None:
        return None
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def current_rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory of this process (or of ``pid``) now, in bytes (``None`` without ``/proc``)."""
    rss = _status_kib("VmRSS", "self" if pid is None else pid)
    return None if rss is None else rss * 1024
