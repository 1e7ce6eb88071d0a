"""A trigram index on UPPER(reason) for the history's reason search (icontains compiles to
UPPER(reason) LIKE UPPER('%text%')). PostgreSQL only; SQLite (the demo) has no GIN indexes.
pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it. If it
cannot be created the index is skipped with a notice: the search still works, only slower."""

from django.db import migrations

INDEX = "ledger_entry_reason_trgm_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SAVEPOINT ledger_trgm")
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as exc:  # no privilege or no contrib package: keep going without the index
            cursor.execute("ROLLBACK TO SAVEPOINT ledger_trgm")
            print(f"\n  pg_trgm not available ({exc}); skipping {INDEX}")
            return
        cursor.execute("RELEASE SAVEPOINT ledger_trgm")
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON ledger_ledgerentry "
                       "USING gin (UPPER(reason) gin_trgm_ops)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_export")]
    operations = [migrations.RunPython(create, drop)]
