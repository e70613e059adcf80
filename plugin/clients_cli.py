"""``python -m plugin clients add|list|disable``: integrators of the FHIR API (SMART
Backend Services clients) from the console.

``add NAME --jwks FILE | --jwks-url URL --scope "system/Observation.rs …"`` checks
everything before anything is stored: the JWK Set holds only public RS/EC keys, each
with a ``kid`` (SMART: keys carry ``kty`` and ``kid``); the URL is https (http only to
this machine); every scope is a ``system/`` v2 scope on a type the API serves
(``core.scopes``). It prints the new client id (stdout: the one thing to hand the
integrator) and the scopes on stderr. Bad input is one line on stderr and exit 2 (4:
the database is unusable). ``disable`` stops the client's tokens at once.
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from .cli_input import (EXIT_DATABASE, EXIT_INPUT, EXIT_OK, UsageError, print_rows, read_json,
                        say as _say)



def add_parser(commands: Any) -> None:
    clients = commands.add_parser(
        "clients", help="manage the integrators of the FHIR API (SMART Backend Services)",
        description="Register, list and disable API clients. Exit 2: bad input; 4: the "
                    "database is unusable.")
    sub = clients.add_subparsers(dest="clients_command", required=True, metavar="SUBCOMMAND")
    add = sub.add_parser("add", help="register a client; prints its client id")
    add.add_argument("name")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks", metavar="FILE", help="the client's public keys (JWK Set JSON)")
    keys.add_argument("--jwks-url", metavar="URL",
                      help="where the client publishes its public keys (preferred)")
    add.add_argument("--scope", required=True,
                     help='the scopes it may get, e.g. "system/Observation.rs '
                          'system/QuestionnaireResponse.cr"')
    listing = sub.add_parser("list", help="list the clients")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    disable = sub.add_parser("disable", help="disable a client; its tokens stop working")
    disable.add_argument("client", help="its name or client id")


def run(args: argparse.Namespace, app: Any) -> int:
    from .adapters import clients, store as storage
    from .core import scopes
    from .errors import UnavailableError

    store = storage.from_app(app)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        if args.clients_command == "add":
            registered = scopes.parse_all(args.scope)
            jwks = _jwks(args.jwks) if args.jwks else None
            url = _url(args.jwks_url) if args.jwks_url else None
            client = clients.add(store, args.name, jwks=jwks, jwks_url=url,
                                 scopes=registered, now=now)
            print(client.id)
            _say(f"registered {client.name}: client id {client.id}, scopes "
                 f"{scopes.render(client.scopes)}")
        elif args.clients_command == "list":
            _list(clients.all_clients(store), args.format)
        else:
            client = clients.disable(store, args.client, now=now)
            _say(f"disabled {client.name} ({client.id}); its tokens stop working now")
    except (clients.ClientError, scopes.ScopeError, UsageError) as exc:
        _say(f"error: {getattr(exc, 'message', None) or exc}")
        return EXIT_INPUT
    except (storage.StoreError, UnavailableError) as exc:
        _say(f"error: {exc.message}")
        return EXIT_DATABASE
    return EXIT_OK


def _jwks(name: str) -> dict[str, Any]:
    from .web.client_jwt import key_set

    data = read_json(name)
    try:
        keys = key_set(data, name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if any(not isinstance(key, dict) or not key.get("kid") for key in data["keys"]):
        raise UsageError(f"{name}: every key needs a kid (the client's assertions name it)")
    if any(key.key_type not in ("RSA", "EC") for key in keys.keys):
        raise UsageError(f"{name}: only RSA (RS384) and EC (ES384) keys are accepted")
    return keys.as_dict(private=False)


def _url(url: str) -> str:
    from .adapters.http_json import secure_url

    if not secure_url(url):
        raise UsageError(f"{url}: the JWKS URL must be https (http only to this machine)")
    return url


def _list(found: list[Any], form: str) -> None:
    from .core import scopes

    rows = [{"client_id": c.id, "name": c.name, "scope": scopes.render(c.scopes),
             "keys": c.jwks_url or "inline JWK Set", "active": c.active} for c in found]
    print_rows(rows, form, lambda row: f"{row['client_id']}\t{row['name']}\t"
               f"{'active' if row['active'] else 'disabled'}\t{row['scope']}\t{row['keys']}")
