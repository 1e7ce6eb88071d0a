import django_tables2 as tables
from django.core.paginator import EmptyPage
from django.urls import reverse
from django.utils.html import format_html
from django_tables2.paginators import LazyPaginator

from credits_admin import money

from .models import Order

NUM = {"th": {"class": "num"}, "td": {"class": "num"}}


class OrderPaginator(LazyPaginator):
    """No COUNT(*); `?page=` and `?per_page=` from the URL are kept within sane bounds (a
    page number of 400 digits must not reach the database as an OFFSET)."""

    MAX_PAGE = 10_000
    MAX_PER_PAGE = 100

    def __init__(self, object_list, per_page, **kwargs):
        super().__init__(object_list, min(max(int(per_page or 1), 1), self.MAX_PER_PAGE), **kwargs)

    def validate_number(self, number):
        number = super().validate_number(number)
        if number > self.MAX_PAGE:
            raise EmptyPage("That page number is too large.")
        return number


class OrderTable(tables.Table):
    external_id = tables.Column(verbose_name="Order", orderable=False)
    customer = tables.Column(verbose_name="Customer", accessor="customer__member_id", orderable=False)
    placed_at = tables.DateTimeColumn(verbose_name="Placed", format="Y-m-d H:i", order_by=("placed_at", "id"))
    paid_at = tables.DateTimeColumn(verbose_name="Paid on", format="Y-m-d H:i", order_by=("paid_at", "id"),
                                    default="—")
    status = tables.Column(verbose_name="Status", orderable=False)
    items_total = tables.Column(verbose_name="Items total", attrs=NUM, order_by=("items_total", "id"))
    paid_amount = tables.Column(verbose_name="Paid", attrs=NUM, order_by=("paid_amount", "id"))
    refunded_amount = tables.Column(verbose_name="Refunded", attrs=NUM, order_by=("refunded_amount", "id"))

    class Meta:
        model = Order
        fields = ()
        sequence = ("external_id", "customer", "placed_at", "paid_at", "status", "items_total", "paid_amount",
                    "refunded_amount")
        order_by_field = "sort"
        attrs = {"class": "table order-table", "id": "order-table"}
        empty_text = "No order matches this search."

    def render_external_id(self, value, record):
        # a real page: not boosted into #results like the sort and page links
        return format_html('<a href="{}" class="order-link" hx-boost="false">{}</a>',
                           reverse("crm:order_detail", args=[record.pk]), value)

    def render_customer(self, value, record):
        url = reverse("crm:customer_detail", args=[record.customer_id])
        return format_html('<a href="{}" hx-get="{}" hx-target="#modal" hx-swap="innerHTML" '
                           'class="customer-link" aria-haspopup="dialog">{}</a>'
                           '<span class="muted customer-name">{}</span>',
                           url, url, value, record.customer.name)

    def render_status(self, value, record):
        return format_html('<span class="badge order-status-{}">{}</span>', record.status, value)

    def render_items_total(self, value, record):
        return money.format_amount(value, currency=record.currency)

    def render_paid_amount(self, value, record):
        return money.format_amount(value, currency=record.currency)

    def render_refunded_amount(self, value, record):
        if not value:
            return "—"
        return format_html('<span class="negative">{}</span>', money.format_amount(value, currency=record.currency))
