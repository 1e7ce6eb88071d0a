import json
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from credits_admin.models import StoreSettings
from crm.models import OrderNote
from ledger import clock
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import LedgerEntry
from refunds import services
from refunds.models import RefundRequest, StoreCreditRefund
from tests.factories import CustomerFactory, OrderFactory
from tests.refunds.support import refunds_state

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
LIST = reverse("refunds:request_list")


def hx(target):
    return {**HX, "HX-Target": target}


def triggers(response) -> set:
    return set(json.loads(response["HX-Trigger"]))


def _funded(amount=5000, **kwargs):
    customer = CustomerFactory(**kwargs)
    ledger_services.grant(customer=customer, amount=amount, reason="setup")
    return customer


@pytest.fixture
def logged_in(client, agent):
    client.force_login(agent)
    return client


# --------------------------------------------------------------------------- the list

def test_request_list_full_page_shows_every_column(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer, 1200)
    # when
    response = logged_in.get(LIST)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Cash refund requests</h1>" in html and 'id="modal-title"' not in html
    for header in ("Requested at", "Requested by", "Amount", "Available credits now", "Payout details", "Status",
                   "Proceed"):
        assert header in html
    assert funded_customer.member_id in html and "$12.00" in html and "$50.00" in html
    assert "First Bank <span class=\"mono\">••••9012</span>" in html and "123456789012" not in html
    assert f'aria-label="Send email to {funded_customer.member_id}"' in html
    assert reverse("crm:customer_detail", args=[funded_customer.pk]) + "#memos" in html
    assert reverse("refunds:request_refund", args=[req.pk]) in html
    assert reverse("refunds:request_undo", args=[req.pk]) not in html


@pytest.mark.parametrize("role", ["Support agent", "Support admin", "Store admin", "Ops"])
def test_credits_history_page_opens_the_requests_popup_from_its_button(client, role):
    # given
    from tests.factories import StaffUserFactory

    client.force_login(StaffUserFactory(role=role))
    # when
    html = client.get(reverse("ledger:history")).content.decode()
    # then: [Cash refund requests] opens the list in the dialog (and as a page without JS)
    button = (f'<a class="button" href="{LIST}" hx-get="{LIST}" hx-target="#modal" hx-swap="innerHTML" '
              f'aria-haspopup="dialog">Cash refund requests</a>')
    assert button in html


def test_request_list_in_the_dialog_is_the_modal_body_with_close_button(logged_in, funded_customer, make_request):
    # given
    make_request(funded_customer)
    # when
    response = logged_in.get(LIST, headers=hx("modal"))
    # then
    html = response.content.decode()
    assert "<html" not in html and 'class="refunds-popup"' in html
    assert '<h2 id="modal-title">Cash refund requests</h2>' in html
    assert "data-close-modal" in html and 'name="popup" value="1"' in html
    assert 'hx-push-url="true"' not in html  # searching inside the pop-up leaves the page's URL alone


def test_request_list_link_from_the_popup_opened_in_a_tab_is_the_page(logged_in, funded_customer, make_request):
    # given: a sort link of the pop-up carries popup=1
    make_request(funded_customer)
    # when: it is opened without htmx (a new tab)
    html = logged_in.get(LIST, {"popup": "1", "sort": "amount"}).content.decode()
    # then: the page, with its heading and no dialog close button
    assert "<h1>Cash refund requests</h1>" in html and 'id="modal-title"' not in html
    assert "data-close-modal" not in html and 'name="popup"' not in html


def test_request_list_shows_refund_until_refunded_and_undo_after(logged_in, funded_customer, make_request, agent):
    # given
    req = make_request(funded_customer)
    services.refund(request=req, actor=agent)
    # when
    html = logged_in.get(LIST).content.decode()
    # then
    assert reverse("refunds:request_undo", args=[req.pk]) in html
    assert reverse("refunds:request_refund", args=[req.pk]) not in html
    assert "Paid out" in html


def test_request_list_marks_a_request_above_the_available_credits(logged_in, funded_customer, make_request):
    # given
    make_request(funded_customer, 4000)
    ledger_services.debit(customer=funded_customer, amount=3000, kind="redeem", reason="checkout")
    # when
    html = logged_in.get(LIST).content.decode()
    # then
    assert '<span class="negative">$20.00</span>' in html and ">short<" in html


