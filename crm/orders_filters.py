"""The orders search form. It narrows `orders_selectors.order_search()`."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.utils import timezone

from . import orders_selectors
from .models import Order

MAX_TEXT = 200
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 1, 1)


class OrderFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        for name in ("placed_from", "placed_to"):
            day = data.get(name)
            if day and not (EARLIEST <= day <= LATEST):
                self.add_error(name, "Pick a date between 2000 and 2100.")
                data[name] = None
        start, end = data.get("placed_from"), data.get("placed_to")
        if start and end and start > end:
            self.add_error("placed_to", "The end date must be on or after the start date.")
        return data


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_current_timezone())


class OrderFilter(django_filters.FilterSet):
    order = django_filters.CharFilter(method="filter_order", label="Order ID", max_length=64,
                                      widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. 10045",
                                                                    "autocomplete": "off"}))
    customer = django_filters.CharFilter(method="filter_customer", label="Customer", max_length=MAX_TEXT,
                                         widget=forms.TextInput(attrs={
                                             "type": "search", "autocomplete": "off",
                                             "placeholder": "Member ID, name, email"}))
    status = django_filters.ChoiceFilter(field_name="status", label="Status", empty_label="Any status",
                                         choices=Order.Status.choices)
    placed_from = django_filters.DateFilter(method="filter_noop", label="Placed from",
                                            widget=forms.DateInput(attrs={"type": "date"}))
    placed_to = django_filters.DateFilter(method="filter_noop", label="Placed to",
                                          widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        form = OrderFilterForm

    def __init__(self, data=None, queryset=None, **kwargs):
        if queryset is None:
            queryset = orders_selectors.order_search()
        super().__init__(data, queryset=queryset, **kwargs)

    def filter_noop(self, queryset, name, value):
        return queryset  # the date range is applied as a whole in filter_queryset

    def filter_order(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(orders_selectors.order_id_match(value)) if value else queryset

    def filter_customer(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(customer_id__in=orders_selectors.customers_matching(value))

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if data.get("placed_from"):
            queryset = queryset.filter(placed_at__gte=_day_start(data["placed_from"]))
        if data.get("placed_to"):
            queryset = queryset.filter(placed_at__lt=_day_start(data["placed_to"] + dt.timedelta(days=1)))
        return queryset
