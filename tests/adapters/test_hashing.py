"""The password hash runs on a lower-priority thread, with the same result."""
from __future__ import annotations

import os
import sys
import threading

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from plugin.adapters import hashing, users


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_hashing_thread_runs_niced_below_the_request_thread() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    expected = min(19, mine + hashing.NICENESS) if sys.platform == "linux" else mine
    assert hashing.run(_niceness) == expected
    assert _niceness() == mine  # the caller's thread keeps its priority


def test_the_result_and_the_refusal_are_argon2s_own() -> None:
    hashed = PasswordHasher().hash("right")
    assert hashing.run(PasswordHasher().verify, hashed, "right") is True
    with pytest.raises(VerifyMismatchError):
        hashing.run(PasswordHasher().verify, hashed, "wrong")
    assert users._verify(hashed, "right") and not users._verify(hashed, "wrong")
