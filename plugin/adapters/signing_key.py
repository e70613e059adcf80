"""The service's signing key: the private key behind every exam signature.

``SIGNING_KEY`` (a PEM private key, RSA or EC P-256) when configured: set the same key on
every process behind a load balancer. Empty: an EC P-256 key is generated once and kept
in ``<instance>/signing_key.pem`` (mode 0600, created atomically like the session secret,
``private_files``). Its ``kid`` is the RFC 7638 thumbprint, so it names the key itself.

Keep the key file with the database's backups: a signature can be verified only with the
public half of the key that made it (``public_jwks``, which ``python -m plugin verify``
uses). Replacing the key leaves the earlier signatures unverifiable here.
"""
from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from ..errors import PluginError
from . import private_files

log = logging.getLogger(__name__)
KEY_FILE = "signing_key.pem"
#: ``app.extensions`` key of the loaded private key (``create_app`` loads it once).
EXTENSION_KEY = "signing_key"


class SigningKeyError(PluginError):
    """The configured or stored signing key cannot be used."""


def load(config: Mapping[str, Any], instance_path: str | Path, *,
         create: bool = True) -> RSAKey | ECKey:
    """The private signing key: ``SIGNING_KEY``, or the instance folder's (made once;
    with ``create`` False a missing file is a SigningKeyError: a verifier must never
    make a new key)."""
    configured = config.get("SIGNING_KEY")
    if configured:
        return _import(str(configured), "SIGNING_KEY")
    path = Path(instance_path) / KEY_FILE
    if not create and not path.exists():
        raise SigningKeyError(f"no signing key: SIGNING_KEY is not set and {path} does "
                              "not exist")
    pem, created = private_files.read_or_create(path, _generate, _read)
    if created:
        log.info("created a new signing key in %s", path)
    return _import(pem, str(path))


def public_jwks(key: RSAKey | ECKey) -> dict[str, Any]:
    """The JWKS a verifier needs: the public half of ``key`` with its kid."""
    return KeySet([key]).as_dict(private=False)


def _generate() -> str:
    return ECKey.generate_key("P-256", private=True).as_pem(private=True).decode("ascii")


def _read(path: Path) -> str:
    pem = path.read_text(encoding="ascii")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s is readable by other users; it should be mode 0600", path)
    return pem


def _import(pem: str, where: str) -> RSAKey | ECKey:
    key: RSAKey | ECKey | None = None
    for kind in (ECKey, RSAKey):
        try:
            key = kind.import_key(pem)
            break
        except (JoseError, ValueError, TypeError):
            continue
    if key is None or not key.is_private:
        raise SigningKeyError(f"{where} holds no usable private key (PEM, RSA or EC P-256)")
    if isinstance(key, ECKey) and key.curve_name != "P-256":
        raise SigningKeyError(f"{where}: an EC key must be on curve P-256 (ES256)")
    if isinstance(key, RSAKey) and key.raw_value.key_size < 2048:
        raise SigningKeyError(f"{where}: an RSA key needs at least 2048 bits")
    return type(key).import_key(key.as_dict(private=True), {"kid": key.thumbprint()})
