"""What the CSV export writes: header, rows, amounts, dates, escaping, BOM; and that the
Python writer and PostgreSQL's COPY writer agree byte for byte."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from credits_admin.models import AuditEvent
from ledger import clock, exports, selectors, services
from ledger.models import LedgerEntry
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

ALL_COLUMNS = [c.key for c in exports.COLUMNS]
LABELS = [c.label for c in exports.COLUMNS]


def seed_history(now=None):
    """A small, hostile history: formula-looking names/comments, a debit, an order, staff.
    Returns (staff, customers, entries) with entries oldest first."""
    now = now or timezone.now()
    staff = StaffUserFactory(username="=cmd|calc", role="Ops")
    ada = CustomerFactory(member_id="M-ADA", name="Ada Lovelace", email="ada@example.com")
    evil = CustomerFactory(member_id="-1+2", name="@evil", email="evil@example.com")
    order = OrderFactory(customer=ada, external_id="+ORD-1")
    entries = []
    with clock.posting_at(now - dt.timedelta(hours=5)):
        entries.append(services.grant(customer=ada, amount=5000, reason="Welcome bonus", comment="=SUM(A1)",
                                      actor=staff))
    with clock.posting_at(now - dt.timedelta(hours=4)):
        entries.append(services.grant(customer=evil, amount=250, reason="Review, \"great\"",
                                      comment="line one\r\nline two", order=None, source="rule"))
    with clock.posting_at(now - dt.timedelta(hours=3)):
        entries.append(services.debit(customer=ada, amount=1234, kind="redeem", reason="Checkout",
                                      order=order, source="api", comment="\tTAB"))
    with clock.posting_at(now - dt.timedelta(hours=2)):
        entries.append(services.debit(customer=evil, amount=5, kind="deduct", reason="-fix", actor=staff,
                                      comment="@ mention"))
    return staff, (ada, evil), entries


def read_csv(content: bytes):
    text = content.decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def export_bytes(qs, columns=None, *, bom=False, use_copy=False):
    out = io.BytesIO()
    rows = exports.write_csv(qs, exports.columns_for(columns or ALL_COLUMNS), out, bom=bom, use_copy=use_copy)
    return out.getvalue(), rows


def test_export_has_the_header_and_one_row_per_entry_newest_first():
    # given
    staff, (ada, evil), entries = seed_history()
    # when
    content, count = export_bytes(selectors.history_entries())
    rows = read_csv(content)
    # then
    assert count == 4
    assert rows[0] == LABELS
    assert [int(r[-1]) for r in rows[1:]] == [e.pk for e in reversed(entries)]
    by_id = {int(r[-1]): dict(zip(LABELS, r, strict=True)) for r in rows[1:]}
    first = by_id[entries[0].pk]
    assert first["Member ID"] == "M-ADA"
    assert first["Customer name"] == "Ada Lovelace"
    assert first["Email"] == "ada@example.com"
    assert first["Kind"] == "Grant"
    assert first["Reason"] == "Welcome bonus"
    assert first["Amount"] == "50.00"
    assert first["Balance after"] == "50.00"
    assert first["Order"] == ""
    assert first["Staff"] == "'=cmd|calc"
    assert first["Source"] == "Staff"
    redeem = by_id[entries[2].pk]
    assert (redeem["Kind"], redeem["Amount"], redeem["Balance after"]) == ("Redeem", "-12.34", "37.66")
    assert redeem["Order"] == "'+ORD-1"
    assert (redeem["Staff"], redeem["Source"]) == ("", "API")


def test_export_escapes_text_cells_that_look_like_formulas_but_not_numbers():
    # given
    _staff, _customers, entries = seed_history()
    # when
    rows = read_csv(export_bytes(selectors.history_entries())[0])
    by_id = {int(r[-1]): dict(zip(LABELS, r, strict=True)) for r in rows[1:]}
    # then
    assert by_id[entries[0].pk]["Comment"] == "'=SUM(A1)"
    evil_grant = by_id[entries[1].pk]
    assert evil_grant["Customer name"] == "'@evil"
    assert evil_grant["Member ID"] == "'-1+2"
    assert evil_grant["Reason"] == 'Review, "great"'  # quoted by the csv rules, not escaped
    assert evil_grant["Comment"] == "line one\nline two"  # CRLF normalised, kept in one cell
    assert by_id[entries[2].pk]["Comment"] == "'\tTAB"
    deduct = by_id[entries[3].pk]
    assert (deduct["Reason"], deduct["Comment"]) == ("'-fix", "'@ mention")
    assert deduct["Amount"] == "-0.05"  # a number we wrote: never escaped
    for row in rows[1:]:
        for label, cell in zip(LABELS, row, strict=True):
            if label not in ("Amount", "Balance after", "Entry ID", "Date"):
                assert not cell.startswith(exports.FORMULA_CHARS), (label, cell)


def test_export_dates_are_iso_8601_with_the_offset_of_the_store_time_zone(settings):
    # given
    settings.TIME_ZONE = "Asia/Seoul"
    moment = dt.datetime(2026, 12, 2, 23, 30, 15, 123456, tzinfo=dt.UTC)
    customer = CustomerFactory()
    with clock.posting_at(moment):
        services.grant(customer=customer, amount=100, reason="late")
    # when
    with timezone.override("Asia/Seoul"):
        rows = read_csv(export_bytes(selectors.history_entries(), ["date"])[0])
    # then
    assert rows == [["Date"], ["2026-12-03T08:30:15+09:00"]]


def test_export_amounts_have_no_decimals_for_krw(settings):
    # given
    settings.STORE_CURRENCY = "KRW"
    customer = CustomerFactory()
    services.grant(customer=customer, amount=15000, reason="won")
    services.debit(customer=customer, amount=2500, kind="deduct", reason="fix")
    # when
    rows = read_csv(export_bytes(selectors.history_entries(), ["amount", "balance_after"])[0])
    # then
    assert rows == [["Amount", "Balance after"], ["-2500", "12500"], ["15000", "15000"]]


@pytest.mark.parametrize("bom", [True, False])
def test_export_starts_with_a_bom_only_when_excel_is_chosen(bom):
    # given
    seed_history()
    # when
    content, _ = export_bytes(selectors.history_entries(), ["member_id", "amount"], bom=bom)
    # then
    assert content.startswith(b"\xef\xbb\xbf") is bom
    text = content.decode("utf-8-sig")
    assert text.startswith("Member ID,Amount\n")


def test_export_chosen_columns_come_in_the_tables_order_whatever_the_order_chosen():
    # given
    seed_history()
    # when
    rows = read_csv(export_bytes(selectors.history_entries(), ["amount", "date", "kind"])[0])
    # then
    assert rows[0] == ["Date", "Kind", "Amount"]
    assert len(rows) == 5


def test_export_of_a_large_history_is_read_in_chunks_with_progress(monkeypatch, django_assert_max_num_queries):
    # given
    monkeypatch.setattr(exports, "CHUNK", 3)
    customer = CustomerFactory()
    for i in range(10):
        services.grant(customer=customer, amount=100 + i, reason="r")
    seen = []
    # when
    out = io.BytesIO()
    with django_assert_max_num_queries(5):  # 4 chunk queries: 3 + 3 + 3 + 1
        count = exports.write_rows_python(selectors.history_entries(), exports.columns_for(["amount"]), out,
                                          fmt=exports.CsvFormat.current(), on_progress=seen.append)
    # then
    assert count == 10
    assert out.getvalue().decode().split() == [f"{(109 - i) / 100:.2f}" for i in range(10)]
    assert seen == [3, 6, 9]


@pytest.mark.parametrize("keys, message", [
    (["amount", "bogus"], "Unknown column: bogus."),
    ([], "Choose at least one column."),
    (["x" * 10_000], "Unknown column: " + "x" * 50 + "."),
])
def test_columns_for_unknown_or_no_columns_raises_a_clear_error(keys, message):
    # when / then
    with pytest.raises(exports.ExportError) as excinfo:
        exports.columns_for(keys)
    assert str(excinfo.value) == message


def test_the_direct_download_through_the_popup_is_the_csv_read_back_with_the_csv_module(client, staff):
    # given
    _staff, _customers, entries = seed_history()
    user = staff("Ops")
    client.force_login(user)
    # when
    response = client.post(reverse("ledger:export_csv"), {
        "scope": "search", "search": "period=7d", "columns": ["date", "member_id", "customer_name", "amount",
                                                             "comment"], "excel": "on"})
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (f'attachment; filename="credits-history-'
                                               f'{timezone.localdate().isoformat()}.csv"')
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Date", "Member ID", "Customer name", "Amount", "Comment"]
    assert [r[3] for r in rows[1:]] == ["-0.05", "-12.34", "2.50", "50.00"]
    assert rows[4][2] == "Ada Lovelace" and rows[4][4] == "'=SUM(A1)"
    assert rows[3][2] == "'@evil"
    event = AuditEvent.objects.get(action="ledger.exported")
    assert event.actor == user
    assert event.after["rows"] == 4
    assert event.after["search"] == "period=7d"
    assert event.after["mode"] == "download"


# --------------------------------------------------------------------------- PostgreSQL COPY


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("currency, tz_name", [("USD", "UTC"), ("KRW", "Asia/Seoul"),
                                               ("USD", "America/St_Johns")])
def test_copy_writer_and_python_writer_write_the_same_bytes(settings, currency, tz_name):
    # given: the hostile history plus a null-heavy row and a filtered search
    settings.STORE_CURRENCY = currency
    seed_history()
    plain = CustomerFactory(member_id="P1", name="Ünïcödé 名前", email="")
    services.grant(customer=plain, amount=1, reason="x")
    searches = ["period=30d", "period=30d&kind=grant", "period=30d&direction=deducted&customer=evil",
                "period=30d&amount_min=1&amount_max=20"]
    # when / then
    with timezone.override(tz_name):
        for search in searches:
            qs = exports.entries_for(search)
            for bom in (False, True):
                by_python, n_python = export_bytes(qs, bom=bom, use_copy=False)
                by_copy, n_copy = export_bytes(qs, bom=bom, use_copy=True)
                assert n_python == n_copy == qs.count(), search
                assert by_copy == by_python, search
    assert LedgerEntry.objects.count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_copy_writer_matches_the_python_writer_on_a_bulk_loaded_history_and_reports_progress():
    # given: a few thousand realistic entries (customers, orders, kinds, sources) from the bench loader
    from ledger.bulk_load import bulk_load

    bulk_load(customers=60, entries=3000, seed=7)
    qs = selectors.history_entries()
    seen = []
    # when
    by_copy = io.BytesIO()
    count = exports.write_csv(qs, exports.columns_for(ALL_COLUMNS), by_copy, bom=True, use_copy=True,
                              on_progress=seen.append)
    by_python, n_python = export_bytes(qs, bom=True, use_copy=False)
    # then
    assert count == n_python == LedgerEntry.objects.count()
    assert by_copy.getvalue() == by_python
    assert seen == [1000 * k for k in range(1, count // 1000 + 1)]
