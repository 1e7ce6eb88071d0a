"""CSV export of the credits history: the columns (defined once), the two writers that
share them, and the export service (direct downloads, background jobs, clean-up).

What gets exported is always a history search: the query string of
`ledger.filters.HistoryFilter` over `selectors.history_entries()`, exactly what the
history page shows. "A chosen period" is the search `period=custom&date_from=..&date_to=..`.

Two writers produce byte-identical files from the same rows (a PostgreSQL test compares
them):

* `write_rows_python` – reads the rows in keyset chunks of `CHUNK` rows through the ORM and
  formats them with each column's Python formatter and the csv module. Used for direct
  downloads (at most `DIRECT_LIMIT` rows) on every database, and for jobs on SQLite.
  Each chunk is a complete query rather than one long `.iterator()` cursor: on SQLite an
  open read cursor holds the database's shared lock for the whole export, so every
  posting (and our own progress updates) would wait behind it; between chunks they go
  through.
* `write_rows_copy` – PostgreSQL only: `COPY (SELECT <column SQL> FROM (<the filtered
  queryset's SQL>) h ORDER BY ..) TO STDOUT WITH (FORMAT csv)` on a separate raw psycopg
  connection, streamed to the file one row at a time, so memory stays flat however many
  rows there are, while progress is written through Django's own connection.

CSV injection (OWASP "CSV Injection"): a spreadsheet treats a cell starting with
``= + - @``, TAB or CR as a formula. Every *text* cell (names, emails, reasons, comments,
member IDs, order references, staff usernames, labels) that starts with one of those
characters (or a line feed) is prefixed with a single quote, which spreadsheets show as
text and do not evaluate. Numeric cells (amounts, balances, entry ids) are written by us
as plain numbers (``-12.34``) and are *not* escaped, so a spreadsheet can still sum them;
they can only ever contain digits, a minus sign and a decimal point. Line breaks inside
text are normalised to LF (quoted, as CSV requires), so a stray CR never splits a row in
a reader that treats CR as a line end.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from credits_admin import money
from credits_admin.audit import record_change

from .filters import PERIOD_CHOICES, HistoryFilter, with_default_period
from .models import EntryKind, EntrySource, Export

logger = logging.getLogger(__name__)

DIRECT_LIMIT = 10_000  # rows; a larger export runs as a background job
CHUNK = 2_000  # rows per ORM query (Python writer) and per progress check
PROGRESS_SECONDS = 1.0  # how often a job writes rows_written
KEEP_FOR = dt.timedelta(days=7)  # export files are deleted this long after they are built
STALE_AFTER = dt.timedelta(days=1)  # an export still queued/running after this was lost
EXPORT_DIR = "exports"  # under MEDIA_ROOT
MAX_SEARCH_LENGTH = 2_000

# Cells starting with these are escaped (see the module docstring).
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r", "\n")


class ExportError(ValueError):
    """The export's parameters are not usable; the message is fit to show a person."""


# --------------------------------------------------------------------------- formatting


@dataclass(frozen=True)
class CsvFormat:
    """What both writers need to format cells the same way."""

    exponent: int  # the store currency's minor-unit exponent (2 for USD, 0 for KRW)
    tz_name: str  # IANA name of the time zone dates are written in

    @classmethod
    def current(cls) -> CsvFormat:
        return cls(exponent=money.exponent(), tz_name=timezone.get_current_timezone_name())

    @property
    def tzinfo(self):
        import zoneinfo

        return zoneinfo.ZoneInfo(self.tz_name)


