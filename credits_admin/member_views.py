"""The member panel: a small public page the storefront shows a logged-in customer, with
their card number (to paste at checkout) and, while the credits program is on, their
balance and what expires soon.

There is no customer login here. The storefront asks the API for a link
(`GET /api/v1/customers/{member_id}/panel-link`); the link carries a token signed with
SECRET_KEY (django.core.signing.TimestampSigner over the member ID) that is good for
MEMBER_PANEL_LINK_MAX_AGE seconds (default one hour). To show it in an <iframe> on the
storefront, list the storefront's origins in MEMBER_PANEL_FRAME_ANCESTORS; otherwise the
storefront opens it as a page (X-Frame-Options: DENY, as everywhere)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm.models import Customer
from ledger import selectors as ledger_selectors

from . import money
from .models import StoreSettings

SALT = "credits_admin.member_panel"
EXPIRING_WITHIN_DAYS = 30


def link_max_age() -> int:
    return int(getattr(settings, "MEMBER_PANEL_LINK_MAX_AGE", 3600))


def make_panel_token(member_id: str) -> str:
    return signing.TimestampSigner(salt=SALT).sign_object({"m": member_id})


def read_panel_token(token: str) -> str:
    """The member ID a token was made for. Raises signing.SignatureExpired for an old
    token and signing.BadSignature for anything else that is not a token of ours."""
    if not token or len(token) > 500:
        raise signing.BadSignature("Not a panel token.")
    data = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=link_max_age())
    member_id = data.get("m") if isinstance(data, dict) else None
    if not isinstance(member_id, str) or not member_id:
        raise signing.BadSignature("Not a panel token.")
    return member_id


def active_customer(**lookup) -> Customer | None:
    """The customer for the storefront (an anonymised, deleted customer is nobody)."""
    return Customer.objects.filter(**lookup).exclude(status=Customer.Status.DELETED).first()


def expiring_by_day(customer, *, within_days: int = EXPIRING_WITHIN_DAYS) -> list[tuple[dt.date, int]]:
    """What expires in the next `within_days` days, summed per day (store time zone)."""
    by_day: dict[dt.date, int] = {}
    for expires_at, remaining in (ledger_selectors.expiring_lots(customer=customer, within_days=within_days)
                                  .values_list("expires_at", "remaining")):
        day = timezone.localdate(expires_at)
        by_day[day] = by_day.get(day, 0) + remaining
    return sorted(by_day.items())


def _panel_headers(response):
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "no-referrer"  # the token must not leak to linked sites
    response["X-Robots-Tag"] = "noindex, nofollow"
    # Framing: refused (X-Frame-Options: DENY, like every page) unless the store lists the
    # storefront origins allowed to embed the panel in an <iframe>.
    origins = [o for o in getattr(settings, "MEMBER_PANEL_FRAME_ANCESTORS", []) if o]
    if origins:
        response.xframe_options_exempt = True
        response["Content-Security-Policy"] = "frame-ancestors " + " ".join(origins)
    return response


@login_not_required
@never_cache
@require_GET
def member_panel(request, token: str):
    store = StoreSettings.load()
    context = {"store_name": store.store_name or settings.STORE_NAME}
    try:
        member_id = read_panel_token(token)
    except signing.SignatureExpired:
        context["error"] = "This link has expired. Open your member panel again from the store to see your credits."
    except signing.BadSignature:
        context["error"] = "This link is not valid. Open your member panel again from the store."
    else:
        customer = active_customer(member_id=member_id)
        if customer is None:
            context["error"] = "This membership is no longer active."
        else:
            context.update(customer=customer, program_enabled=store.credits_enabled,
                           card_groups=[customer.card_number[i:i + 4] for i in range(0, 16, 4)])
            if store.credits_enabled:
                context.update(available=ledger_selectors.available_balance(customer=customer),
                               expiring=expiring_by_day(customer), expiring_days=EXPIRING_WITHIN_DAYS,
                               currency=money.store_currency())
    status = 403 if "error" in context else 200
    return _panel_headers(render(request, "credits_admin/member_panel.html", context, status=status))
