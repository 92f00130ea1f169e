"""regsim.memory: freed heap is given back to the OS (the soak's RSS creep was retained, not leaked)."""

from __future__ import annotations

import sys

import numpy as np
import psutil
import pytest

from regsim.memory import release_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_returns_freed_small_allocations_to_the_os() -> None:
    """Many small blocks (below glibc's mmap threshold) stay in the heap after they are freed, the
    pattern of per-frame buffers; a trim hands their pages back."""
    proc = psutil.Process()
    blocks = [np.ones(8_000) for _ in range(20_000)]  # 20 000 × 64 KB = 1.2 GB in the heap
    held = proc.memory_info().rss
    del blocks
    retained = proc.memory_info().rss
    assert release_freed_memory()
    after = proc.memory_info().rss
    assert held - after > 600 * 2**20, "the trim gave back less than half of what was freed"
    assert after < retained
