"""Keyset ("seek") paging: page N costs what page 1 costs, and nothing counts the rows.

The cursor is the sort value and id of the row at a page edge. A page after it is
`(value, id) < (v, i)` for descending sorts; we add the redundant `value <= v` so
PostgreSQL starts its index range at the cursor instead of filtering from the top."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime


class BadCursor(ValueError):
    pass


def encode_cursor(field: str, value, pk: int) -> str:
    if isinstance(value, datetime):
        value = {"dt": value.isoformat()}
    raw = json.dumps([field, value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, *, field: str):
    """(value, pk) of a cursor made for `field`; BadCursor for anything else."""
    try:
        if len(token) > 300:
            raise ValueError
        padded = token + "=" * (-len(token) % 4)
        cursor_field, value, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if cursor_field != field:
            raise ValueError
        if isinstance(value, dict):
            value = parse_datetime(value["dt"])
            if value is None:
                raise ValueError
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        if isinstance(pk, bool) or not isinstance(pk, int):
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
        value, pk = decode_cursor(token, field=field)
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
