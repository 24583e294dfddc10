"""Process-wide memory settings for the ``run`` command.

The run engine hands file writes, fsyncs and snapshot encoding to worker threads. glibc gives
each thread that allocates its own malloc arena (up to eight per core), and memory freed
into one arena serves only allocations that land in it again: a 100,000-job run kept tens of
MB scattered over idle arenas (peak RSS 12 % lower at 20,000 jobs with two arenas). The
threads only do I/O, so two arenas cost nothing in contention. glibc also raises its
threshold for serving a large block from a mapping of its own (returned to the system when
freed) to the largest block freed so far, up to 32 MB: once a 22 MB manifest has been read,
every later block of a few MB (a seal, a snapshot's pieces) comes from the heap and stays
there. The run command fixes the threshold at 1 MiB instead: above asyncio's 256 KiB receive
buffer (allocated for every read of a socket, then shrunk: a mapping each time would cost a
system call pair per read). Applied by the CLI only: a library must not retune its host
process.
"""

from __future__ import annotations

import os
import sys

#: glibc's ``M_ARENA_MAX`` and ``M_MMAP_THRESHOLD`` options of ``mallopt(3)``.
_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3
#: Arenas the run command allows (the main thread's and one shared by the workers).
RUN_ARENAS = 2
#: Blocks at least this large get a mapping of their own.
MMAP_THRESHOLD = 1024 * 1024


def tune_malloc(arenas: int = RUN_ARENAS) -> bool:
    """Cap glibc's malloc arenas and fix its mapping threshold before any worker thread
    starts; True when the arenas were capped.

    ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` set by the user win (glibc read them
    at start-up); anything but Linux with glibc is left alone.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return "MALLOC_ARENA_MAX" not in os.environ and bool(mallopt(_M_ARENA_MAX, arenas))
