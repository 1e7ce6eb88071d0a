"""The credits-history search: every filter alone and in combinations, the default period,
and bad values (a clear message on a 200, never a 500). Time is frozen with time-machine
and every entry is posted at a chosen moment through the ledger's clock."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils.html import escape

from credits_admin.paging import encode_cursor
from ledger import clock, services
from ledger.filters import HistoryFilter, period_bounds
from ledger.models import LedgerEntry
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 15, 10, 0, tzinfo=UTC)  # a Tuesday, mid-month
US = dt.timedelta(microseconds=1)
HISTORY = reverse("ledger:history")


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def grant(customer, amount, *, at=NOW, **kwargs):
    kwargs.setdefault("reason", "Welcome bonus")
    with clock.posting_at(at):
        return services.grant(customer=customer, amount=amount, **kwargs)


def debit(customer, amount, *, at=NOW, kind="redeem", **kwargs):
    kwargs.setdefault("reason", "Checkout")
    with clock.posting_at(at):
        return services.debit(customer=customer, amount=amount, kind=kind, **kwargs)


def found(**params) -> set[int]:
    """Ids of the entries the search `params` selects (the search must be valid)."""
    filterset = HistoryFilter({k: str(v) for k, v in params.items()})
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs.values_list("id", flat=True))


def ids(*entries) -> set[int]:
    return {entry.pk for entry in entries}


# --------------------------------------------------------------------------- periods

MOMENTS = {  # label -> when it was posted (UTC, the store's time zone in these tests)
    "d30_before": dt.datetime(2029, 12, 17, tzinfo=UTC) - US,
    "d30_start": dt.datetime(2029, 12, 17, tzinfo=UTC),
    "month_before": dt.datetime(2030, 1, 1, tzinfo=UTC) - US,
    "month_start": dt.datetime(2030, 1, 1, tzinfo=UTC),
    "d7_before": dt.datetime(2030, 1, 9, tzinfo=UTC) - US,
    "d7_start": dt.datetime(2030, 1, 9, tzinfo=UTC),
    "yesterday_end": dt.datetime(2030, 1, 15, tzinfo=UTC) - US,
    "today_start": dt.datetime(2030, 1, 15, tzinfo=UTC),
    "now": NOW,
    "today_end": dt.datetime(2030, 1, 16, tzinfo=UTC) - US,
    "tomorrow": dt.datetime(2030, 1, 16, tzinfo=UTC),
}
TODAY = {"today_start", "now", "today_end"}
LAST_7 = TODAY | {"yesterday_end", "d7_start"}
THIS_MONTH = LAST_7 | {"d7_before", "month_start"}
LAST_30 = THIS_MONTH | {"month_before", "d30_start"}


@pytest.fixture
def dated_entries():
    customer = CustomerFactory()
    return {label: grant(customer, 100, at=moment) for label, moment in MOMENTS.items()}  # in time order


@pytest.mark.parametrize(("period", "expected"), [
    ("today", TODAY), ("7d", LAST_7), ("30d", LAST_30), ("month", THIS_MONTH), ("", set(MOMENTS)),
])
def test_period_preset_when_chosen_selects_whole_local_days_up_to_today(dated_entries, period, expected):
    # when
    selected = found(period=period)
    # then
    assert selected == {dated_entries[label].pk for label in expected}


def test_period_this_month_on_the_first_day_covers_that_day_only(dated_entries):
    # given
    with time_machine.travel(dt.datetime(2030, 1, 1, 8, 0, tzinfo=UTC), tick=False):
        # when
        selected = found(period="month")
    # then
    assert selected == {dated_entries["month_start"].pk}


def test_period_today_when_the_store_is_in_seoul_starts_at_seoul_midnight(settings):
    # given: 10:00 UTC is 19:00 in Seoul; Seoul's day began at 15:00 UTC the day before
    settings.TIME_ZONE = "Asia/Seoul"
    customer = CustomerFactory()
    seoul_midnight = dt.datetime(2030, 1, 14, 15, 0, tzinfo=UTC)
    before = grant(customer, 100, at=seoul_midnight - US)
    first = grant(customer, 100, at=seoul_midnight)
    last = grant(customer, 100, at=seoul_midnight + dt.timedelta(days=1) - US)
    grant(customer, 100, at=seoul_midnight + dt.timedelta(days=1))
    # when
    selected = found(period="today")
    # then
    assert selected == ids(first, last)
    assert before.pk not in selected


def test_period_bounds_are_half_open_local_days():
    # when
    bounds = {p: period_bounds(p, None, None) for p in ("today", "7d", "30d", "month")}
    # then
    end = dt.datetime(2030, 1, 16, tzinfo=UTC)
    assert bounds == {
        "today": (dt.datetime(2030, 1, 15, tzinfo=UTC), end),
        "7d": (dt.datetime(2030, 1, 9, tzinfo=UTC), end),
        "30d": (dt.datetime(2029, 12, 17, tzinfo=UTC), end),
        "month": (dt.datetime(2030, 1, 1, tzinfo=UTC), end),
    }


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"period": "custom", "date_from": "2030-01-09", "date_to": "2030-01-14"},
                 {"d7_start", "yesterday_end"}, id="both-days-inclusive"),
    pytest.param({"period": "custom", "date_from": "2030-01-15", "date_to": "2030-01-15"}, TODAY, id="one-day"),
    pytest.param({"period": "custom", "date_from": "2030-01-15"}, TODAY | {"tomorrow"}, id="from-only"),
    pytest.param({"period": "custom", "date_to": "2029-12-31"}, {"d30_before", "d30_start", "month_before"},
                 id="to-only"),
    pytest.param({"date_from": "2030-01-01", "date_to": "2030-01-08"}, {"month_start", "d7_before"},
                 id="dates-without-period-mean-custom"),
    pytest.param({"period": "today", "date_from": "2029-01-01"}, TODAY, id="preset-wins-over-dates"),
])
def test_custom_range_when_given_includes_both_end_days(dated_entries, params, expected):
    # when
    selected = found(**params)
    # then
    assert selected == {dated_entries[label].pk for label in expected}


# --------------------------------------------------------------------------- customer

@pytest.fixture
def people():
    ada = CustomerFactory(member_id="M1", name="Ada Lovelace", email="ada@example.com")
    ada10 = CustomerFactory(member_id="M10", name="Grace Hopper", email="grace@example.com")
    alan = CustomerFactory(member_id="X7", name="Alan Turing", email="alan@example.org")
    return {c.member_id: (c, grant(c, 100)) for c in (ada, ada10, alan)}


def test_customer_filter_by_exact_member_id_finds_that_customer_only(people):
    # when / then: M1 exists, so the prefix matches (M10) are left out
    assert found(customer="M1") == ids(people["M1"][1])
    assert found(customer="  X7  ") == ids(people["X7"][1])


def test_customer_filter_by_member_id_prefix_finds_every_customer_starting_with_it(people):
    # when / then
    assert found(customer="M") == ids(people["M1"][1], people["M10"][1])


@pytest.mark.parametrize(("text", "who"), [
    ("lovelace", ["M1"]), ("HOPPER", ["M10"]), ("a", ["M1", "M10", "X7"]), ("an tu", ["X7"]),
])
def test_customer_filter_by_part_of_a_name_ignores_case(people, text, who):
    # when / then
    assert found(customer=text) == {people[m][1].pk for m in who}


def test_customer_filter_by_email_ignores_case(people):
    # when / then
    assert found(customer="Grace@Example.COM") == ids(people["M10"][1])


def test_customer_filter_by_card_number_whole_spaced_or_last_digits(people):
    # given
    alan, entry = people["X7"]
    card = alan.card_number
    # when / then
    assert found(customer=card) == ids(entry)
    assert found(customer=f"{card[:4]} {card[4:8]} {card[8:12]} {card[12:]}") == ids(entry)
    assert found(customer=f"{card[:4]}-{card[4:8]}-{card[8:12]}-{card[12:]}") == ids(entry)
    assert entry.pk in found(customer=card[-6:])


def test_customer_filter_matching_nobody_finds_nothing(people):
    # when / then
    assert found(customer="nobody-like-this") == set()


# --------------------------------------------------------------------------- entry fields

@pytest.fixture
def mixed():
    """One customer's entries of several kinds, sources, reasons, sizes, orders and staff."""
    customer = CustomerFactory()
    clerk, boss = StaffUserFactory(role="Support agent"), StaffUserFactory(role="Store admin")
    order = OrderFactory(customer=customer, external_id="ORD-77")
    other_order = OrderFactory(customer=customer, external_id="ORD-770")
    e = {}
    e["welcome"] = grant(customer, 3000, reason="Welcome bonus", source="rule", order=order)
    e["goodwill"] = grant(customer, 1500, reason="Goodwill gesture", actor=clerk, source="staff",
                          comment="sorry")
    e["api_grant"] = grant(customer, 500, reason="Review reward", source="api", order=other_order)
    e["redeem"] = debit(customer, 500, kind="redeem", reason="Checkout", source="api", order=order)
    e["deduct"] = debit(customer, 1500, kind="deduct", reason="Goodwill correction", actor=boss)
    e["refund"] = debit(customer, 1000, kind="cash_refund", reason="Cash refund", actor=clerk)
    with clock.posting_at(NOW):
        e["reversal"] = services.reverse(entry=e["refund"], actor=boss)  # +1000 back
    return {"entries": e, "clerk": clerk, "boss": boss, "customer": customer}


