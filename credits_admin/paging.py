"""Keyset ("seek") paging: page N costs what page 1 costs, and nothing counts the rows.

The cursor is the sort value and id of the row at a page edge. A page after it is
`(value, id) < (v, i)` for descending sorts; we add the redundant `value <= v` so
PostgreSQL starts its index range at the cursor instead of filtering from the top."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime


class BadCursor(ValueError):
    pass


def encode_cursor(field: str, value, pk: int) -> str:
    if isinstance(value, datetime):
        value = {"dt": value.isoformat()}
    raw = json.dumps([field, value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _is_bigint(value) -> bool:
    """An int the database can compare (a crafted 10**30 would overflow SQLite's INTEGER)."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) < value < 2**63


def decode_cursor(token: str, *, field: str, is_datetime: bool | None = None):
    """(value, pk) of a cursor made for `field` (whose values are datetimes or not, if
    `is_datetime` says); BadCursor for anything else."""
    try:
        if len(token) > 300:
            raise ValueError
        padded = token + "=" * (-len(token) % 4)
        cursor_field, value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if cursor_field != field:
            raise ValueError
        if isinstance(value, dict):
            value = parse_datetime(value["dt"])
            if value is None or value.tzinfo is None:
                raise ValueError
        elif not _is_bigint(value):
            raise ValueError
        if not _is_bigint(pk):
            raise ValueError
        if is_datetime is not None and isinstance(value, datetime) != is_datetime:
            raise ValueError
        return value, pk
    except Exception:  # any garbage in the URL is just a bad cursor
        raise BadCursor("This page link is no longer valid; showing the first page.") from None


@dataclass
class KeysetPage:
    rows: list
    next_cursor: str | None
    prev_cursor: str | None
    is_first: bool

    @property
    def has_next(self):
        return self.next_cursor is not None

    @property
    def has_prev(self):
        return self.prev_cursor is not None


def keyset_page(qs: QuerySet, *, field: str, descending: bool, after: str | None = None,
                before: str | None = None, per_page: int = 50) -> KeysetPage:
    """One page of `qs` ordered by (field, id), both descending or both ascending."""
    sign = "-" if descending else ""
    order = [f"{sign}{field}", f"{sign}id"]
    going_back = before is not None and after is None
    token = before if going_back else after
    if token:
        try:
            is_datetime = isinstance(qs.model._meta.get_field(field), models.DateTimeField)
        except FieldDoesNotExist:  # an annotation: its type is not known here
            is_datetime = None
        value, pk = decode_cursor(token, field=field, is_datetime=is_datetime)
        # "further along" in the display order is smaller when descending
        forward_lt = descending != going_back
        op, edge = ("lt", "lte") if forward_lt else ("gt", "gte")
        qs = qs.filter(Q(**{f"{field}__{edge}": value})).filter(
            Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"id__{op}": pk}))
    if going_back:
        flipped = ["-" + o if not o.startswith("-") else o[1:] for o in order]
        rows = list(qs.order_by(*flipped)[: per_page + 1])
        more_before = len(rows) > per_page
        rows = list(reversed(rows[:per_page]))
        next_cursor = encode_cursor(field, getattr(rows[-1], field), rows[-1].pk) if rows else None
        prev_cursor = encode_cursor(field, getattr(rows[0], field), rows[0].pk) if rows and more_before else None
        return KeysetPage(rows, next_cursor, prev_cursor, is_first=not more_before)
    rows = list(qs.order_by(*order)[: per_page + 1])
    has_more = len(rows) > per_page
    rows = rows[:per_page]
    next_cursor = encode_cursor(field, getattr(rows[-1], field), rows[-1].pk) if rows and has_more else None
    prev_cursor = encode_cursor(field, getattr(rows[0], field), rows[0].pk) if rows and token else None
    return KeysetPage(rows, next_cursor, prev_cursor, is_first=not token)
