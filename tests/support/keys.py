"""The signing key the tests' apps sign with (``SIGNING_KEY``), so no test writes a key
into the checkout's instance folder. One EC P-256 key per test run."""
from __future__ import annotations

from joserfc.jwk import ECKey

SIGNING_KEY = ECKey.generate_key("P-256", private=True).as_pem(private=True).decode("ascii")
