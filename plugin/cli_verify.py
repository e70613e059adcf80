"""``python -m plugin verify FILE | --exam EXAM``: is this signed exam record still what was
signed?

``--exam EXAM`` checks the record as this service stores it: every signed revision of
exam EXAM (or ``--revision N`` alone) in the database named by ``DATABASE_URL``, each
response against the signature of its own Provenance, with this instance's key. One line
per revision; exit 1 if any of them changed.

FILE is JSON: a Bundle of any type holding the QuestionnaireResponse and its
Provenance(s) - the record Bundle this service builds, or what an EHR answers to
``GET [base]/QuestionnaireResponse?_id=<id>&_revinclude=Provenance:target`` - or a
JSON array of those resources. The Provenance with a JOSE signature whose target is the
response is checked (``core.signature.verify``) against this instance's public key
(``SIGNING_KEY`` or the instance folder's ``signing_key.pem``; never a new one), or the
keys in ``--jwks FILE``.

A **delivered copy** of the response differs from what was signed in exactly the
references delivery rewrites (``record.exams.ehr_subject`` / ``ehr_author``):

- ``subject``: this service's ``Patient/<id>`` becomes the EHR's ``Patient/<id>`` (a
  patient launched from, or chosen in, that EHR) or is dropped, leaving the patient's
  identifier and name. Put it back with ``--subject Patient/<our id>``.
- ``author``: ``Practitioner/<user id>`` is dropped (the EHR cannot resolve it), leaving
  the Practitioner's identifier and name. Put back automatically from ``Signature.who``
  (which the signature covers) when the author has no reference.
- any other reference the EHR rewrote: ``--reference DELIVERED=SIGNED`` (repeatable).

Root ``id``, ``meta`` and ``text`` are not signed, so the EHR's own need no undoing. The
EHR does not hold the signature (the Provenance it receives describes the extraction),
so check its copy against the stored one: a JSON array of the EHR's response and this
service's signed Provenance.

Exit 0 with one line naming who signed when; 1 when anything changed (the response,
the JWS, or the signature's who/when/type) or the key is not this instance's; 2 for a
file or argument that cannot be used; 4 when the configuration's key is unusable.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from .cli_input import UsageError, read_json, say as _say

EXIT_OK, EXIT_CHANGED, EXIT_INPUT, EXIT_KEY = 0, 1, 2, 4


def add_parser(commands: Any) -> None:
    """Register ``verify`` on the CLI's subcommands."""
    verify = commands.add_parser(
        "verify", help="check a signed exam record's signature",
        description="Check that a signed exam record (a Bundle holding the "
                    "QuestionnaireResponse and its signed Provenance) is unchanged since it "
                    "was signed. Exit 0: valid (who signed when); 1: changed; 2: unusable "
                    "file or argument; 4: no usable signing key.")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("file", metavar="FILE", nargs="?",
                        help="the record (JSON; - = stdin)")
    source.add_argument("--exam", metavar="EXAM",
                        help="check the stored record of this exam (its id) in the database")
    verify.add_argument("--revision", metavar="N", type=_positive,
                        help="with --exam: only this revision (1 = the first signature)")
    verify.add_argument("--reference", action="append", default=[], metavar="DELIVERED=SIGNED",
                        help="undo a reference rewritten on delivery (repeatable)")
    verify.add_argument("--subject", metavar="Patient/ID",
                        help="the subject the signed response named (this service's "
                             "Patient/<id>), for a delivered copy")
    verify.add_argument("--jwks", metavar="JWKS.json",
                        help="verify with these public keys instead of this instance's key")


def run(args: argparse.Namespace) -> int:
    """The ``verify`` command."""
    if args.exam is not None:
        return _run_stored(args)
    if args.revision is not None:
        _say("error: --revision goes with --exam")
        return EXIT_INPUT
    from .adapters.ehr_steps import rewrite_references
    from .core.signature import SignatureError, verify

    try:
        resources = _resources(read_json(args.file), args.file)
        rewrites = dict(_rewrite(r) for r in args.reference)
        response = _one_response(resources)
        if rewrites:
            response = rewrite_references(response, rewrites)
        element = _signature(resources, response)
        response = _undo_delivery(response, element, args.subject)
        jwks = read_json(args.jwks) if args.jwks else None
    except UsageError as exc:
        _say(f"error: {exc}")
        return EXIT_INPUT
    if jwks is None:
        jwks, code = _instance_jwks()
        if jwks is None:
            return code
    try:
        claims = verify(response, element, jwks)
    except SignatureError as exc:
        _say(f"error: {args.file}: {exc.message}")
        return EXIT_CHANGED
    print(_valid(claims))
    return EXIT_OK


def _valid(claims: Any) -> str:
    return (f"valid: signed by {claims.display} ({claims.username}, {claims.practitioner}) "
            f"at {_iso(claims.signed_at)}, password re-entered at "
            f"{_iso(claims.authenticated_at)}; key {claims.kid}")