def pick(mixed, *labels) -> set[int]:
    return {mixed["entries"][label].pk for label in labels}


def test_direction_rewarded_or_deducted_splits_by_sign(mixed):
    # when / then
    assert found(direction="rewarded") == pick(mixed, "welcome", "goodwill", "api_grant", "reversal")
    assert found(direction="deducted") == pick(mixed, "redeem", "deduct", "refund")
    assert found(direction="") == pick(mixed, *mixed["entries"])


@pytest.mark.parametrize(("kind", "labels"), [
    ("grant", ["welcome", "goodwill", "api_grant"]), ("redeem", ["redeem"]), ("deduct", ["deduct"]),
    ("cash_refund", ["refund"]), ("reversal", ["reversal"]), ("expire", []),
])
def test_kind_filter_selects_that_kind_only(mixed, kind, labels):
    # when / then
    assert found(kind=kind) == pick(mixed, *labels)


@pytest.mark.parametrize(("source", "labels"), [
    ("rule", ["welcome"]), ("api", ["api_grant", "redeem"]),
    ("staff", ["goodwill", "deduct", "refund", "reversal"]), ("bulk", []),
])
def test_source_filter_selects_that_source_only(mixed, source, labels):
    # when / then
    assert found(source=source) == pick(mixed, *labels)


