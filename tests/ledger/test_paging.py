"""Keyset paging of the history: walking every page forward and then backward visits every
row exactly once, in order, for each sort, also when many entries share one instant and
one amount; and cursors that do not fit the request fall back to the first page."""

import datetime as dt
from datetime import UTC

import pytest
from django.urls import reverse

from credits_admin.paging import BadCursor, decode_cursor, encode_cursor, keyset_page
from ledger import clock, selectors, services, views
from ledger.models import LedgerEntry
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

T1 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
T2 = T1 + dt.timedelta(microseconds=1)
T3 = T1 + dt.timedelta(hours=5)
HISTORY = reverse("ledger:history")
SORTS = ["-created_at", "created_at", "-amount", "amount"]
PER_PAGE = 7


@pytest.fixture
def tied():
    """61 entries at three instants (two a microsecond apart), amounts from a few values."""
    customers = [CustomerFactory() for _ in range(3)]
    n = 0
    for moment, count in ((T1, 25), (T2, 12), (T3, 24)):
        with clock.posting_at(moment):
            for _ in range(count):
                services.grant(customer=customers[n % 3], amount=[100, 250, 100, 700][n % 4], reason="tie")
                n += 1
    return list(LedgerEntry.objects.values_list("id", "created_at", "amount"))


def expected_order(rows, sort) -> list[int]:
    field = sort.lstrip("-")
    key = {"created_at": lambda r: (r[1], r[0]), "amount": lambda r: (r[2], r[0])}[field]
    return [r[0] for r in sorted(rows, key=key, reverse=sort.startswith("-"))]


def walk(sort):
    """Every page forward (after=), then every page backward (before=) from the last one."""
    field, descending = sort.lstrip("-"), sort.startswith("-")
    qs = selectors.history_entries()
    forward = [keyset_page(qs, field=field, descending=descending, per_page=PER_PAGE)]
    while forward[-1].has_next:
        forward.append(keyset_page(qs, field=field, descending=descending, after=forward[-1].next_cursor,
                                   per_page=PER_PAGE))
    backward = [forward[-1]]
    while backward[-1].has_prev:
        backward.append(keyset_page(qs, field=field, descending=descending, before=backward[-1].prev_cursor,
                                    per_page=PER_PAGE))
    return forward, backward


@pytest.mark.parametrize("sort", SORTS)
def test_walking_forward_visits_every_row_once_in_order(tied, sort):
    # when
    forward, _ = walk(sort)
    # then
    seen = [row.pk for page in forward for row in page.rows]
    assert seen == expected_order(tied, sort)
    assert len(seen) == len(set(seen)) == 61
    assert [len(page.rows) for page in forward] == [7] * 8 + [5]
    assert forward[0].is_first and not forward[0].has_prev
    assert all(not page.is_first and page.has_prev for page in forward[1:])


@pytest.mark.parametrize("sort", SORTS)
def test_walking_backward_from_the_last_page_gives_the_same_pages(tied, sort):
    # when
    forward, backward = walk(sort)
    # then: the same pages in reverse, ending on a first page with no way further back
    assert [[r.pk for r in p.rows] for p in reversed(backward)] == [[r.pk for r in p.rows] for p in forward]
    assert backward[-1].is_first and not backward[-1].has_prev
    assert all(page.has_next for page in backward[1:])


def test_paging_on_an_empty_result_has_no_cursors(db):
    # when
    page = keyset_page(selectors.history_entries(), field="created_at", descending=True, per_page=5)
    # then
    assert page.rows == [] and not page.has_next and not page.has_prev and page.is_first


def test_paging_when_rows_arrive_between_pages_neither_repeats_nor_skips_older_rows(tied):
    # given: page 1 read, then new entries posted (newer than everything)
    qs = selectors.history_entries()
    first = keyset_page(qs, field="created_at", descending=True, per_page=PER_PAGE)
    with clock.posting_at(T3 + dt.timedelta(days=1)):
        services.grant(customer=CustomerFactory(), amount=5, reason="late")
    # when
    second = keyset_page(qs, field="created_at", descending=True, after=first.next_cursor, per_page=PER_PAGE)
    # then
    assert [r.pk for r in second.rows] == expected_order(tied, "-created_at")[PER_PAGE:2 * PER_PAGE]


# --------------------------------------------------------------------------- the page's links

