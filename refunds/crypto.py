"""Encryption of payout details at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key is derived from settings.SECRET_KEY with HKDF-SHA256, so no extra secret has to
be managed; keys from settings.SECRET_KEY_FALLBACKS still decrypt (rotate SECRET_KEY by
moving the old one there). Plain account numbers never leave this module except to the
payout gateway."""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_SALT = b"store-credits-admin/refunds"
_INFO = b"payout-details/fernet/v1"


class DecryptionError(Exception):
    pass


def _derive(secret: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


@lru_cache(maxsize=4)
def _fernet(secret: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(secret), *(_derive(s) for s in fallbacks)])


def _current() -> MultiFernet:
    return _fernet(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()))


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("The payout details cannot be decrypted with the current SECRET_KEY "
                              "(or its SECRET_KEY_FALLBACKS).") from None
