"""Where Argon2id runs: a small pool of threads at a lower CPU priority (nice +10).

A password check (sign-in, and the re-entry before every signature, 21 CFR 11.200) is
Argon2id with 4 lanes, which argon2-cffi computes on 4 threads of its own with the GIL
released: for ~0.5-1 s it can take every core of a small server. Other tablets'
autosaves and page loads then wait for a core behind it. On Linux the nice value is
per thread and the lane threads inherit it from the thread that starts them, so
running the hash on a thread niced once lets the scheduler serve the quick requests
first; the hash itself, its parameters and its result are unchanged, and an idle core
still runs it at full speed. Where a thread cannot be niced (not Linux), it runs at
the normal priority.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

#: How much lower than the request threads the hashing threads run.
NICENESS = 10
#: Password checks one process runs at once (more wait their turn in the pool).
THREADS = 2

T = TypeVar("T")
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                       os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
    except (AttributeError, OSError):  # not Linux: the normal priority
        pass


def _executor() -> ThreadPoolExecutor:
    """This process's pool (a forked worker makes its own: threads do not survive a
    fork)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="argon2",
                                       initializer=_lower_priority)
            _pool_pid = os.getpid()
        return _pool


def run(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` on a low-priority hashing thread; its result, or its exception."""
    return _executor().submit(fn, *args).result()
