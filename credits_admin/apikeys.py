"""Storefront API keys: `sca_<prefix>_<secret>`. Stored hashed; compared in constant time."""

import hashlib
import hmac
import secrets

from django.db import transaction
from django.utils import timezone

from .audit import record_change
from .db import RowReader
from .models import ApiKey

KEY_PREFIX = "sca"
_KEY_ROWS = RowReader(ApiKey, "k")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def create_api_key(*, name: str, actor=None) -> tuple[ApiKey, str]:
    """A new key and its full text (shown once; only the hash is kept)."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(name=name.strip()[:100], prefix=prefix, hashed_secret=_hash(secret),
                                created_by=actor if getattr(actor, "is_authenticated", False) else None)
    record_change(actor=actor, action="api_key.created", target=key, summary=f"API key {key.name}",
                  after={"prefix": prefix, "name": key.name})
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


@transaction.atomic
def revoke_api_key(*, key: ApiKey, actor=None) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        record_change(actor=actor, action="api_key.revoked", target=key, summary=f"API key {key.name}",
                      before={"active": True}, after={"active": False})
    return key


def authenticate(raw: str | None) -> ApiKey | None:
    """The active key matching `raw`, or None."""
    if not raw or len(raw) > 200:
        return None
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    _, prefix, secret = parts
    # Every storefront call: plain SQL, no ORM compile.
    key = _KEY_ROWS.first("k.prefix = %s AND k.revoked_at IS NULL", [prefix])
    if key is None or not hmac.compare_digest(key.hashed_secret, _hash(secret)):
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key
