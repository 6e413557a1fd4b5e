"""RSA keys as the rails' consoles hand them out: PEM, or the bare base64 of the DER (Alipay's key tool and
the epay console print that), PKCS#1 or PKCS#8, without a passphrase. Errors name the setting, never
the key."""

from __future__ import annotations

import base64

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _der(text: bytes) -> bytes | None:
    """Bare base64 -> DER; None for PEM."""
    if text.lstrip().startswith(b"-----BEGIN"):
        return None
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except ValueError:
        return b""  # not base64 either: the loader says so


def load_private_key(text: bytes, what: str) -> rsa.RSAPrivateKey:
    der = _der(text)
    try:
        key = (serialization.load_pem_private_key(text, None) if der is None
               else serialization.load_der_private_key(der, None))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{what} is not an RSA private key (PEM or base64, PKCS#1 or PKCS#8, "
                         "without a passphrase)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        # ValueError, not TypeError: it is what every gateway builder raises for a bad setting.
        raise ValueError(f"{what} is not an RSA key")  # noqa: TRY004
    return key


def load_public_key(text: bytes, what: str) -> rsa.RSAPublicKey:
    der = _der(text)
    try:
        key = serialization.load_pem_public_key(text) if der is None else serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{what} is not an RSA public key (PEM or base64)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{what} is not an RSA key")  # noqa: TRY004 - a configuration error, like the others
    return key
