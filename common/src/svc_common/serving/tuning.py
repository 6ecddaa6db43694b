"""Process tuning of a served service: the open-file limit, malloc's mmap threshold, the heap
after start-up, and the garbage collector."""

import ctypes
import gc
import logging
import resource
from typing import Any

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
# Tracked allocations between young collections (CPython's default: 700).
YOUNG_GC_THRESHOLD = 10_000
# Set by whole_process(): the app lives as long as the process, so what start-up built may be
# frozen (an app made by a test goes away with the test, and must stay collectable).
_whole_process = False
# Descriptors a process holds besides its clients' connections: upstream and database pools,
# Redis, log files, the event loop's own.
SPARE_FILES = 1024


def whole_process() -> None:
    """This process serves one app for its whole life (svc_common.app.serve)."""
    global _whole_process  # noqa: PLW0603 - one switch, set once per process
    _whole_process = True


def open_file_limit(connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (nginx's worker_rlimit_nofile), and say so
    when even that leaves no room for `connections` (MAX_CONNECTIONS); the limit in force.

    Shells and systemd start programs with a soft limit of 1,024, far below what the
    connection cap allows; the hard limit (containerd: 1,048,576) is the operator's say.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_FILES
    target = max(soft, wanted) if hard == resource.RLIM_INFINITY else hard
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning(
            "open-file limit %d leaves no room for MAX_CONNECTIONS=%d: raise the hard limit "
            "(ulimit -n, compose ulimits) or lower MAX_CONNECTIONS",
            target,
            connections,
        )
    return target


def started() -> None:
    """Start-up is over: give its freed heap back, and settle the collector when served."""
    release_free_memory()
    if _whole_process:
        settle_garbage_collector()


def _glibc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its tuning does not apply
        return None


def fixed_mmap_threshold() -> None:
    """Blocks over 256 KiB come from, and go straight back to, the OS
    (docs/adr/0005-malloc-settings.md).

    glibc raises its mmap threshold after a big block is freed, so the next one lands in
    the heap and stays there: each worker thread that hashed a password (argon2 takes
    19 MiB) would keep 19 MiB for the rest of the process. A fixed threshold stops that.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def release_free_memory() -> None:
    """Hand the heap that start-up used and freed back to the OS (glibc keeps it otherwise)."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def settle_garbage_collector() -> None:
    """Leave what start-up built out of every later collection, and collect young objects
    less often (why, with figures: docs/adr/0004-gc-freezing.md).

    A full collection walks every tracked object: under load the balancer ran one every few
    seconds over the tens of thousands of objects of its modules, app and schemas, with every
    request in flight waiting behind it. Frozen, they are skipped. Objects of a request in
    flight survive a young collection at gen-0's 700 allocations, which a proxy reaches every
    few dozen requests; at YOUNG_GC_THRESHOLD most are freed by reference counting before one
    runs.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
