"""Give freed heap memory back to the operating system.

glibc's allocator keeps freed blocks for reuse, and with many threads (torch's, Qt's) in many arenas it
keeps a lot: measured here on the bench network (digits 64-512-512-10, 3000 steps, then three loss
surfaces), the process held 560 MB of RSS of which `malloc_trim(0)` returned 170 MB, in 4–6 ms. Over a
lecture-length run that retained memory looks like a leak in the soak (RSS creeping up by MBs a minute)
although nothing is referenced. Trimming now and then keeps RSS at what is really in use.

No torch, no Qt: the engine and the GUI both call it. Elsewhere than glibc (macOS, Windows, musl) it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

TRIM_EVERY_S = 30.0  # callers trim at most this often (a trim costs ~5 ms)

_trim = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _trim = getattr(_libc, "malloc_trim", None)  # glibc only
    except OSError:  # pragma: no cover - no C library to load
        _trim = None


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS; True if the allocator could do it (glibc)."""
    if _trim is None:
        return False
    _trim(0)
    return True
