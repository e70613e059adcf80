"""SMART v2 system scopes: what is granted from what is asked and registered, and
whether a route's need is covered."""
from __future__ import annotations

import pytest

from plugin.core import scopes
from plugin.core.scopes import Need, Scope


def test_the_grant_is_the_request_narrowed_to_the_registration() -> None:
    registered = scopes.parse_all("system/Observation.rs system/QuestionnaireResponse.c")
    asked = scopes.parse_all("system/Observation.cruds system/Patient.r "
                             "system/QuestionnaireResponse.cr")
    assert scopes.render(scopes.grant(asked, registered)) == \
        "system/Observation.rs system/QuestionnaireResponse.c"
    assert scopes.grant(scopes.parse_all("system/Patient.r"), registered) == ()


def test_a_wildcard_registration_covers_every_type_but_not_the_other_way() -> None:
    everything = scopes.parse_all("system/*.rs")
    assert scopes.grant(scopes.parse_all("system/Patient.rs"), everything) == \
        (Scope("Patient", "rs"),)
    assert scopes.grant(scopes.parse_all("system/*.r"),
                        scopes.parse_all("system/Patient.r")) == ()


def test_a_need_is_met_by_its_letter_on_its_type_or_star() -> None:
    granted = scopes.parse_all("system/Observation.s system/*.r")
    assert scopes.allows(granted, Need("Observation", "s"))
    assert scopes.allows(granted, Need("Patient", "r"))
    assert not scopes.allows(granted, Need("Patient", "s"))
    assert not scopes.allows(granted, Need("QuestionnaireResponse", "c"))


@pytest.mark.parametrize("text", ["user/Observation.rs", "system/Observation.", "system/.r",
                                  "system/Observation.rr", "system/Observation.sr",
                                  "system/Observation.write", "system/Foo.r", "openid"])
def test_anything_else_is_refused_by_name(text) -> None:
    with pytest.raises(scopes.ScopeError) as refused:
        scopes.parse(text)
    assert text in refused.value.message or "scope" in refused.value.message


def test_a_route_need_is_checked_when_declared() -> None:
    with pytest.raises(ValueError):
        scopes.need("Observation", "x")
