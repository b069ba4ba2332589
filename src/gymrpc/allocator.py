"""Keep glibc from mapping and unmapping memory for every large message.

glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 KiB at first) with a fresh
``mmap`` and returns them with ``munmap``; each of their pages then faults on first
touch. A step of 1024 turbofan engines is a 410 KB message, and protobuf serializes it
into such a fresh buffer every step: measured here, serializing it took 370 µs instead
of 26 µs (a page fault costs about 3.5 µs in this VM), on both sides of the wire.

:func:`tune_allocator` raises the mmap threshold to 32 MiB and the trim threshold to
128 MiB, so these buffers are reused from the heap. The cost is memory: up to 128 MiB
of freed memory may stay with the process instead of returning to the system. It runs
once per process (the server at start, the client when its first environment is
created); ``GYMRPC_TUNE_MALLOC=0`` turns it off. On other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys
from typing import Final

__all__ = ["tune_allocator"]

logger = logging.getLogger(__name__)

# From glibc's malloc.h.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
#: Largest value glibc accepts for M_MMAP_THRESHOLD on 64-bit systems.
MMAP_THRESHOLD: Final = 32 * 1024 * 1024
TRIM_THRESHOLD: Final = 128 * 1024 * 1024


@functools.cache
def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process.

    (Two threads racing on the first call may both set them: harmless, mallopt is
    idempotent.)

    Returns:
        Whether the thresholds are raised (False when turned off with
        ``GYMRPC_TUNE_MALLOC=0``, or not on glibc).
    """
    if os.environ.get("GYMRPC_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    # musl and others have no mallopt, or ignore it.
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success and 0 on error.
    tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    logger.debug("glibc malloc thresholds raised: %s", tuned)
    return tuned
