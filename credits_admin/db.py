"""Database helpers: retrying a write that lost a lock race (at the outermost boundary
only: views, tasks, API; always with the same idempotency key, so a retry can never post
twice), and plain SQL for the hot paths (postings, storefront events) where the ORM spent
more time compiling statements than the database spent running them. Values are prepared
and rows converted by the models' own fields, so the same SQL serves PostgreSQL and SQLite
and the instances are what the ORM would have loaded."""

import logging
import random
import time

from django.db import OperationalError, connection
from django.db.models.base import ModelState

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


# --------------------------------------------------------------------------- plain SQL

class RowReader:
    """Reads a model's rows from plain SQL: its columns for a SELECT list (table alias
    `alias`), and instances built from them with the ORM's own database converters."""

    def __init__(self, model, alias: str):
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self._converters: dict[str, list] = {}

    def columns(self) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.fields)

    def _converters_for_connection(self) -> list:
        found = self._converters.get(connection.vendor)
        if found is None:
            found = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.alias)
                functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if functions:
                    found.append((i, functions, col))
            self._converters[connection.vendor] = found
        return found

    def first(self, where: str, params: list, *, lock: bool = False):
        """The first row of `SELECT <columns> FROM <table> <alias> WHERE <where>` as an
        instance, or None; `lock`: FOR UPDATE (where the database has it)."""
        quote = connection.ops.quote_name
        sql = f"SELECT {self.columns()} FROM {quote(self.model._meta.db_table)} {self.alias} WHERE {where}"
        if lock and connection.features.has_select_for_update:
            sql += " FOR UPDATE"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return self.build(row) if row is not None else None

    def build(self, values):
        values = list(values)
        for i, functions, col in self._converters_for_connection():
            value = values[i]
            for convert in functions:
                value = convert(value, col, connection)
            values[i] = value
        return self.model.from_db("default", self.attnames, values)


_insert_sql_cache: dict[tuple, str] = {}


def _insert_sql(model, names: tuple[str, ...], returning: bool) -> str:
    key = (connection.vendor, model, names, returning)
    sql = _insert_sql_cache.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(model._meta.get_field(n).column) for n in names)
        sql = (f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(names))})"
               + (f" RETURNING {quote(model._meta.pk.column)}" if returning else ""))
        _insert_sql_cache[key] = sql
    return sql


def prepared_values(model, values: dict) -> list:
    """`values` (by attname) prepared for the database by the model's fields."""
    meta = model._meta
    return [meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()]


def insert_row(model, values: dict, *, returning: bool = True) -> int | None:
    """INSERT one row of `values` (by attname, in any order); its new id."""
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, tuple(values), returning), prepared_values(model, values))
        return cursor.fetchone()[0] if returning else None


def insert_instance(instance) -> None:
    """INSERT an unsaved model instance (auto_now/auto_now_add applied, as save() would),
    setting its id; no signals, as for bulk_create."""
    model = type(instance)
    values = {f.attname: f.pre_save(instance, add=True)
              for f in model._meta.concrete_fields if not f.primary_key or instance.pk is not None}
    instance.pk = insert_row(model, values)
    instance._state.adding = False
    instance._state.db = "default"


def update_row(model, pk, values: dict) -> None:
    """UPDATE the row `pk` of `model` with `values` (by attname), as given: no signals, no
    auto_now stamping."""
    meta = model._meta
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(meta.db_table)} SET " + ", ".join(f"{quote(meta.get_field(n).column)} = %s" for n in values)
           + f" WHERE {quote(meta.pk.column)} = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*prepared_values(model, values), pk])


def loaded_instance(model, values: dict, related: dict | None = None):
    """An instance as if loaded from the database, without Model.__init__'s per-field work
    (`values`: every concrete field by attname), with `related` objects cached on it."""
    instance = model.__new__(model)
    instance.__dict__.update(values)
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = "default"
    if related:
        instance._state.fields_cache.update(related)
    return instance
