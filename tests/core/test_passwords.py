"""The password policy (NIST SP 800-63B-4, a password used alone): each refusal says why."""
from __future__ import annotations

import pytest

from plugin.core import passwords


def test_the_shipped_list_is_a_real_list_of_common_passwords() -> None:
    common = passwords.common()
    assert len(common) > 19_000
    assert {"123456", "password", "qwerty", "iloveyou"} <= common


@pytest.mark.parametrize(("password", "why"), [
    ("short pass 14c", "at least 15 characters"),
    ("ann.lee-clinic1", "must not be the username"),
    ("ANN.LEE-CLINIC1", "must not be the username"),
    ("qwertyqwertyqwerty", "commonly used"),
    ("passwordpassword", "commonly used"),
    ("aaaaaaaaaaaaaaaaaaaa", "commonly used"),
    ("x" * 257, "at most 256"),
])
def test_refusals_name_the_rule(password: str, why: str) -> None:
    with pytest.raises(passwords.PasswordRefused, match=why):
        passwords.check(password, "ann.lee-clinic1")


@pytest.mark.parametrize("password", ["correct horse battery staple", "fifteen chars!!",
                                      "Tr0ub4dor&3 and more", "пароль для входа в клинику"])
def test_long_uncommon_passwords_pass_without_composition_rules(password: str) -> None:
    passwords.check(password, "ann")
