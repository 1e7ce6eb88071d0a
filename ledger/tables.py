import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from credits_admin import money

from .models import LedgerEntry


class HistoryTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="Date", format="Y-m-d H:i", orderable=True,
                                       initial_sort_descending=True)
    member_id = tables.Column(verbose_name="Customer ID", accessor="account__customer__member_id",
                              orderable=False)
    name = tables.Column(verbose_name="Name", accessor="account__customer__name", orderable=False)
    kind = tables.Column(verbose_name="Kind", orderable=False)
    reason = tables.Column(verbose_name="Reason", orderable=False)
    amount = tables.Column(verbose_name="Amount", orderable=True, initial_sort_descending=True,
                           attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    balance_after = tables.Column(verbose_name="Balance after", orderable=False,
                                  attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    order = tables.Column(verbose_name="Order", accessor="order__external_id", orderable=False, default="—")
    actor = tables.Column(verbose_name="Staff", accessor="actor__username", orderable=False, default="—")
    comment = tables.Column(verbose_name="Comment", orderable=False, default="",
                            attrs={"td": {"class": "comment-cell"}})

    class Meta:
        model = LedgerEntry
        fields = ()
        sequence = ("created_at", "member_id", "name", "kind", "reason", "amount", "balance_after", "order",
                    "actor", "comment")
        order_by_field = "sort"
        attrs = {"class": "table history-table", "id": "history-table"}
        empty_text = "No credits history matches this search."

    def render_member_id(self, value, record):
        url = reverse("crm:customer_detail", args=[record.account_id])
        return format_html('<a href="{}" hx-get="{}" hx-target="#modal" hx-swap="innerHTML" '
                           'class="customer-link" aria-haspopup="dialog">{}</a>', url, url, value)

    def render_kind(self, value, record):
        return format_html('<span class="badge kind-{}">{}</span>', record.kind, record.get_kind_display())

    def render_amount(self, value):
        css = "positive" if value > 0 else "negative"
        return format_html('<span class="{}">{}</span>', css, money.format_amount(value, signed=True))

    def render_balance_after(self, value):
        return money.format_amount(value)

    def render_comment(self, value):
        text = str(value)
        short = text if len(text) <= 60 else text[:57] + "…"
        return format_html('<span title="{}">{}</span>', text, short)