def test_reason_filter_matches_part_of_the_reason_ignoring_case(mixed):
    # when / then
    assert found(reason="goodwill") == pick(mixed, "goodwill", "deduct")
    assert found(reason="REFUND") == pick(mixed, "refund", "reversal")  # "Reversal of #n (Cash refund)"


@pytest.mark.parametrize(("params", "labels"), [
    pytest.param({"amount_min": "15.00"}, ["welcome", "goodwill", "deduct"], id="min-both-directions"),
    pytest.param({"amount_max": "10"}, ["api_grant", "redeem", "refund", "reversal"], id="max-both-directions"),
    pytest.param({"amount_min": "10.00", "amount_max": "15.00"}, ["goodwill", "deduct", "refund", "reversal"],
                 id="range-inclusive"),
    pytest.param({"amount_min": "15.01"}, ["welcome"], id="just-above"),
    pytest.param({"amount_min": "30", "amount_max": "30"}, ["welcome"], id="exact"),
])
def test_amount_range_applies_to_the_size_of_the_movement(mixed, params, labels):
    # when / then
    assert found(**params) == pick(mixed, *labels)


def test_order_filter_matches_the_whole_external_id(mixed):
    # when / then
    assert found(order="ORD-77") == pick(mixed, "welcome", "redeem")
    assert found(order=" ORD-770 ") == pick(mixed, "api_grant")
    assert found(order="ORD-7") == set()


def test_staff_filter_selects_what_that_staff_member_posted(mixed):
    # when / then
    assert found(staff=mixed["clerk"].pk) == pick(mixed, "goodwill", "refund")
    assert found(staff=mixed["boss"].pk) == pick(mixed, "deduct", "reversal")