@pytest.fixture
def admin_client(client, monkeypatch):
    monkeypatch.setattr(views, "PER_PAGE", PER_PAGE)
    client.force_login(StaffUserFactory(role="Store admin"))
    return client


@pytest.mark.parametrize("sort", SORTS)
def test_history_page_links_walk_every_row_once_each_way(admin_client, tied, sort):
    # given
    params = {"period": "", "sort": sort}
    # when: following the page's own Next links, then its Previous links
    response = admin_client.get(HISTORY, params)
    pages = [response.context["page"]]
    while pages[-1].has_next:
        assert f"after={pages[-1].next_cursor}" in response.content.decode()
        response = admin_client.get(HISTORY, {**params, "after": pages[-1].next_cursor})
        pages.append(response.context["page"])
    back = [pages[-1]]
    while back[-1].has_prev:
        assert f"before={back[-1].prev_cursor}" in response.content.decode()
        response = admin_client.get(HISTORY, {**params, "before": back[-1].prev_cursor})
        back.append(response.context["page"])
    # then
    seen = [r.pk for p in pages for r in p.rows]
    assert seen == expected_order(tied, sort)
    assert [r.pk for p in reversed(back) for r in p.rows] == seen
    assert "This page link is no longer valid" not in response.content.decode()


def test_history_cursor_made_for_another_sort_falls_back_to_page_one_with_a_message(admin_client, tied):
    # given: the link to page 2 of the amount sort
    page2 = admin_client.get(HISTORY, {"period": "", "sort": "amount"}).context["page"].next_cursor
    # when: used with the date sort
    response = admin_client.get(HISTORY, {"period": "", "sort": "-created_at", "after": page2})
    # then
    assert response.status_code == 200
    assert "This page link is no longer valid; showing the first page." in response.content.decode()
    assert [r.pk for r in response.context["page"].rows] == expected_order(tied, "-created_at")[:PER_PAGE]
    assert response.context["page"].is_first


def test_history_sort_links_start_again_at_page_one(admin_client, tied):
    # given: page 2
    page2 = admin_client.get(HISTORY, {"period": "", "sort": "-amount"}).context["page"].next_cursor
    # when
    body = admin_client.get(HISTORY, {"period": "", "sort": "-amount", "after": page2}).content.decode()
    # then: the column headers change the sort and drop the cursor; the pager keeps the sort
    assert 'href="?period=&amp;sort=amount"' in body
    assert 'href="?period=&amp;sort=-created_at"' in body
    assert 'href="?period=&amp;sort=-amount">' in body  # "First page"
    assert 'aria-sort="descending"' in body


# --------------------------------------------------------------------------- cursors

def test_cursor_round_trips_a_datetime_with_microseconds_and_an_amount():
    # given
    moment = dt.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    # when / then
    assert decode_cursor(encode_cursor("created_at", moment, 42), field="created_at") == (moment, 42)
    assert decode_cursor(encode_cursor("amount", -1500, 7), field="amount") == (-1500, 7)


@pytest.mark.parametrize("token", [
    "", "garbage", "!!!", "A" * 301, encode_cursor("amount", 10, 1) + "x",
    encode_cursor("created_at", T1, 1),  # made for another field
    encode_cursor("amount", 10**30, 1), encode_cursor("amount", 10, 2**63), encode_cursor("amount", True, 1),
    encode_cursor("amount", 10, "1"), encode_cursor("amount", 1.5, 1), encode_cursor("amount", None, 1),
], ids=["empty", "garbage", "punctuation", "too-long", "trailing-junk", "other-field", "huge-amount", "huge-id",
        "bool", "string-id", "float", "null"])
def test_decode_cursor_refuses_anything_but_a_cursor_for_its_field(token):
    # when / then
    with pytest.raises(BadCursor, match="This page link is no longer valid"):
        decode_cursor(token, field="amount")


def test_decode_cursor_refuses_a_naive_or_impossible_datetime():
    # given
    import base64
    import json

    def raw(value):
        return base64.urlsafe_b64encode(json.dumps(["created_at", {"dt": value}, 1]).encode()).decode()

    # when / then
    for value in ("2030-01-01T00:00:00", "2030-13-01T00:00:00+00:00", "soon", 5):
        with pytest.raises(BadCursor):
            decode_cursor(raw(value), field="created_at")
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor("created_at", 12, 1), field="created_at", is_datetime=True)