def _run_stored(args: argparse.Namespace) -> int:
    """``verify --exam``: every signed revision of a stored exam, as the database holds
    it, against the signature of its own Provenance and this instance's key."""
    from .adapters import signing_key, store as storage
    from .cli_input import prepared_app
    from .core.signature import SignatureError, verify
    from .errors import NotFoundError, PluginError

    app, code = prepared_app()
    if app is None:
        return code
    try:
        revisions = storage.from_app(app).revisions(args.exam)
    except NotFoundError:
        _say(f"error: no exam {args.exam!r} in the database")
        return EXIT_INPUT
    except storage.StoreError as exc:
        _say(f"error: {exc.message}")
        return 4
    except PluginError as exc:  # e.g. an id of the wrong form
        _say(f"error: {exc.message}")
        return EXIT_INPUT
    if args.revision is not None:
        revisions = [r for r in revisions if r.number == args.revision]
    if not revisions:
        _say(f"error: exam {args.exam!r} has no signed revision"
             + (f" {args.revision}" if args.revision is not None else ""))
        return EXIT_INPUT
    jwks = signing_key.public_jwks(app.extensions[signing_key.EXTENSION_KEY])
    changed = 0
    for revision in revisions:
        try:
            element = _signature([revision.provenance], revision.response)
            claims = verify(revision.response, element, jwks)
        except UsageError as exc:
            changed += 1
            print(f"revision {revision.number}: not signed: {exc}")
        except SignatureError as exc:
            changed += 1
            print(f"revision {revision.number}: CHANGED: {exc.message}")
        else:
            print(f"revision {revision.number}: {_valid(claims)}")
    return EXIT_CHANGED if changed else EXIT_OK


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a revision number (1, 2, ...)")
    return number


def _instance_jwks() -> tuple[dict[str, Any] | None, int]:
    from flask import Flask

    from . import config
    from .adapters import signing_key

    # the service's configuration (defaults, instance file, PLUGIN_*), without opening
    # the database or loading the knowledge: verifying needs neither
    app = Flask("plugin", instance_relative_config=True)
    app.config.from_mapping(config.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PLUGIN")
    try:
        key = signing_key.load(app.config, app.instance_path, create=False)
    except signing_key.SigningKeyError as exc:
        _say(f"error: {exc.message}")
        return None, EXIT_KEY
    return signing_key.public_jwks(key), EXIT_OK


def _resources(data: Any, name: str) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping) and data.get("resourceType") == "Bundle":
        found = [e.get("resource") for e in data.get("entry") or [] if isinstance(e, Mapping)]
    elif isinstance(data, list):
        found = data
    else:
        raise UsageError(f"{name} is neither a Bundle nor a JSON array of resources")
    return [r for r in found if isinstance(r, Mapping)]


def _one_response(resources: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    responses = [r for r in resources if r.get("resourceType") == "QuestionnaireResponse"]
    if len(responses) != 1:
        raise UsageError(f"the record must hold exactly one QuestionnaireResponse, not "
                        f"{len(responses)}")
    return responses[0]


def _signature(resources: Sequence[Mapping[str, Any]],
               response: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JOSE signature of the Provenance that targets ``response``."""
    signed = [(p, s) for p in resources if p.get("resourceType") == "Provenance"
              for s in p.get("signature") or []
              if isinstance(s, Mapping) and s.get("sigFormat") == "application/jose"]
    if len(signed) > 1:
        signed = [(p, s) for p, s in signed if _targets(p, response)]
    if len(signed) != 1:
        raise UsageError(f"the record must hold one Provenance with a JOSE signature of the "
                        f"response, not {len(signed)}")
    return signed[0][1]


def _undo_delivery(response: Mapping[str, Any], element: Mapping[str, Any],
                   subject: str | None) -> Mapping[str, Any]:
    """``response`` with the references delivery drops or rewrites put back: the
    subject (``--subject``) and the author's, from ``Signature.who``."""
    result = dict(response)
    if subject:
        if not isinstance(result.get("subject"), Mapping):
            raise UsageError("--subject: the response has no subject to put it back on")
        result["subject"] = dict(result["subject"], reference=subject)
    author, who = result.get("author"), element.get("who")
    if isinstance(author, Mapping) and "reference" not in author and \
            isinstance(who, Mapping) and isinstance(who.get("reference"), str):
        result["author"] = dict(author, reference=who["reference"])
    return result


def _targets(provenance: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    identifier = (response.get("identifier") or {}).get("value")
    for target in provenance.get("target") or []:
        if identifier and (target.get("identifier") or {}).get("value") == identifier:
            return True
        if response.get("id") and target.get("reference") in (
                f"QuestionnaireResponse/{response['id']}", response["id"]):
            return True
    return False


def _rewrite(value: str) -> tuple[str, str]:
    delivered, equals, signed = value.partition("=")
    if not equals or not delivered.strip() or not signed.strip():
        raise UsageError(f"--reference {value!r}: expected DELIVERED=SIGNED, e.g. "
                        "Patient/ehr-981=Patient/5f0c")
    return delivered.strip(), signed.strip()


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")