@pytest.mark.parametrize(("query", "expected"), [
    ({"status": "pending"}, ["bob"]),
    ({"status": "open"}, ["ann", "bob"]),
    ({"status": "rejected"}, ["cid"]),
    ({"customer": "Ann Example"}, ["ann"]),
    ({"customer": "bob@example.org"}, ["bob"]),
    ({"customer": "bob@exa"}, ["bob"]),
    ({"customer": "M-CID"}, ["cid"]),
    ({"amount_min": "15", "amount_max": "25"}, ["bob"]),
    ({"amount_min": "25"}, ["cid"]),
    ({"period": "7d"}, ["ann", "bob"]),
    ({"period": "custom", "date_to": "2020-01-01"}, []),
])
def test_request_list_filters(logged_in, agent, query, expected):
    # given
    ann = _funded(name="Ann Example", member_id="M-ANN")
    bob = _funded(name="Bob Sample", member_id="M-BOB", email="bob@example.org")
    cid = _funded(name="Cid Other", member_id="M-CID")
    with clock.posting_at(clock.now() - timedelta(days=20)):
        r3 = services.create_request(customer=cid, amount=3000, channel="staff", account_holder="C",
                                     bank_name="B", account_number="99999999")
    services.reject(request=r3, actor=agent, reason="no")
    services.create_request(customer=ann, amount=1000, channel="storefront", account_holder="A", bank_name="B",
                            account_number="11111111")
    r2 = services.create_request(customer=bob, amount=2000, channel="storefront", account_holder="B",
                                 bank_name="B", account_number="22222222")
    services.mark_pending(request=r2, actor=agent)
    names = {"ann": "M-ANN", "bob": "M-BOB", "cid": "M-CID"}
    # when
    response = logged_in.get(LIST, query, headers=hx("refund-results"))
    # then
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="refund-results"')
    assert [k for k, v in names.items() if f">{v}</a>" in html] == sorted(expected)


