"""The store's name and currency as set on the program settings page (StoreSettings), with
the environment's STORE_NAME / STORE_CURRENCY as defaults. Read at most every
CACHE_SECONDS per process: every page shows the name and formats many amounts."""

import time
from typing import NamedTuple

from django.conf import settings

CACHE_SECONDS = 30


class StoreFacts(NamedTuple):
    name: str
    currency: str


_cached: tuple[float, tuple[str, str], StoreFacts] | None = None


def store_facts() -> StoreFacts:
    global _cached
    now = time.monotonic()
    defaults = (settings.STORE_NAME, settings.STORE_CURRENCY)
    if _cached is not None and now - _cached[0] < CACHE_SECONDS and _cached[1] == defaults:
        return _cached[2]
    from .models import StoreSettings

    try:
        row = StoreSettings.objects.filter(pk=1).values_list("store_name", "currency").first()
    except Exception:  # no table yet (before migrate)
        return StoreFacts(*defaults)
    name, currency = row or ("", "")
    facts = StoreFacts(name or defaults[0], (currency or defaults[1]).upper())
    _cached = (now, defaults, facts)
    return facts


def forget_store_facts() -> None:
    global _cached
    _cached = None