@pytest.mark.parametrize(("params", "labels"), [
    pytest.param({"direction": "deducted", "staff": "clerk"}, ["refund"], id="direction+staff"),
    pytest.param({"kind": "grant", "source": "staff"}, ["goodwill"], id="kind+source"),
    pytest.param({"reason": "goodwill", "direction": "rewarded", "amount_min": "15"}, ["goodwill"],
                 id="reason+direction+amount"),
    pytest.param({"order": "ORD-77", "direction": "deducted"}, ["redeem"], id="order+direction"),
    pytest.param({"period": "today", "customer": "me", "kind": "deduct"}, ["deduct"], id="period+customer+kind"),
    pytest.param({"period": "7d", "source": "api", "amount_max": "5"}, ["api_grant", "redeem"],
                 id="period+source+amount"),
    pytest.param({"kind": "grant", "direction": "deducted"}, [], id="contradiction"),
])
def test_filters_combine_with_and(mixed, params, labels):
    # given
    params = dict(params)
    if params.get("staff") == "clerk":
        params["staff"] = mixed["clerk"].pk
    if params.get("customer") == "me":
        params["customer"] = mixed["customer"].member_id
    # when / then
    assert found(**params) == pick(mixed, *labels)


def test_filters_leave_out_other_customers_entries(mixed):
    # given
    other = CustomerFactory()
    grant(other, 1500, reason="Goodwill gesture")
    # when / then
    assert found(customer=mixed["customer"].member_id, reason="goodwill") == pick(mixed, "goodwill", "deduct")


# --------------------------------------------------------------------------- through the page

@pytest.fixture
def admin_client(client):
    client.force_login(StaffUserFactory(role="Store admin"))
    return client


def shown_ids(response) -> list[int]:
    return [row.pk for row in response.context["page"].rows]


def test_history_without_search_params_shows_the_last_30_days(admin_client, dated_entries):
    # when
    response = admin_client.get(HISTORY)
    # then
    assert response.status_code == 200
    assert set(shown_ids(response)) == {dated_entries[label].pk for label in LAST_30}
    assert response.context["filter"].form["period"].value() == "30d"
    assert '<option value="30d" selected>' in response.content.decode()


def test_history_with_only_a_sort_still_defaults_to_the_last_30_days(admin_client, dated_entries):
    # when
    response = admin_client.get(HISTORY, {"sort": "created_at"})
    # then
    assert shown_ids(response) == [dated_entries[label].pk for label in MOMENTS if label in LAST_30]


def test_history_with_any_time_chosen_shows_everything(admin_client, dated_entries):
    # when: the form submitted with "Any time" (an empty period)
    response = admin_client.get(HISTORY, {"period": "", "customer": ""})
    # then
    assert set(shown_ids(response)) == {entry.pk for entry in dated_entries.values()}


BAD_SEARCHES = [
    pytest.param({"period": "yesterday"}, "Period: Select a valid choice. yesterday is not one of the available "
                 "choices.", id="unknown-period"),
    pytest.param({"kind": "bonus"}, "Kind: Select a valid choice.", id="unknown-kind"),
    pytest.param({"source": "shop"}, "Source: Select a valid choice.", id="unknown-source"),
    pytest.param({"direction": "sideways"}, "Direction: Select a valid choice.", id="unknown-direction"),
    pytest.param({"date_from": "2030-01-10", "date_to": "2030-01-01"},
                 "To: The end date must be on or after the start date.", id="from-after-to"),
    pytest.param({"period": "custom", "date_from": "2020-13-01"}, "From: Enter a valid date.", id="month-13"),
    pytest.param({"date_to": "2030-02-30"}, "To: Enter a valid date.", id="february-30"),
    pytest.param({"date_from": "1900-01-01"}, "From: Pick a date between 2000 and 2100.", id="year-1900"),
    pytest.param({"period": "custom"}, "From: Pick a start or end date for a custom range.", id="custom-no-dates"),
    pytest.param({"amount_min": "abc"}, "Amount from: Enter a number, such as 12.50.", id="amount-abc"),
    pytest.param({"amount_min": "1e400"}, "Amount from: Enter a number, such as 12.50.", id="amount-1e400"),
    pytest.param({"amount_max": "1e999999"}, "Amount to: Enter a number, such as 12.50.", id="amount-overflow"),
    pytest.param({"amount_max": "9" * 20}, "Amount to: That amount is too large.", id="amount-huge"),
    pytest.param({"amount_min": "0.001"}, "Amount from: Use at most 2 decimal places.", id="amount-decimals"),
    pytest.param({"amount_min": "-5"}, "Amount from: Enter a positive amount.", id="amount-negative"),
    pytest.param({"amount_min": "NaN"}, "Amount from: Enter a number, such as 12.50.", id="amount-nan"),
    pytest.param({"amount_min": "20", "amount_max": "10"}, "Amount to: The maximum must be at least the minimum.",
                 id="amount-min-over-max"),
    pytest.param({"customer": "x" * 10_000},
                 "Customer: Ensure this value has at most 200 characters (it has 10000).", id="customer-10k"),
    pytest.param({"customer": "ada\x00"}, "Customer: Null characters are not allowed.", id="customer-nul"),
    pytest.param({"reason": "r" * 10_000}, "Reason: Ensure this value has at most 200 characters", id="reason-10k"),
    pytest.param({"order": "o" * 10_000}, "Order: Ensure this value has at most 64 characters", id="order-10k"),
    pytest.param({"staff": "s" * 10_000}, "Staff: Select a valid choice.", id="staff-10k"),
    pytest.param({"staff": "999999"}, "Staff: Select a valid choice.", id="staff-unknown"),
    pytest.param({"period": "p" * 10_000}, "Period: Select a valid choice.", id="period-10k"),
    pytest.param({"date_from": "d" * 10_000}, "From: Enter a valid date.", id="date-10k"),
    pytest.param({"amount_min": "1" * 10_000}, "Amount from: That amount is too large.", id="amount-10k"),
]


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "partial"])
@pytest.mark.parametrize(("params", "message"), BAD_SEARCHES)
def test_history_with_a_bad_filter_value_answers_200_with_a_clear_message(admin_client, dated_entries, params,
                                                                         message, htmx):
    # given
    headers = {"HX-Request": "true", "HX-Target": "results"} if htmx else {}
    # when
    response = admin_client.get(HISTORY, params, headers=headers)
    # then: the message, no rows and no summary (nothing is shown for a search we cannot read)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Check the search: some values are not valid." in body
    results = body[body.index('<div id="results"'):]
    assert f"<li>{escape(message)}" in results
    assert "No credits history matches this search." in results
    assert 'id="summary"' not in results and "customer-link" not in results
    assert '<div id="results"' in body
    assert ("<html" in body) == (not htmx)