def escape_text(value) -> str:
    """A text cell: '' for None, line breaks as LF, a leading formula character quoted."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith(FORMULA_CHARS):
        return "'" + text
    return text


def money_text(minor, exponent: int) -> str:
    """Minor units as a plain number in major units: -1234 -> '-12.34' (exponent 2)."""
    if minor is None:
        return ""
    return f"{Decimal(int(minor)).scaleb(-exponent):.{exponent}f}"


def datetime_text(value, tzinfo) -> str:
    """ISO 8601 to the second, with the offset: '2026-12-02T14:05:09+09:00'."""
    if value is None:
        return ""
    return timezone.localtime(value, tzinfo).isoformat(timespec="seconds")


def _sql_literal(text: str) -> str:
    # Only our own constants (choice values and labels) go through here. '%' is doubled
    # because the statement is sent with psycopg %s parameters.
    return "'" + str(text).replace("'", "''").replace("%", "%%") + "'"


def _sql_text(expr: str) -> str:
    """SQL twin of escape_text (NULL and '' both come out as an empty unquoted cell)."""
    # Normalising CR to LF cannot change whether the first character is one to escape (CR
    # and LF both are), so the test looks at the raw value and the value is computed once.
    norm = f"replace(replace({expr}, chr(13) || chr(10), chr(10)), chr(13), chr(10))"
    firsts = ", ".join(_sql_literal(c) if c.isprintable() else f"chr({ord(c)})" for c in FORMULA_CHARS)
    return f"NULLIF((CASE WHEN left({expr}, 1) IN ({firsts}) THEN '''' ELSE '' END) || {norm}, '')"


# --------------------------------------------------------------------------- columns

TEXT, LABEL, MONEY, INTEGER, DATETIME = "text", "label", "money", "integer", "datetime"

# The row both writers read: the filtered history queryset's `.values()` with these names.
# (plain LedgerEntry fields, or an expression for a related one)
ROW_FIELDS: dict[str, str | F] = {
    "id": "id",
    "created_at": "created_at",
    "member_id": F("account__customer__member_id"),
    "customer_name": F("account__customer__name"),
    "email": F("account__customer__email"),
    "kind": "kind",
    "reason": "reason",
    "amount": "amount",
    "balance_after": "balance_after",
    "order_ref": F("order__external_id"),
    "staff": F("actor__username"),
    "comment": "comment",
    "source": "source",
}


@dataclass(frozen=True)
class Column:
    """One CSV column: its key (form value), header label, the row field it shows, and its
    type, from which both its Python formatter and its SQL expression follow."""

    key: str
    label: str
    field: str  # a key of ROW_FIELDS
    type: str
    default: bool = True
    labels: tuple[tuple[str, str], ...] = ()  # for LABEL columns: (value, label) pairs

    def python_value(self, row: dict, fmt: CsvFormat) -> str:
        """The cell for `row` (a dict of ROW_FIELDS values), as the Python writer writes it."""
        value = row[self.field]
        if self.type == DATETIME:
            return datetime_text(value, fmt.tzinfo)
        if self.type == MONEY:
            return money_text(value, fmt.exponent)
        if self.type == INTEGER:
            return "" if value is None else str(int(value))
        if self.type == LABEL:
            return escape_text(dict(self.labels).get(value, value))
        return escape_text(value)

    def sql(self, fmt: CsvFormat, alias: str = "h") -> str:
        """The same cell as a PostgreSQL expression over the row subquery `alias`."""
        col = f"{alias}.{connection.ops.quote_name(self.field)}"
        if self.type == DATETIME:
            # to_char uses the session TimeZone, which write_rows_copy sets to fmt.tz_name.
            return f"""to_char({col}, 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM')"""
        if self.type == MONEY:
            if fmt.exponent == 0:
                return col
            return f"({col}::numeric / {10 ** fmt.exponent})::numeric(30, {fmt.exponent})"
        if self.type == INTEGER:
            return col
        if self.type == LABEL:
            whens = " ".join(f"WHEN {_sql_literal(v)} THEN {_sql_literal(label)}" for v, label in self.labels)
            return _sql_text(f"(CASE {col} {whens} ELSE {col} END)")
        return _sql_text(col)


COLUMNS: tuple[Column, ...] = (
    Column("date", "Date", "created_at", DATETIME),
    Column("member_id", "Member ID", "member_id", TEXT),
    Column("customer_name", "Customer name", "customer_name", TEXT),
    Column("email", "Email", "email", TEXT, default=False),
    Column("kind", "Kind", "kind", LABEL, labels=tuple(EntryKind.choices)),
    Column("reason", "Reason", "reason", TEXT),
    Column("amount", "Amount", "amount", MONEY),
    Column("balance_after", "Balance after", "balance_after", MONEY),
    Column("order", "Order", "order_ref", TEXT),
    Column("staff", "Staff", "staff", TEXT),
    Column("comment", "Comment", "comment", TEXT),
    Column("source", "Source", "source", LABEL, default=False, labels=tuple(EntrySource.choices)),
    Column("entry_id", "Entry ID", "id", INTEGER, default=False),
)
COLUMNS_BY_KEY = {c.key: c for c in COLUMNS}
COLUMN_CHOICES = [(c.key, c.label) for c in COLUMNS]
DEFAULT_COLUMNS = [c.key for c in COLUMNS if c.default]


def columns_for(keys: Iterable[str]) -> list[Column]:
    """The chosen columns in the table's order; ExportError for an unknown or empty choice."""
    keys = list(keys)
    unknown = [k for k in keys if k not in COLUMNS_BY_KEY]
    if unknown:
        raise ExportError(f"Unknown column: {str(unknown[0])[:50]}.")
    if not keys:
        raise ExportError("Choose at least one column.")
    return [c for c in COLUMNS if c.key in keys]


def header(columns: list[Column]) -> list[str]:
    return [c.label for c in columns]


# --------------------------------------------------------------------------- the rows


def row_queryset(qs: QuerySet, columns: list[Column]) -> QuerySet:
    """`qs` (filtered history entries) as dicts of just the fields the columns need, plus
    the id and date both writers order by; no ordering of its own."""
    needed = {"id", "created_at"} | {c.field for c in columns}
    plain = sorted(name for name in needed if isinstance(ROW_FIELDS[name], str))
    exprs = {name: ROW_FIELDS[name] for name in sorted(needed) if not isinstance(ROW_FIELDS[name], str)}
    return qs.order_by().values(*plain, **exprs)


def iter_rows(rows: QuerySet, chunk: int = CHUNK) -> Iterator[dict]:
    """Rows newest first, `chunk` at a time, each chunk its own query (keyset on
    (created_at, id) descending, the history's order and index)."""
    ordered = rows.order_by("-created_at", "-id")
    after = None
    while True:
        page = ordered
        if after is not None:
            at, pk = after
            page = ordered.filter(created_at__lte=at).filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=pk))
        batch = list(page[:chunk])
        yield from batch
        if len(batch) < chunk:
            return
        after = (batch[-1]["created_at"], batch[-1]["id"])


