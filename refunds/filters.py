"""The search form of the cash-refund requests pop-up. It narrows selectors.request_list()."""

from __future__ import annotations

import django_filters
from django import forms

from ledger.filters import PERIOD_CHOICES, AmountFilter, period_bounds

from .models import RefundRequest
from .selectors import customer_search_q

STATUS_CHOICES = [("open", "Open (requested or pending)"), *RefundRequest.Status.choices]


class RequestFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date must be on or after the start date.")
        if data.get("period") == "custom" and not (date_from or date_to):
            self.add_error("date_from", "Pick a start or end date for a custom range.")
        lo, hi = data.get("amount_min"), data.get("amount_max")
        if lo is not None and hi is not None and lo > hi:
            self.add_error("amount_max", "The maximum must be at least the minimum.")
        return data


class RefundRequestFilter(django_filters.FilterSet):
    period = django_filters.ChoiceFilter(choices=PERIOD_CHOICES[1:], empty_label="Any time",
                                         method="filter_period", label="Requested")
    date_from = django_filters.DateFilter(method="filter_noop", label="From",
                                          widget=forms.DateInput(attrs={"type": "date"}))
    date_to = django_filters.DateFilter(method="filter_noop", label="To",
                                        widget=forms.DateInput(attrs={"type": "date"}))
    status = django_filters.ChoiceFilter(choices=STATUS_CHOICES, empty_label="Any status",
                                         method="filter_status", label="Status")
    customer = django_filters.CharFilter(method="filter_customer", label="Customer", max_length=200,
                                         widget=forms.TextInput(attrs={
                                             "type": "search", "placeholder": "Member ID, name or email"}))
    amount_min = AmountFilter(field_name="amount", lookup_expr="gte", label="Amount from")
    amount_max = AmountFilter(field_name="amount", lookup_expr="lte", label="Amount to")

    class Meta:
        form = RequestFilterForm

    def filter_noop(self, queryset, name, value):
        return queryset  # date_from/date_to are read by filter_period

    def filter_period(self, queryset, name, value):
        return queryset  # applied in filter_queryset, which sees the dates too

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        start, end = period_bounds(data.get("period") or "", data.get("date_from"), data.get("date_to"))
        if start is not None:
            queryset = queryset.filter(requested_at__gte=start)
        if end is not None:
            queryset = queryset.filter(requested_at__lt=end)
        return queryset

    def filter_status(self, queryset, name, value):
        if value == "open":
            return queryset.filter(status__in=RefundRequest.OPEN_STATUSES)
        return queryset.filter(status=value)

    def filter_customer(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(customer__in=_customers(customer_search_q(value)))


def _customers(q):
    from crm.models import Customer

    return Customer.objects.filter(q).values("pk")
