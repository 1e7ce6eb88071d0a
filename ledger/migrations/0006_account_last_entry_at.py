from django.db import migrations, models

BACKFILL = """
UPDATE ledger_creditaccount
   SET last_entry_at = (SELECT MAX(e.created_at) FROM ledger_ledgerentry e
                         WHERE e.account_id = ledger_creditaccount.customer_id)
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0005_entry_amount_indexes")]

    operations = [
        migrations.AddField(
            model_name="creditaccount",
            name="last_entry_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
