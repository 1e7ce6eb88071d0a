"""The Email log's search form; it narrows `selectors.email_log()`."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.utils import timezone

from .kinds import EmailKind
from .models import OutboxMessage


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_current_timezone())


class EmailLogFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date must be on or after the start date.")
        for name in ("date_from", "date_to"):
            day = data.get(name)
            if day and not (dt.date(2000, 1, 1) <= day <= dt.date(2100, 1, 1)):
                self.add_error(name, "Pick a date between 2000 and 2100.")
        return data


class EmailLogFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=EmailKind.choices, empty_label="All emails", label="Email")
    status = django_filters.ChoiceFilter(choices=OutboxMessage.Status.choices, empty_label="Any status",
                                         label="Status")
    recipient = django_filters.CharFilter(
        field_name="to", lookup_expr="icontains", label="Recipient", max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name@example.com"}))
    date_from = django_filters.DateFilter(method="filter_date_from", label="From",
                                          widget=forms.DateInput(attrs={"type": "date"}))
    date_to = django_filters.DateFilter(method="filter_date_to", label="To",
                                        widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = OutboxMessage
        fields = []
        form = EmailLogFilterForm

    def filter_date_from(self, queryset, name, value):
        return queryset.filter(created_at__gte=_day_start(value))

    def filter_date_to(self, queryset, name, value):
        return queryset.filter(created_at__lt=_day_start(value + dt.timedelta(days=1)))
