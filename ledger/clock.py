"""The ledger's clock. Services read the time here, so the demo seeder and the benchmark
loader can post history "as of" a past moment without touching the system clock."""

import contextlib
import contextvars
from datetime import datetime

from django.utils import timezone

_frozen: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("ledger_clock", default=None)


def now() -> datetime:
    return _frozen.get() or timezone.now()


@contextlib.contextmanager
def posting_at(moment: datetime):
    token = _frozen.set(moment)
    try:
        yield moment
    finally:
        _frozen.reset(token)
