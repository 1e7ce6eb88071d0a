import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from credits_admin import money

from .models import RefundRequest

CELLS = "refunds/request_list.html#{}"


class RefundRequestTable(tables.Table):
    requested_at = tables.DateTimeColumn(verbose_name="Requested at", format="Y-m-d H:i", orderable=True)
    requested_by = tables.TemplateColumn(template_name=CELLS.format("requested-by-cell"),
                                         verbose_name="Requested by", orderable=False, accessor="customer")
    amount = tables.Column(verbose_name="Amount", orderable=True,
                           attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    available = tables.Column(verbose_name="Available credits now", orderable=False,
                              attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    payout = tables.Column(verbose_name="Payout details", orderable=False, accessor="account_last4")
    status = tables.TemplateColumn(template_name=CELLS.format("status-cell"), verbose_name="Status",
                                   orderable=False)
    actions = tables.TemplateColumn(template_name=CELLS.format("actions-cell"), verbose_name="Proceed",
                                    orderable=False, empty_values=(), attrs={"td": {"class": "actions-cell"}})

    class Meta:
        model = RefundRequest
        fields = ()
        sequence = ("requested_at", "requested_by", "amount", "available", "payout", "status", "actions")
        order_by_field = "sort"
        attrs = {"class": "table refunds-table", "id": "refunds-table"}
        row_attrs = {"id": lambda record: f"refund-request-{record.pk}", "data-status": lambda record: record.status}
        empty_text = "No cash refund requests match this search."

    def render_amount(self, value):
        return money.format_amount(value)

    def render_available(self, value, record):
        css = "negative" if value < record.amount and record.is_open else ""
        short = mark_safe(' <span class="badge short" title="Less than the request">short</span>') if css else ""
        return format_html('<span class="{}">{}</span>{}', css, money.format_amount(value), short)

    def render_payout(self, value, record):
        return format_html('<span title="{}">{} <span class="mono">••••{}</span></span>',
                           record.account_holder, record.bank_name, value)
