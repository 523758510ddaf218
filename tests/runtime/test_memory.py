import ctypes.util
import sys

import pytest
import torch

from flowrvs.runtime.memory import current_rss_bytes, peak_rss_bytes, release_memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and glibc are Linux's")


@linux_only
def test_rss_readings_follow_a_large_allocation():
    before = current_rss_bytes()
    block = torch.ones(256 << 20, dtype=torch.uint8)  # 256 MiB, touched
    now = current_rss_bytes()
    assert now - before >= 0.9 * block.numel()
    assert peak_rss_bytes() >= before + 0.9 * block.numel()  # the kernel updates the peak lazily
    del block


@linux_only
@pytest.mark.skipif("libc.so" not in (ctypes.util.find_library("c") or ""), reason="needs glibc")
def test_release_memory_trims_with_glibc():
    assert release_memory() is True


@linux_only
def test_a_child_reports_its_own_peak_not_its_parents(tmp_path):
    import subprocess
    import time

    block = torch.ones(512 << 20, dtype=torch.uint8)  # make this (the parent) large first
    code = "import time; from flowrvs.runtime.memory import peak_rss_bytes; print(peak_rss_bytes()); time.sleep(1)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    seen_from_outside = peak_rss_bytes(child.pid)
    reported = int(child.communicate()[0])
    assert reported < block.numel()  # a bare interpreter with flowrvs.runtime.memory, not 512 MiB
    assert seen_from_outside is None or seen_from_outside < block.numel()
    del block


_REUSE_FAULTS = """
import resource, sys, torch
from flowrvs.runtime.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
block = torch.ones(96 << 20, dtype=torch.uint8)  # above glibc's largest mmap threshold (32 MiB)
del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = torch.ones(64 << 20, dtype=torch.uint8)  # fits in the freed block
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@linux_only
@pytest.mark.skipif("libc.so" not in (ctypes.util.find_library("c") or ""), reason="needs glibc")
def test_kept_freed_memory_is_reused_without_page_faults():
    import resource
    import subprocess

    pages = (64 << 20) // resource.getpagesize()
    faults = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", _REUSE_FAULTS, mode], capture_output=True, text=True, check=True).stdout.split()
        faults[mode] = int(out[1])
        assert out[0] == ("True" if mode == "keep" else "None")
    assert faults["keep"] < pages // 100  # the freed block was reused as it was
    # by default the block is a mapping of its own, unmapped on free: faulted in again
    # (page by page, or by huge page where the kernel gives them to every mapping)
    assert faults["default"] > faults["keep"]