def test_request_list_with_an_invalid_search_explains_it(logged_in):
    # when
    response = logged_in.get(LIST, {"amount_min": "abc", "amount_max": "-3"}, headers=hx("refund-results"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Check the search: some values are not valid." in html and "Enter a number, such as 12.50." in html


def test_request_list_queries_do_not_grow_with_rows(logged_in, django_assert_max_num_queries, agent):
    # given
    for i in range(3):
        services.create_request(customer=_funded(), amount=100 + i, channel="storefront", account_holder="A",
                                bank_name="B", account_number="11111111")
    with django_assert_max_num_queries(40) as few:
        logged_in.get(LIST)
    for i in range(20):
        req = services.create_request(customer=_funded(), amount=200 + i, channel="storefront",
                                      account_holder="A", bank_name="B", account_number="11111111")
        if i % 2:
            services.refund(request=req, actor=agent)
    # when / then
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = logged_in.get(LIST)
    assert response.content.decode().count('class="requested-by"') == 23


# --------------------------------------------------------------------------- row actions

def test_refund_button_refunds_and_answers_a_panel_notice_with_events(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer, 1500)
    url = reverse("refunds:request_refund", args=[req.pk])
    # when
    response = logged_in.post(url, {"version": req.version}, headers=hx("refund-panel"))
    # then
    assert response.status_code == 200
    assert triggers(response) == {"refundUpdated", "creditsChanged"}
    assert f"Request #{req.pk} refunded ({funded_customer.member_id}, $15.00)." in response.content.decode()
    assert ledger_selectors.available_balance(customer=funded_customer) == 3500


def test_refund_button_when_credits_are_short_shows_the_refusal_and_writes_nothing(logged_in, funded_customer,
                                                                                   make_request):
    # given
    req = make_request(funded_customer, 4000)
    ledger_services.debit(customer=funded_customer, amount=3000, kind="redeem", reason="checkout")
    before = refunds_state()
    # when
    response = logged_in.post(reverse("refunds:request_refund", args=[req.pk]), {"version": req.version},
                              headers=hx("refund-panel"))
    # then
    html = response.content.decode()
    assert response.status_code == 200 and 'role="alert"' in html
    assert (f"Refund refused: {funded_customer.member_id} has only $20.00 available and the request is for "
            f"$40.00. Nothing was changed.") in html
    assert refunds_state() == before


def test_refund_button_double_click_refunds_once(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer, 1000)
    url = reverse("refunds:request_refund", args=[req.pk])
    # when
    first = logged_in.post(url, {"version": req.version}, headers=hx("refund-panel"))
    second = logged_in.post(url, {"version": req.version}, headers=hx("refund-panel"))
    # then
    assert first.status_code == second.status_code == 200
    assert f"Request #{req.pk} was already refunded; nothing changed." in second.content.decode()
    assert LedgerEntry.objects.filter(kind="cash_refund").count() == 1
    assert ledger_selectors.available_balance(customer=funded_customer) == 4000


def test_undo_and_pending_buttons_without_javascript_redirect_back_with_a_message(logged_in, funded_customer,
                                                                                  make_request, agent):
    # given
    req = make_request(funded_customer, 1000)
    # when
    pend = logged_in.post(reverse("refunds:request_pend", args=[req.pk]),
                          {"version": 0, "next": LIST + "?status=open"}, follow=True)
    services.refund(request=req, actor=agent)
    undo = logged_in.post(reverse("refunds:request_undo", args=[req.pk]), {"version": 2}, follow=True)
    # then
    assert pend.redirect_chain == [(LIST + "?status=open", 302)]
    assert f"Request #{req.pk} marked pending" in pend.content.decode()
    assert undo.redirect_chain == [(LIST, 302)]
    assert f"Request #{req.pk} undone: back to pending, credits restored" in undo.content.decode()
    req.refresh_from_db()
    assert req.status == "pending" and ledger_selectors.available_balance(customer=funded_customer) == 5000


def test_action_next_parameter_must_stay_on_this_site(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer, 1000)
    # when
    response = logged_in.post(reverse("refunds:request_pend", args=[req.pk]),
                              {"version": 0, "next": "https://evil.example/"})
    # then
    assert response["Location"] == LIST


def test_illegal_action_without_javascript_shows_the_error(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer, 1000)
    # when
    response = logged_in.post(reverse("refunds:request_undo", args=[req.pk]), {}, follow=True)
    # then
    assert (f"Request #{req.pk} is Requested, so it cannot be undone. Only a refunded request can be undone."
            in response.content.decode())


def test_action_buttons_refuse_get(logged_in, funded_customer, make_request):
    req = make_request(funded_customer, 1000)
    assert logged_in.get(reverse("refunds:request_refund", args=[req.pk])).status_code == 405


# --------------------------------------------------------------------------- reject / email / detail

def test_reject_form_in_the_panel_rejects_and_answers_a_notice(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer)
    url = reverse("refunds:request_reject", args=[req.pk])
    form = logged_in.get(url, headers=hx("refund-panel")).content.decode()
    # when
    response = logged_in.post(url, {"reason": "Promotional credits", "version": req.version},
                              headers=hx("refund-panel"))
    # then
    assert 'hx-target="#refund-panel"' in form and 'id="modal-title"' not in form
    assert response.status_code == 200 and triggers(response) == {"refundUpdated", "creditsChanged"}
    req.refresh_from_db()
    assert (req.status, req.rejection_reason) == ("rejected", "Promotional credits")


def test_reject_form_in_the_dialog_closes_it(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer)
    # when
    response = logged_in.post(reverse("refunds:request_reject", args=[req.pk]),
                              {"reason": "No", "version": req.version}, headers=hx("modal"))
    # then
    assert response.status_code == 204
    assert triggers(response) == {"closeModal", "refundUpdated", "creditsChanged", "showMessage"}


def test_reject_form_without_a_reason_shows_the_error_and_writes_nothing(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer)
    before = refunds_state()
    # when
    response = logged_in.post(reverse("refunds:request_reject", args=[req.pk]), {"reason": "  ", "version": 0},
                              headers=hx("refund-panel"))
    # then
    assert response.status_code == 200 and "HX-Trigger" not in response
    assert "This field is required." in response.content.decode()
    assert refunds_state() == before


def test_reject_form_for_a_refunded_request_shows_why_not(logged_in, funded_customer, make_request, agent):
    # given
    req = make_request(funded_customer)
    services.refund(request=req, actor=agent)
    before = refunds_state()
    # when
    response = logged_in.post(reverse("refunds:request_reject", args=[req.pk]), {"reason": "x", "version": 1},
                              headers=hx("refund-panel"))
    # then
    assert (f"Request #{req.pk} is Refunded, so it cannot be rejected. Undo the refund first."
            in response.content.decode())
    assert refunds_state() == before


def test_email_form_sends_the_message_after_commit(logged_in, funded_customer, make_request,
                                                   django_capture_on_commit_callbacks):
    # given
    req = make_request(funded_customer)
    url = reverse("refunds:request_email", args=[req.pk])
    form = logged_in.get(url, headers=hx("refund-panel")).content.decode()
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = logged_in.post(url, {"subject": "Your request", "message": "Sent today."},
                                  headers=hx("refund-panel"))
    for callback in callbacks:
        if getattr(callback, "__name__", "") == "<lambda>":
            callback()
    # then
    assert f"Your cash refund request #{req.pk}" in form and funded_customer.email in form
    assert response.status_code == 200 and f"Email sent to {funded_customer.member_id}." in response.content.decode()
    assert [(m.subject, m.to) for m in mail.outbox] == [("Your request", [funded_customer.email])]


def test_email_form_requires_subject_and_message(logged_in, funded_customer, make_request):
    # given
    req = make_request(funded_customer)
    # when
    response = logged_in.post(reverse("refunds:request_email", args=[req.pk]), {"subject": "", "message": ""},
                              headers=hx("refund-panel"))
    # then
    assert response.content.decode().count("This field is required.") == 2 and mail.outbox == []


def test_request_detail_shows_payouts_and_the_history(logged_in, funded_customer, make_request, agent):
    # given
    req = make_request(funded_customer, 1000)
    services.refund(request=req, actor=agent)
    services.undo(request=req, actor=agent)
    # when
    html = logged_in.get(reverse("refunds:request_detail", args=[req.pk]), headers=hx("refund-panel")).content.decode()
    # then
    assert f"Cash refund request #{req.pk}" in html and "Awaiting/Pending" in html
    assert "Cancelled (refund undone)" in html and "••••9012" in html and "123456789012" not in html
    assert html.index("refunded: $10.00 debited") < html.index("Refund of request")


def test_request_detail_of_an_unknown_request_is_404(logged_in):
    assert logged_in.get(reverse("refunds:request_detail", args=[999])).status_code == 404


# --------------------------------------------------------------------------- submit on a customer's behalf

def test_create_customer_search_lists_matches_by_name_id_or_email(logged_in):
    # given
    ann = _funded(2500, name="Ann Example", member_id="M-ANN", email="ann@example.org")
    _funded(name="Bob Sample", member_id="M-BOB")
    url = reverse("refunds:request_create")
    # when
    by_name = logged_in.get(url, {"q": "ann ex"}, headers=hx("customer-results")).content.decode()
    by_id = logged_in.get(url, {"q": "M-ANN"}, headers=hx("customer-results")).content.decode()
    by_email = logged_in.get(url, {"q": "ann@example.org"}, headers=hx("customer-results")).content.decode()
    by_email_start = logged_in.get(url, {"q": "ann@ex"}, headers=hx("customer-results")).content.decode()
    nothing = logged_in.get(url, {"q": "zzz"}, headers=hx("customer-results")).content.decode()
    # then
    for html in (by_name, by_id, by_email, by_email_start):
        assert html.lstrip().startswith('<div id="customer-results"')
        assert "M-ANN" in html and "M-BOB" not in html and "$25.00" in html
        assert f"?pick={ann.pk}" in html
    assert "No customer matches “zzz”." in nothing


def test_create_picking_a_customer_shows_name_and_id_in_requested_by(logged_in):
    # given
    ann = _funded(2500, name="Ann Example", member_id="M-ANN")
    # when
    html = logged_in.get(reverse("refunds:request_create"), {"pick": ann.pk}, headers=hx("requested-by")).content.decode()
    # then
    assert html.lstrip().startswith('<div id="requested-by"')
    assert '<strong data-testid="picked">Ann Example (M-ANN)</strong>' in html
    assert f'<input type="hidden" name="customer" value="{ann.pk}">' in html


def _create_data(who, **overrides):
    return {"customer": who.pk, "amount": "12.50", "account_holder": "Ann Example",
            "bank_name": "First Bank", "account_number": "555-000-1234", "memo": "asked by phone",
            "idempotency_key": str(uuid.uuid4()), **overrides}


def test_create_in_the_panel_submits_the_request_on_the_customers_behalf(logged_in, agent):
    # given
    ann = _funded(member_id="M-ANN")
    # when
    response = logged_in.post(reverse("refunds:request_create"), _create_data(ann), headers=hx("refund-panel"))
    # then
    assert response.status_code == 200 and triggers(response) == {"refundUpdated", "creditsChanged"}
    req = RefundRequest.objects.get()
    assert f"Request #{req.pk} submitted for M-ANN ($12.50)." in response.content.decode()
    assert (req.customer, req.amount, req.channel, req.created_by, req.memo, req.account_last4) == (
        ann, 1250, "staff", agent, "asked by phone", "1234")


def test_create_as_a_dialog_closes_it_and_as_a_page_redirects(logged_in):
    # given
    ann, bob = _funded(), _funded()
    # when
    modal = logged_in.post(reverse("refunds:request_create"), _create_data(ann), headers=hx("modal"))
    page = logged_in.post(reverse("refunds:request_create"), _create_data(bob))
    # then
    assert modal.status_code == 204 and triggers(modal) == {"closeModal", "refundUpdated", "creditsChanged",
                                                            "showMessage"}
    assert page.status_code == 302 and page["Location"] == LIST


def test_create_never_puts_the_account_number_in_an_error_report(logged_in):
    # given
    from django.views.debug import SafeExceptionReporterFilter

    ann = _funded()
    # when
    response = logged_in.post(reverse("refunds:request_create"), _create_data(ann), headers=hx("refund-panel"))
    # then: Django's error reports (and its 500 page) hide it
    request = response.wsgi_request
    assert request.sensitive_post_parameters == ("account_number",)
    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert cleaned["account_number"] == SafeExceptionReporterFilter.cleansed_substitute
    assert cleaned["account_holder"] == request.POST["account_holder"]


def test_create_double_submit_creates_one_request(logged_in):
    # given
    ann = _funded()
    data = _create_data(ann)
    # when
    logged_in.post(reverse("refunds:request_create"), data, headers=hx("refund-panel"))
    again = logged_in.post(reverse("refunds:request_create"), data, headers=hx("refund-panel"))
    # then
    assert again.status_code == 200 and RefundRequest.objects.count() == 1


@pytest.mark.parametrize(("overrides", "message"), [
    ({"customer": ""}, "Search for the customer and pick one."),
    ({"amount": "0"}, "Enter an amount greater than zero."),
    ({"amount": "-3"}, "Enter a positive amount."),
    ({"amount": "abc"}, "Enter a number, such as 12.50."),
    ({"amount": "50.01"}, "The amount is more than the available credits: {id} has $50.00 available, the request "
                          "is for $50.01."),
    ({"account_number": "12"}, "An account number has 6 to 34 letters and digits (spaces and dashes are ignored)."),
    ({"bank_name": ""}, "This field is required."),
])
def test_create_with_bad_input_shows_the_error_and_writes_nothing(logged_in, overrides, message):
    # given
    ann = _funded()
    before = refunds_state()
    # when
    response = logged_in.post(reverse("refunds:request_create"), _create_data(ann, **overrides),
                              headers=hx("refund-panel"))
    # then
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Trigger" not in response
    assert message.format(id=ann.member_id) in html
    assert refunds_state() == before


def test_create_while_the_customer_has_an_open_request_shows_why(logged_in, make_request):
    # given
    ann = _funded()
    first = make_request(ann, 100)
    before = refunds_state()
    # when
    response = logged_in.post(reverse("refunds:request_create"), _create_data(ann), headers=hx("refund-panel"))
    # then
    assert f"already has an open cash refund request (#{first.pk}, Requested)" in response.content.decode()
    assert refunds_state() == before


def test_create_page_without_javascript_searches_and_keeps_the_pick(logged_in):
    # given
    ann = _funded(name="Ann Example", member_id="M-ANN")
    # when
    html = logged_in.get(reverse("refunds:request_create"), {"q": "Ann", "customer": ann.pk}).content.decode()
    # then
    assert "<html" in html and "Ann Example (M-ANN)" in html and f"?pick={ann.pk}" in html


# --------------------------------------------------------------------------- refund an order with store credits

def test_order_refund_popup_prefills_the_note_and_notification(logged_in):
    # given
    store = StoreSettings.load()
    store.refund_note = "We refunded you in store credits."
    store.save()
    order = OrderFactory(paid_amount=8000)
    # when
    html = logged_in.get(reverse("refunds:order_refund_with_credits", args=[order.pk]), headers=HX).content.decode()
    # then
    assert "We refunded you in store credits.</textarea>" in html
    assert 'name="notify" id="id_notify" checked' in html
    assert 'name="amount"' in html and 'value=""' not in html.split('name="amount"')[1].split(">")[0]
    assert '<dd class="num" data-testid="refundable">$80.00</dd>' in html


def test_order_refund_popup_grants_and_closes_with_events(logged_in, agent):
    # given
    order = OrderFactory(paid_amount=8000)
    url = reverse("refunds:order_refund_with_credits", args=[order.pk])
    data = {"amount": "20.00", "notify": "on", "note": "Sorry!", "idempotency_key": str(uuid.uuid4())}
    # when
    response = logged_in.post(url, data, headers=HX)
    replay = logged_in.post(url, data, headers=HX)
    # then
    assert response.status_code == 204
    assert triggers(response) == {"closeModal", "creditsChanged", "orderChanged", "showMessage"}
    assert replay.status_code == 204 and StoreCreditRefund.objects.count() == 1
    assert ledger_selectors.available_balance(customer=order.customer) == 2000
    assert OrderNote.objects.get(order=order).body == "Sorry!"
    refund = StoreCreditRefund.objects.get()
    assert (refund.notify, refund.actor) == (True, agent)


@pytest.mark.parametrize(("data", "message"), [
    ({"amount": ""}, "This field is required."),
    ({"amount": "0"}, "Enter an amount greater than zero."),
    ({"amount": "80.01"}, "At most $80.00 of order"),
    ({"note": ""}, "This field is required."),
])
def test_order_refund_popup_with_bad_input_shows_the_error_and_writes_nothing(logged_in, data, message):
    # given
    order = OrderFactory(paid_amount=8000)
    before = refunds_state()
    payload = {"amount": "10", "notify": "on", "note": "n", "idempotency_key": str(uuid.uuid4()), **data}
    # when
    response = logged_in.post(reverse("refunds:order_refund_with_credits", args=[order.pk]), payload, headers=HX)
    # then
    assert response.status_code == 200 and message in response.content.decode()
    assert refunds_state() == before


def test_order_refund_popup_while_credits_are_off_warns_and_refuses(logged_in):
    # given
    store = StoreSettings.load()
    store.credits_enabled = False
    store.save()
    order = OrderFactory(paid_amount=8000)
    url = reverse("refunds:order_refund_with_credits", args=[order.pk])
    before = refunds_state()
    # when
    page = logged_in.get(url, headers=HX).content.decode()
    response = logged_in.post(url, {"amount": "10", "note": "n", "idempotency_key": str(uuid.uuid4())}, headers=HX)
    # then
    assert "Store credits are switched off, so an order cannot be refunded with them." in page
    assert "Switch the credits program on first." in response.content.decode()
    assert refunds_state() == before


def test_order_refund_page_without_javascript_redirects(logged_in):
    # given
    order = OrderFactory(paid_amount=8000)
    # when
    response = logged_in.post(reverse("refunds:order_refund_with_credits", args=[order.pk]),
                              {"amount": "1", "note": "n", "idempotency_key": str(uuid.uuid4())})
    # then
    assert response.status_code == 302
    assert ledger_selectors.available_balance(customer=order.customer) == 100


def test_request_list_pages_by_25_without_counting(logged_in):
    # given
    for i in range(27):
        services.create_request(customer=_funded(), amount=100 + i, channel="storefront", account_holder="A",
                                bank_name="B", account_number="11111111")
    # when
    first = logged_in.get(LIST, headers=hx("refund-results")).content.decode()
    second = logged_in.get(LIST, {"page": 2}, headers=hx("refund-results")).content.decode()
    # then
    assert first.count('class="requested-by"') == 25 and "page=2" in first
    assert second.count('class="requested-by"') == 2 and "$1.00<" in second  # the oldest, smallest
