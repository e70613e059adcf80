"""The password policy: what NIST SP 800-63B-4 asks of a password used alone.

At least 15 characters (64 and more allowed; no composition rules, no expiry), not the
username, and not on a list of commonly used passwords: the 19,640-entry list Django
ships (``django/contrib/auth/common-passwords.txt.gz``, BSD licence, taken unchanged
from Django 5.2), in ``plugin/data/``. A password that only repeats one listed password
or one character ("qwertyqwertyqwerty", "aaaaaaaaaaaaaaa") is refused with it: the list
stands for what attackers try first, and they try those too. Each refusal says why
(NIST: tell the user the reason).
"""
from __future__ import annotations

import gzip
from functools import cache
from importlib import resources

MIN_LENGTH = 15
#: Longest password accepted: far beyond a passphrase, short of a denial of service
#: (Argon2 hashes any length, but a megabyte body need not be hashed).
MAX_LENGTH = 256
_LIST = "common-passwords.txt.gz"


class PasswordRefused(ValueError):
    """The password breaks the policy; the message says why, for the person choosing it."""


@cache
def common() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased (read once per process)."""
    data = resources.files("plugin.data").joinpath(_LIST).read_bytes()
    return frozenset(line.strip().lower()
                     for line in gzip.decompress(data).decode("utf-8").splitlines()
                     if line.strip())


def check(password: str, username: str) -> None:
    """Raise PasswordRefused naming the first rule ``password`` breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(f"The password must be at least {MIN_LENGTH} characters "
                              f"long (it has {len(password)}). A few unrelated words make "
                              "a good one.")
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(f"The password must be at most {MAX_LENGTH} characters long.")
    folded = password.lower()
    if folded.strip() == username.strip().lower():
        raise PasswordRefused("The password must not be the username.")
    if _is_common(folded):
        raise PasswordRefused("This password is on a list of commonly used passwords; "
                              "choose another.")


def _is_common(folded: str) -> bool:
    if folded in common() or len(set(folded)) == 1:
        return True
    # one listed password repeated: "qwertyqwertyqwerty"
    return any(folded[:size] in common()
               for size in range(1, len(folded) // 2 + 1)
               if len(folded) % size == 0 and folded[:size] * (len(folded) // size) == folded)
