import pytest
from django.db import DatabaseError, connection, transaction

from ledger import services
from ledger.models import CreditAccount, LedgerEntry, LotConsumption
from tests.ledger.support import ledger_state

pytestmark = pytest.mark.django_db

REFUSED = r"rows are append-only; post a reversal instead\."


@pytest.fixture
def debit(funded_customer):
    return services.debit(customer=funded_customer, amount=100, kind="redeem", reason="checkout")


@pytest.fixture
def consumption(debit):
    return LotConsumption.objects.get(entry=debit)


def test_entry_saved_again_through_the_orm_is_refused_and_unchanged(debit):
    # given
    before = ledger_state()
    debit.amount = -1
    # when
    with pytest.raises(PermissionError, match="ledger.LedgerEntry " + REFUSED):
        debit.save()
    # then
    assert ledger_state() == before


def test_entry_save_with_update_fields_is_refused(debit):
    # given
    before = ledger_state()
    debit.comment = "edited"
    # when
    with pytest.raises(PermissionError, match=REFUSED):
        debit.save(update_fields=["comment"])
    # then
    assert ledger_state() == before
    assert LedgerEntry.objects.get(pk=debit.pk).comment == ""


def test_entry_deleted_through_the_orm_is_refused_and_kept(debit):
    # given
    before = ledger_state()
    # when
    with pytest.raises(PermissionError, match=REFUSED):
        debit.delete()
    # then
    assert ledger_state() == before


@pytest.mark.parametrize("change", [
    lambda qs: qs.update(amount=-1),
    lambda qs: qs.delete(),
    lambda qs: qs.model.objects.bulk_update(list(qs), ["amount"]),
    lambda qs: qs.model.objects.update_or_create(pk=qs.get().pk, defaults={"amount": -1}),
], ids=["update", "delete", "bulk_update", "update_or_create"])
@pytest.mark.parametrize("model", [LedgerEntry, LotConsumption])
def test_queryset_changes_to_append_only_rows_are_refused(debit, model, change):
    # given
    queryset = model.objects.filter(pk=model.objects.order_by("-pk").first().pk)
    before = ledger_state()
    # when
    with pytest.raises(PermissionError, match=REFUSED), transaction.atomic():  # bulk_update marks it broken
        change(queryset)
    # then
    assert ledger_state() == before


def test_related_manager_delete_of_an_accounts_entries_is_refused(debit):
    # given
    account = CreditAccount.objects.get(pk=debit.account_id)
    before = ledger_state()
    # when
    with pytest.raises(PermissionError, match=REFUSED):
        account.entries.all().delete()
    # then
    assert ledger_state() == before


def test_consumption_saved_again_or_deleted_through_the_orm_is_refused(consumption):
    # given
    before = ledger_state()
    consumption.amount = 1
    # when
    with pytest.raises(PermissionError, match="ledger.LotConsumption " + REFUSED):
        consumption.save()
    with pytest.raises(PermissionError, match=REFUSED):
        consumption.delete()
    # then
    assert ledger_state() == before


@pytest.mark.postgres
@pytest.mark.parametrize("sql", [
    "UPDATE {table} SET amount = amount * 2 WHERE id = %s",
    "DELETE FROM {table} WHERE id = %s",
], ids=["update", "delete"])
@pytest.mark.parametrize("table", ["ledger_ledgerentry", "ledger_lotconsumption"])
def test_raw_sql_change_of_append_only_rows_is_refused_by_the_postgres_trigger(debit, table, sql):
    # given
    row_id = debit.pk if table == "ledger_ledgerentry" else LotConsumption.objects.get(entry=debit).pk
    before = ledger_state()
    # when
    with pytest.raises(DatabaseError, match=f"ledger rows are append-only: .* on {table} refused"), \
            transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.format(table=table), [row_id])
    # then
    assert ledger_state() == before
