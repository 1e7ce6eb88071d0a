import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from credits_admin import money
from credits_admin.templatetags.money import mask_card

from .models import Customer
from .orders_tables import OrderPaginator


class CustomerPaginator(OrderPaginator):
    """No COUNT(*), and `?page=` / `?per_page=` from the URL kept within the orders list's
    bounds: a page number of 25 digits must not reach PostgreSQL as an OFFSET (bigint out
    of range, a 500), nor `per_page=0` divide by zero, nor `per_page=10000000` load every
    customer at once."""


class CustomerTable(tables.Table):
    member_id = tables.Column(verbose_name="Member ID")
    name = tables.Column()
    email = tables.Column()
    card_number = tables.Column(verbose_name="Card", orderable=False)
    balance = tables.Column(verbose_name="Balance", accessor="credit_account__balance", default=0,
                            attrs={"th": {"class": "num"}, "td": {"class": "num"}})
    status = tables.Column()
    registered_at = tables.DateColumn(verbose_name="Registered", format="Y-m-d")

    class Meta:
        model = Customer
        fields = ()
        sequence = ("member_id", "name", "email", "card_number", "balance", "status", "registered_at")
        order_by_field = "sort"
        attrs = {"class": "table", "id": "customer-table"}
        empty_text = "No customer matches this search."

    def render_member_id(self, value, record):
        url = reverse("crm:customer_detail", args=[record.pk])
        return format_html('<a href="{}" hx-get="{}" hx-target="#modal" hx-swap="innerHTML" '
                           'class="customer-link" aria-haspopup="dialog">{}</a>', url, url, value)

    def render_card_number(self, value):
        return mask_card(value)

    def render_balance(self, value):
        return money.format_amount(value)

    def render_status(self, value, record):
        return format_html('<span class="badge status-{}">{}</span>', record.status, value)
