"""The EHR's FHIR API, as far as write-back needs it: deliver one record (a Bundle).

The record is a transaction Bundle of conditional creates (``ifNoneExist``) on
identifiers the plugin owns, so a delivery that timed out, whose answer was lost or
whose worker died halfway can simply be sent again: what the EHR already holds is
matched, not duplicated (fhir.md section 7.2). EHRs differ in what they accept, hence
the profiles (setting ``EHR_PROFILE``, ``ehr_profiles``):

- ``"transaction"``: the whole Bundle in one ``POST [base]``: QuestionnaireResponse,
  Observations, Conditions, ServiceRequests, DocumentReferences, Device and Provenance.
  All or nothing, and the EHR itself honours each entry's ``ifNoneExist``.
- ``"individual"``: the same entries one by one (``ehr_individual``).
- ``"document-only"``: only the DocumentReferences (the rendered PDFs) and their
  Provenance (``ehr_profiles`` says why). Set by hand, it is posted as one transaction
  (as before); chosen by ``"auto"``, its entries go one by one like ``individual``.
- ``"auto"``: the profile follows the EHR's CapabilityStatement (``ehr_capability``).

The requests themselves and their failures in words: ``ehr_http``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .ehr_capability import Capabilities, CapabilityError, bundle_types, \
    profile_from_capability
from .ehr_http import Result, exchange, parse_json
from .ehr_individual import post_individually
from .ehr_profiles import SETTINGS, for_profile, nothing_to_send

__all__ = ["deliver", "post_transaction"]


def deliver(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
            timeout: float, profile: str = "transaction",
            capabilities: Capabilities | None = None) -> Result:
    """Deliver ``bundle`` under ``profile`` (one of ``SETTINGS``); ``auto`` reads the
    CapabilityStatement through ``capabilities`` (a fresh read when None)."""
    if profile not in SETTINGS:
        raise ValueError(f"EHR_PROFILE must be one of {', '.join(SETTINGS)}, not {profile!r}")
    statement = None
    if profile == "auto":
        capabilities = capabilities or Capabilities(base_url, timeout=timeout, ttl=0)
        try:
            statement = capabilities.statement(token)
            profile = profile_from_capability(statement, bundle_types(bundle))
        except CapabilityError as error:
            return error.result
        except ValueError as error:  # no safe profile: retrying would not change it
            return Result(delivered=False, retryable=False, error=str(error))
    if profile == "transaction" or (profile == "document-only" and statement is None):
        return post_transaction(base_url, bundle, token=token, timeout=timeout,
                                profile=profile)
    return post_individually(base_url, bundle, token=token, timeout=timeout,
                             profile=profile, statement=statement)


def post_transaction(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
                     timeout: float, profile: str = "transaction") -> Result:
    """POST ``bundle`` (adapted to ``profile``) to the EHR's base URL."""
    payload = for_profile(bundle, profile)
    if not payload.get("entry"):
        return nothing_to_send(profile)
    answer = exchange("POST", base_url.rstrip("/") + "/", payload, token=token,
                      timeout=timeout, headers={"Prefer": "return=minimal"})
    if isinstance(answer, Result):
        return answer
    status, _, body = answer
    parsed = parse_json(body)
    if not (isinstance(parsed, Mapping) and parsed.get("resourceType") == "Bundle"
            and parsed.get("type") == "transaction-response"):
        # accepted (2xx) but not what a FHIR server answers a transaction with: retrying
        # is harmless (conditional creates) and may meet a healthier server
        return Result(delivered=False, retryable=True, status=status,
                      error=f"HTTP {status} without a transaction-response Bundle")
    return Result(delivered=True, status=status, profile=profile)
