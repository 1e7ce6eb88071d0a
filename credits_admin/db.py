"""Retrying a write that lost a lock race. Used at the outermost boundary only (views,
tasks, API), always with the same idempotency key, so a retry can never post twice."""

import logging
import random
import time

from django.db import OperationalError, connection

log = logging.getLogger(__name__)

# PostgreSQL: lock_not_available (lock_timeout), deadlock_detected, serialization_failure
RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


def is_retryable(exc: BaseException) -> bool:
    cause = getattr(exc, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return connection.vendor == "sqlite" and "database is locked" in str(exc)


def retry_on_lock(fn, *, attempts: int = 4, base_delay: float = 0.05):
    """Call fn(); on a lock timeout or deadlock, wait a little and call it again."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except OperationalError as exc:
            if attempt == attempts or not is_retryable(exc) or connection.in_atomic_block:
                raise
            log.warning("retrying after %s (attempt %d)", exc.__class__.__name__, attempt)
            time.sleep(base_delay * attempt + random.random() * base_delay)
