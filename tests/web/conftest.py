"""Fixtures of the web tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.conformance import IndependentValidator


@pytest.fixture(scope="module")
def validator() -> Iterator[IndependentValidator]:
    """The independent FHIR validator, one process per test module."""
    with IndependentValidator() as v:
        yield v
