"""The credits-history search form. It narrows `selectors.history_entries()` and never
starts from `LedgerEntry.objects` (the page, the summary and the CSV share one selector)."""

from __future__ import annotations

import datetime as dt
from functools import cached_property

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from crm.models import Order
from crm.selectors import customer_ids_for_search, customer_lookup

from . import clock, selectors
from .forms import parse_amount_input
from .models import EntryKind, EntrySource

PERIOD_CHOICES = [
    ("", "Any time"),
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("month", "This month"),
    ("custom", "Custom range"),
]
DIRECTION_CHOICES = [("", "All"), ("rewarded", "Rewarded"), ("deducted", "Deducted")]
MAX_TEXT = 200


class AmountField(forms.CharField):
    """A money amount in major units ('12.50'), cleaned to minor units."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal"}))
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        return parse_amount_input(value)


class AmountFilter(django_filters.Filter):
    field_class = AmountField


def period_bounds(period: str, date_from: dt.date | None, date_to: dt.date | None, now=None):
    """[start, end) of a period in the current time zone; None for an open side."""
    now = timezone.localtime(now or clock.now())
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tz = timezone.get_current_timezone()

    def day_start(d):
        return timezone.make_aware(dt.datetime.combine(d, dt.time.min), tz)

    if period == "today":
        return midnight, midnight + dt.timedelta(days=1)
    if period == "7d":
        return midnight - dt.timedelta(days=6), midnight + dt.timedelta(days=1)
    if period == "30d":
        return midnight - dt.timedelta(days=29), midnight + dt.timedelta(days=1)
    if period == "month":
        return midnight.replace(day=1), midnight + dt.timedelta(days=1)
    if period == "custom" or (not period and (date_from or date_to)):
        start = day_start(date_from) if date_from else None
        end = day_start(date_to + dt.timedelta(days=1)) if date_to else None
        return start, end
    return None, None


CUSTOMER_IDS_CAP = 1000  # more matches than this stay a subquery


class HistoryFilterForm(forms.Form):
    def __init__(self, *args, **kwargs):
        # Own ids: the pop-ups opened over this page have fields named customer, reason...
        kwargs.setdefault("auto_id", "search_%s")
        super().__init__(*args, **kwargs)

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
        for name in ("date_from", "date_to"):
            d = data.get(name)
            if d and not (dt.date(2000, 1, 1) <= d <= dt.date(2100, 1, 1)):
                self.add_error(name, "Pick a date between 2000 and 2100.")
        return data


def _staff_queryset():
    return get_user_model().objects.filter(is_staff=True).order_by("username")


class HistoryFilter(django_filters.FilterSet):
    period = django_filters.ChoiceFilter(choices=PERIOD_CHOICES[1:], empty_label="Any time",
                                         method="filter_period", label="Period")
    date_from = django_filters.DateFilter(method="filter_noop", label="From",
                                          widget=forms.DateInput(attrs={"type": "date"}))
    date_to = django_filters.DateFilter(method="filter_noop", label="To",
                                        widget=forms.DateInput(attrs={"type": "date"}))
    customer = django_filters.CharFilter(method="filter_customer", label="Customer", max_length=MAX_TEXT,
                                         widget=forms.TextInput(attrs={
                                             "type": "search",
                                             "placeholder": "Member ID, name, email or card number"}))
    direction = django_filters.ChoiceFilter(choices=DIRECTION_CHOICES[1:], empty_label="All",
                                            method="filter_direction", label="Direction")
    kind = django_filters.ChoiceFilter(choices=EntryKind.choices, empty_label="Any kind", label="Kind")
    reason = django_filters.CharFilter(field_name="reason", lookup_expr="icontains", label="Reason",
                                       max_length=MAX_TEXT)
    source = django_filters.ChoiceFilter(choices=EntrySource.choices, empty_label="Any source", label="Source")
    amount_min = AmountFilter(method="filter_noop", label="Amount from")
    amount_max = AmountFilter(method="filter_noop", label="Amount to")
    order = django_filters.CharFilter(label="Order", max_length=64, method="filter_order")
    staff = django_filters.ModelChoiceFilter(field_name="actor", queryset=_staff_queryset(),
                                             empty_label="Any staff member", label="Staff")

    class Meta:
        form = HistoryFilterForm

    def __init__(self, data=None, queryset=None, **kwargs):
        if queryset is None:
            queryset = selectors.history_entries()
        super().__init__(data, queryset=queryset, **kwargs)
        self.filters["staff"].queryset = _staff_queryset()

    # -- methods --------------------------------------------------------------
    def filter_noop(self, queryset, name, value):
        return queryset  # applied together in filter_queryset

    def filter_period(self, queryset, name, value):
        return queryset

    def filter_direction(self, queryset, name, value):
        if value == "rewarded":
            return queryset.filter(amount__gt=0)
        if value == "deducted":
            return queryset.filter(amount__lt=0)
        return queryset

    def filter_order(self, queryset, name, value):
        # The order's id first (external_id is unique): the entries are then found through
        # the order_id index, however long the period. A join would walk the period newest
        # first looking for them, which is slow when there are few or none.
        return queryset.filter(order_id__in=list(Order.objects.filter(external_id=value).values_list("pk", flat=True)))

    def filter_customer(self, queryset, name, value):
        ids = self.customer_ids
        return queryset if ids is None else queryset.filter(account_id__in=ids)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        start, end = self.period_range
        if start:
            queryset = queryset.filter(created_at__gte=start)
        if end:
            queryset = queryset.filter(created_at__lt=end)
        lo, hi = data.get("amount_min"), data.get("amount_max")
        if lo is not None or hi is not None:
            # on the size of the movement, whichever its direction
            pos, neg = Q(amount__gt=0), Q(amount__lt=0)
            if lo is not None:
                pos &= Q(amount__gte=lo)
                neg &= Q(amount__lte=-lo)
            if hi is not None:
                pos &= Q(amount__lte=hi)
                neg &= Q(amount__gte=-hi)
            queryset = queryset.filter(pos | neg)
        return queryset

    # -- facts about the search ----------------------------------------------
    @property
    def period_range(self):
        data = self.form.cleaned_data if self.is_bound and self.form.is_valid() else {}
        return period_bounds(data.get("period") or "", data.get("date_from"), data.get("date_to"))

    @property
    def is_period_search(self) -> bool:
        """Only a period (and perhaps a customer) is set: opening/closing balances apply."""
        if not (self.is_bound and self.form.is_valid()):
            return False
        data = self.form.cleaned_data
        start, end = self.period_range
        if start is None and end is None:
            return False
        others = [k for k, v in data.items()
                  if k not in ("period", "date_from", "date_to", "customer") and v not in (None, "")]
        return not others

    @property
    def customer_text(self) -> str:
        if self.is_bound and self.form.is_valid():
            return (self.form.cleaned_data.get("customer") or "").strip()
        return ""

    @cached_property
    def customer_ids(self):
        """The customers the search means, or None when it names none: a list of ids
        (looked up once, so the page's queries filter on an indexed `account_id IN (...)`
        the planner can see), or a subquery when the text matches very many customers."""
        text = self.customer_text
        if not text:
            return None
        ids = customer_ids_for_search(text, cap=CUSTOMER_IDS_CAP)
        return ids if ids is not None else customer_lookup(text)

    def error_messages(self) -> list[str]:
        """The search's errors as 'Label: message' lines, for the results area."""
        lines = []
        for name, errors in self.form.errors.items():
            label = self.form.fields[name].label if name in self.form.fields else ""
            lines.extend(f"{label}: {error}" if label else str(error) for error in errors)
        return lines


def with_default_period(params):
    """`params` (a mutable QueryDict) with the history's default search when it names no
    filter at all: the last 30 days, not all of history. The page, its summary and the
    CSV export all start from it."""
    if not any(key in params for key in HistoryFilter.base_filters):
        params["period"] = "30d"
    return params

