"""The history table's body is rendered straight from the records (ledger.tables.
HistoryTable.body_rows) for speed; it must give exactly the HTML django-tables2's own
cell path gives, for every kind of row."""

import pytest
from django.utils.html import conditional_escape

from ledger import services
from ledger.models import LedgerEntry
from ledger.tables import HistoryTable
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def test_body_rows_equal_django_tables2_cells_for_every_kind_of_row():
    # given: names and comments with HTML, a debit, an order, staff, no comment, a long one
    staff = StaffUserFactory(username="<b>eve</b>", role="Support agent")
    ada = CustomerFactory(member_id="M<1>", name="Ada & <Lovelace>")
    order = OrderFactory(customer=ada, external_id="O&1")
    services.grant(customer=ada, amount=5000, reason="Welcome <bonus>", comment="")
    services.grant(customer=ada, amount=1, reason="Goodwill", comment="x" * 80, actor=staff, order=order)
    services.debit(customer=ada, amount=1234, kind="redeem", reason="Checkout", order=order, source="api",
                   comment='"quoted" <i>c</i>')
    services.debit(customer=ada, amount=5, kind="deduct", reason="Fix", actor=staff, comment="short")
    records = list(LedgerEntry.objects.select_related("account__customer", "actor", "order").order_by("-id"))
    table = HistoryTable(records)
    # when
    fast = table.body_rows()
    # what {{ cell }} in the template prints: escaped unless already safe
    slow = [[(column.attrs["td"].as_html(), conditional_escape(cell)) for column, cell in row.items()]
            for row in table.rows]
    # then
    assert len(fast) == len(slow) == 4
    fast = [[(str(td), conditional_escape(cell)) for td, cell in row] for row in fast]
    for fast_row, slow_row in zip(fast, slow, strict=True):
        for fast_cell, slow_cell in zip(fast_row, slow_row, strict=True):
            assert fast_cell == slow_cell
