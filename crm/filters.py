import django_filters
from django import forms

from . import selectors


class CustomerSearchForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "search_%s")  # unique beside the pop-ups opened over the list
        super().__init__(*args, **kwargs)


class CustomerFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", label="Search", max_length=200,
                                  widget=forms.TextInput(attrs={
                                      "type": "search", "placeholder": "Member ID, name, email or card number",
                                      "autofocus": True}))
    status = django_filters.ChoiceFilter(field_name="status", label="Status", empty_label="Any status",
                                         choices=[])

    class Meta:
        form = CustomerSearchForm

    def __init__(self, data=None, queryset=None, **kwargs):
        from .models import Customer

        super().__init__(data, queryset=queryset if queryset is not None else selectors.customer_search(),
                         **kwargs)
        self.filters["status"].extra["choices"] = Customer.Status.choices

    def filter_q(self, queryset, name, value):
        return queryset.filter(selectors.customer_match(value)) if value.strip() else queryset