def _header_bytes(columns: list[Column], *, bom: bool) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(header(columns))
    return ("\ufeff" if bom else "").encode() + buf.getvalue().encode()


def write_rows_python(qs: QuerySet, columns: list[Column], out: BinaryIO, *, fmt: CsvFormat,
                      on_progress: Callable[[int], None] | None = None) -> int:
    """Write the data rows (no header) of `qs` to `out`; returns how many."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    written = 0
    for row in iter_rows(row_queryset(qs, columns)):
        writer.writerow([c.python_value(row, fmt) for c in columns])
        written += 1
        if written % CHUNK == 0:
            out.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
            if on_progress:
                on_progress(written)
    out.write(buf.getvalue().encode())
    return written


def copy_statement(qs: QuerySet, columns: list[Column], *, fmt: CsvFormat) -> tuple[str, tuple]:
    """The COPY statement (and its parameters) for the data rows of `qs`."""
    inner_sql, params = row_queryset(qs, columns).query.sql_with_params()
    select = ", ".join(c.sql(fmt) for c in columns)
    return (f"COPY (SELECT {select} FROM ({inner_sql}) AS h ORDER BY h.created_at DESC, h.id DESC) "
            f"TO STDOUT WITH (FORMAT csv)", tuple(params))


def write_rows_copy(qs: QuerySet, columns: list[Column], out: BinaryIO, *, fmt: CsvFormat,
                    on_progress: Callable[[int], None] | None = None) -> int:
    """PostgreSQL: stream the data rows of `qs` with COPY on a separate connection (so
    Django's connection stays free for progress updates); returns how many."""
    import psycopg

    sql, params = copy_statement(qs, columns, fmt=fmt)
    written = 0
    raw = psycopg.connect(**connection.get_connection_params())
    try:
        raw.autocommit = True
        raw.execute("SELECT set_config('TimeZone', %s, false)", (fmt.tz_name,))
        with raw.cursor() as cursor, cursor.copy(sql, params) as copy:
            for data in copy:  # one CopyData message per row
                out.write(data)
                written += 1
                if on_progress and written % 1000 == 0:
                    on_progress(written)
    finally:
        raw.close()
    return written


def write_csv(qs: QuerySet, columns: list[Column], out: BinaryIO, *, bom: bool, fmt: CsvFormat | None = None,
              use_copy: bool | None = None, on_progress: Callable[[int], None] | None = None) -> int:
    """The whole file (optional BOM, header, rows) to the binary stream `out`."""
    fmt = fmt or CsvFormat.current()
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    out.write(_header_bytes(columns, bom=bom))
    writer = write_rows_copy if use_copy else write_rows_python
    return writer(qs, columns, out, fmt=fmt, on_progress=on_progress)


# --------------------------------------------------------------------------- the search


def _filter_keys() -> set[str]:
    return set(HistoryFilter.base_filters)


def normalize_search(data) -> str:
    """The history search in `data` (a QueryDict or query string) as a query string of only
    the filter's own keys, with the history page's default when it names none."""
    if isinstance(data, str):
        data = QueryDict(data)
    keys = _filter_keys()
    clean = QueryDict(mutable=True)
    for key in data:
        if key in keys:
            clean.setlist(key, data.getlist(key)[:1])
    return with_default_period(clean).urlencode()


def period_search(date_from: dt.date, date_to: dt.date) -> str:
    query = QueryDict(mutable=True)
    query.update({"period": "custom", "date_from": date_from.isoformat(), "date_to": date_to.isoformat()})
    return query.urlencode()


def search_filterset(search: str) -> HistoryFilter:
    return HistoryFilter(QueryDict(normalize_search(search)))


def filterset_errors(filterset: HistoryFilter) -> str:
    parts = []
    for name, errors in filterset.errors.items():
        label = filterset.form.fields[name].label if name in filterset.form.fields else ""
        for error in errors:
            parts.append(f"{label}: {error}" if label else str(error))
    return " ".join(parts)


def entries_for(search: str) -> QuerySet:
    """The history entries a search selects; ExportError if the search is not valid."""
    if len(search) > MAX_SEARCH_LENGTH:
        raise ExportError("This search is too long to export.")
    filterset = search_filterset(search)
    if not filterset.is_valid():
        raise ExportError(f"The search is not valid: {filterset_errors(filterset)}")
    return filterset.qs


def capped_count(qs: QuerySet, cap: int | None = None) -> int:
    """How many rows, counting at most cap + 1 (never a full COUNT over the history)."""
    cap = DIRECT_LIMIT if cap is None else cap
    return qs.order_by().values("id")[: cap + 1].count()


def _day(moment: dt.datetime) -> str:
    return timezone.localtime(moment).date().isoformat()


def describe_search(filterset: HistoryFilter) -> str:
    """The search in plain words: 'Last 30 days (2026-11-03 to 2026-12-02) · kind Grant'."""
    if not filterset.is_valid():
        return "A search that is not valid"
    data = filterset.form.cleaned_data
    parts = []
    start, end = filterset.period_range
    period = data.get("period") or ""
    first = _day(start) if start else None
    last = _day(end - dt.timedelta(microseconds=1)) if end else None
    if period == "today":
        parts.append(f"Today ({first})")
    elif period in ("7d", "30d", "month"):
        parts.append(f"{dict(PERIOD_CHOICES)[period]} ({first} to {last})")
    elif first and last:
        parts.append(f"{first} to {last}" if first != last else f"On {first}")
    elif first:
        parts.append(f"From {first}")
    elif last:
        parts.append(f"Until {last}")
    else:
        parts.append("All of history")
    if data.get("customer"):
        parts.append(f"customer matching “{data['customer'].strip()}”")
    if data.get("direction"):
        parts.append(f"{data['direction']} only")
    if data.get("kind"):
        parts.append(f"kind {EntryKind(data['kind']).label}")
    if data.get("reason"):
        parts.append(f"reason contains “{data['reason']}”")
    if data.get("source"):
        parts.append(f"source {EntrySource(data['source']).label}")
    lo, hi = data.get("amount_min"), data.get("amount_max")
    if lo is not None and hi is not None:
        parts.append(f"amount {money.format_amount(lo)} to {money.format_amount(hi)}")
    elif lo is not None:
        parts.append(f"amount at least {money.format_amount(lo)}")
    elif hi is not None:
        parts.append(f"amount at most {money.format_amount(hi)}")
    if data.get("order"):
        parts.append(f"order {data['order']}")
    if data.get("staff"):
        parts.append(f"staff {data['staff'].get_username()}")
    return " · ".join(parts)


# --------------------------------------------------------------------------- the service


def can_see_all_exports(user) -> bool:
    """Store admins see and download everyone's exports. Checked with Export's default
    `change_export` permission, which only Store admin holds (Ops holds the view_* ones)."""
    return user.has_perm("ledger.change_export")


def visible_exports(user) -> QuerySet:
    qs = Export.objects.select_related("requested_by")
    return qs if can_see_all_exports(user) else qs.filter(requested_by=user)


def download_name(moment: dt.datetime | None = None) -> str:
    return f"credits-history-{_day(moment or timezone.now())}.csv"


def _audit(*, actor, params: dict, rows: int, description: str, export: Export | None = None):
    record_change(
        actor=actor, action="ledger.exported", target=export,
        summary=f"Exported {rows:,} credits-history rows to CSV: {description}",
        after={"search": params["search"], "scope": params.get("scope", "search"), "columns": params["columns"],
               "bom": params["bom"], "rows": rows, "description": description,
               "export": export.pk if export else None, "mode": "job" if export else "download"},
    )


def export_direct(*, actor, params: dict, description: str) -> tuple[bytes, int]:
    """A small export (the caller checked it has at most DIRECT_LIMIT rows): the whole CSV
    file and its row count. Writes the audit event."""
    qs = entries_for(params["search"])
    columns = columns_for(params["columns"])
    out = io.BytesIO()
    rows = write_csv(qs, columns, out, bom=params["bom"], use_copy=False)
    _audit(actor=actor, params=params, rows=rows, description=description)
    return out.getvalue(), rows


def start_export(*, actor, params: dict, description: str) -> Export:
    """A large export: an Export row, built by build_export_task once this commits."""
    from .tasks import build_export_task

    entries_for(params["search"])  # raises ExportError now rather than in the job
    columns_for(params["columns"])
    with transaction.atomic():
        export = Export.objects.create(requested_by=actor, params=params, description=description[:300])
        build_export_task.delay_on_commit(export.pk)
    return export


class _Progress:
    """Writes rows_written about once a second (through Django's connection)."""

    def __init__(self, export_id: int):
        self.export_id = export_id
        self.last = time.monotonic()

    def __call__(self, written: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            Export.objects.filter(pk=self.export_id).update(rows_written=written)
            self.last = now


def export_path(relative: str) -> Path:
    """The file of an export, refusing anything outside MEDIA_ROOT/exports."""
    root = (Path(settings.MEDIA_ROOT) / EXPORT_DIR).resolve()
    path = (Path(settings.MEDIA_ROOT) / relative).resolve()
    if root not in path.parents:
        raise ExportError("Not an export file.")
    return path


def _remove(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def build_export(*, export_id: int, use_copy: bool | None = None) -> Export | None:
    """Build the file of a queued export. Safe to run twice: a finished export is left
    alone, a re-delivered one is built again into a new file (the old one is removed)."""
    with transaction.atomic():
        export = Export.objects.select_for_update().filter(pk=export_id).first()
        if export is None or export.status not in (Export.Status.QUEUED, Export.Status.RUNNING):
            return export
        export.status = Export.Status.RUNNING
        export.rows_written = 0
        export.save(update_fields=["status", "rows_written"])
    params = export.params
    relative = f"{EXPORT_DIR}/export-{export.pk}-{secrets.token_hex(8)}.csv"
    path = Path(settings.MEDIA_ROOT) / relative
    part = path.with_suffix(".part")
    try:
        qs = entries_for(params["search"])
        columns = columns_for(params["columns"])
        total = qs.order_by().count()  # exact, once, in the job: the progress bar's 100 %
        Export.objects.filter(pk=export.pk).update(total_rows=total)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb", buffering=1 << 20) as out:
            rows = write_csv(qs, columns, out, bom=params["bom"], use_copy=use_copy,
                             on_progress=_Progress(export.pk))
        os.replace(part, path)
    except Exception as exc:
        logger.exception("export %s failed", export.pk)
        _remove(part)
        message = str(exc) if isinstance(exc, ExportError) else "The export failed; please try again."
        now = timezone.now()
        Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error=message, finished_at=now,
                                                   expires_at=now + KEEP_FOR)
        return Export.objects.get(pk=export.pk)
    with transaction.atomic():
        export = Export.objects.select_for_update().get(pk=export.pk)
        old = export_path(export.file) if export.file else None
        now = timezone.now()
        export.status = Export.Status.DONE
        export.file = relative
        export.size_bytes = path.stat().st_size
        export.rows_written = export.total_rows = rows
        export.error = ""
        export.finished_at = now
        export.expires_at = now + KEEP_FOR
        export.save()
        _audit(actor=export.requested_by, params=params, rows=rows, description=export.description, export=export)
    if old is not None and old != path.resolve():
        _remove(old)
    return export


def cleanup_exports(*, now: dt.datetime | None = None) -> int:
    """Delete the files of exports past `expires_at` and mark them expired; mark exports
    lost in the queue as failed. Idempotent. Returns how many exports expired."""
    now = now or timezone.now()
    expired = 0
    due = Export.objects.filter(expires_at__lte=now).exclude(status=Export.Status.EXPIRED)
    for export in due.iterator():
        if export.file:
            try:
                _remove(export_path(export.file))
            except ExportError:
                logger.warning("export %s has a file outside the exports folder: %r", export.pk, export.file)
        Export.objects.filter(pk=export.pk).update(status=Export.Status.EXPIRED, file="")
        expired += 1
    Export.objects.filter(status__in=[Export.Status.QUEUED, Export.Status.RUNNING],
                          created_at__lte=now - STALE_AFTER).update(
        status=Export.Status.FAILED, error="The export job was lost; please start it again.",
        finished_at=now, expires_at=now + KEEP_FOR)
    return expired