@pytest.mark.parametrize(("params", "notice"), [
    pytest.param({"after": "garbage"}, "This page link is no longer valid; showing the first page.",
                 id="after-garbage"),
    pytest.param({"before": "!!!"}, "This page link is no longer valid; showing the first page.",
                 id="before-garbage"),
    pytest.param({"after": "A" * 5000}, "This page link is no longer valid; showing the first page.",
                 id="after-5000-chars"),
    pytest.param({"after": encode_cursor("created_at", NOW, 10**30)},
                 "This page link is no longer valid; showing the first page.", id="after-huge-id"),
    pytest.param({"after": encode_cursor("created_at", 12, 1)},
                 "This page link is no longer valid; showing the first page.", id="after-number-for-a-date"),
    pytest.param({"sort": "amount", "after": encode_cursor("amount", NOW, 1)},
                 "This page link is no longer valid; showing the first page.", id="after-date-for-an-amount"),
    pytest.param({"sort": "amount", "after": encode_cursor("amount", -(10**40), 1)},
                 "This page link is no longer valid; showing the first page.", id="after-huge-amount"),
    pytest.param({"sort": "evil"}, "Unknown sort order; showing the newest entries first.", id="sort-evil"),
    pytest.param({"sort": "-balance_after; DROP TABLE x"}, "Unknown sort order; showing the newest entries first.",
                 id="sort-sql"),
])
def test_history_with_a_bad_paging_or_sort_value_shows_the_first_page_with_a_notice(admin_client, dated_entries,
                                                                                    params, notice):
    # when
    response = admin_client.get(HISTORY, {"period": "", **params})
    # then: the newest entries, as on the first page, and the notice
    assert response.status_code == 200
    assert notice in response.content.decode()
    expected = list(LedgerEntry.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    if params.get("sort") == "amount":
        expected = list(LedgerEntry.objects.order_by("amount", "id").values_list("id", flat=True))
    assert shown_ids(response) == expected


def test_history_with_a_bad_value_shows_the_error_next_to_the_field_on_a_full_page(admin_client):
    # when
    response = admin_client.get(HISTORY, {"amount_min": "abc"})
    # then
    body = response.content.decode()
    field = body[body.index('id="field-amount_min"'):]
    assert 'class="field has-error"' in body
    assert "Enter a number, such as 12.50." in field[: field.index("</div>")]
