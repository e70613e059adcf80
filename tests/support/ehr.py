"""The test EHR: a SMART authorization server and a FHIR server with auth, each its own
process, for tests of the product's SMART launch, backend services and write-back.

``running_ehr(tmp_path)`` starts ``tests.support.auth_server`` and
``tests.support.fhir_server --auth <auth base>`` on loopback, points the authorization
server at the FHIR server (its required ``aud``) and yields a ``TestEhr`` whose methods
drive both servers' test-only control endpoints. Both are stopped afterwards; their
stderr is kept in ``tmp_path`` (auth.log, fhir.log) and the FHIR state in fhir.json.
"""
from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import module_server
from tests.support.module_server import ModuleServer


@dataclass
class TestEhr:
    """A running test EHR: ``auth_base`` issues tokens for ``fhir_base``."""

    __test__ = False  # not a test class, whatever its name says

    auth: ModuleServer
    fhir: ModuleServer

    @property
    def auth_base(self) -> str:
        return self.auth.url

    @property
    def fhir_base(self) -> str:
        return self.fhir.url

    @staticmethod
    def _call(url: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data,
                                         method="GET" if data is None else "POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    # -- the authorization server -------------------------------------------------------

    def configure(self, **config: Any) -> None:
        """Merge ``config`` into the authorization server's (``fhir_base`` always set)."""
        self._call(f"{self.auth_base}/_config", {"fhir_base": self.fhir_base, **config})

    def register_client(self, client_id: str, redirect_uris: list[str],
                        jwks: dict[str, Any] | None = None) -> None:
        """A public client, or a confidential one when ``jwks`` (public keys) is given."""
        client: dict[str, Any] = {"redirect_uris": list(redirect_uris)}
        if jwks is not None:
            client["jwks"] = jwks
        self.configure(clients={client_id: client})

    def launch(self, patient: str, encounter: str | None = None) -> str:
        """An EHR launch context: the opaque ``launch`` value the EHR hands the app."""
        body = {"patient": patient, **({"encounter": encounter} if encounter else {})}
        return self._call(f"{self.auth_base}/_launch", body)["launch"]

    def auth_state(self) -> dict[str, Any]:
        return self._call(f"{self.auth_base}/_state")

    # -- the FHIR server ----------------------------------------------------------------

    def seed(self, *resources: dict[str, Any]) -> None:
        self._call(f"{self.fhir_base}/_seed", {"resources": list(resources)})

    def capability(self, statement: dict[str, Any]) -> None:
        """Replace the CapabilityStatement (then enforced) until ``reset``."""
        self._call(f"{self.fhir_base}/_capability", statement)

    def strict(self, **switches: Any) -> None:
        """Production servers' refusals (``fhir_server`` ``/_strict``) until ``reset``."""
        self._call(f"{self.fhir_base}/_strict", switches)

    def faults(self, faults: list[dict[str, Any]]) -> None:
        self._call(f"{self.fhir_base}/_faults", list(faults))

    def state(self) -> dict[str, Any]:
        return self._call(f"{self.fhir_base}/_state")

    # -- both ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget clients, launches, tokens, resources and logs (not the signing key)."""
        self._call(f"{self.auth_base}/_reset", {})
        self._call(f"{self.fhir_base}/_reset", {})
        self.configure()

    def stop(self) -> None:
        self.fhir.stop()
        self.auth.stop()


@contextmanager
def running_ehr(tmp_path: Path) -> Iterator[TestEhr]:
    """Both servers for the duration of the ``with`` block."""
    auth = module_server.start("auth_server", log=tmp_path / "auth.log")
    try:
        fhir = module_server.start("fhir_server", str(tmp_path / "fhir.json"),
                                   "--auth", auth.url, log=tmp_path / "fhir.log")
    except BaseException:
        auth.stop()
        raise
    ehr = TestEhr(auth, fhir)
    try:
        ehr.configure()
        yield ehr
    finally:
        ehr.stop()
