"""How refunded money reaches the customer's bank account.

A backend decides what a Refund means for the money:

- `ManualBackend` (the default): staff transfer the money themselves; pressing Refund
  confirms they did, so the payout is recorded as paid at once.
- `GatewayBackend`: a payment gateway pays it. The payout is queued in the refund's
  transaction and sent after commit (never while a row lock or transaction is open);
  a failure goes into the retry queue (refunds.services.retry_due_payouts, once a day).

Settings:
    REFUNDS_PAYOUT_BACKEND   dotted path of the backend class (default: ManualBackend)
    REFUNDS_GATEWAY_URL      base URL of the gateway's API (GatewayBackend)
    REFUNDS_GATEWAY_API_KEY  its bearer token
    REFUNDS_GATEWAY_CLIENT   dotted path of the client class (tests put a fake here)
    REFUNDS_PAYOUT_MAX_RETRIES  daily retries after the first failure (default 3)
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import RequestInvalid

log = logging.getLogger(__name__)

DEFAULT_BACKEND = "refunds.payouts.ManualBackend"
DEFAULT_CLIENT = "refunds.payouts.HttpGatewayClient"

_ACCOUNT_RE = re.compile(r"^[A-Z0-9]{6,34}$")


# --------------------------------------------------------------------------- payout details

@dataclass(frozen=True)
class PayoutDetails:
    account_holder: str
    bank_name: str
    account_number: str  # normalised: digits and capital letters only

    @property
    def last4(self) -> str:
        return self.account_number[-4:]

    def __repr__(self):  # never the full number, even in a traceback
        return f"PayoutDetails({self.account_holder!r}, {self.bank_name!r}, '••••{self.last4}')"

    __str__ = __repr__


def clean_payout_details(*, account_holder, bank_name, account_number) -> PayoutDetails:
    """Normalised details, or RequestInvalid naming the field at fault. Used by the staff
    form and the storefront API alike."""
    holder = " ".join(str(account_holder or "").split())
    bank = " ".join(str(bank_name or "").split())
    number = re.sub(r"[\s\-.]", "", str(account_number or "")).upper()
    if not holder:
        raise RequestInvalid("Enter the account holder's name.", field="account_holder")
    if len(holder) > 120:
        raise RequestInvalid("The account holder's name is too long (120 characters at most).",
                             field="account_holder")
    if not bank:
        raise RequestInvalid("Enter the bank's name.", field="bank_name")
    if len(bank) > 120:
        raise RequestInvalid("The bank's name is too long (120 characters at most).", field="bank_name")
    if not number:
        raise RequestInvalid("Enter the account number.", field="account_number")
    if not _ACCOUNT_RE.match(number):
        raise RequestInvalid("An account number has 6 to 34 letters and digits (spaces and dashes are "
                             "ignored).", field="account_number")
    return PayoutDetails(holder, bank, number)


def mask(text: str, details: PayoutDetails) -> str:
    """`text` with the account number masked wherever it appears (for errors we store)."""
    if details.account_number and details.account_number in text:
        text = text.replace(details.account_number, f"••••{details.last4}")
    return text[:1000]


# --------------------------------------------------------------------------- backends

@dataclass(frozen=True)
class PayoutResult:
    ok: bool
    reference: str = ""
    error: str = ""


class PayoutBackend:
    """Interface. `automatic` False: Refund itself confirms the payout (staff paid it).
    True: `send` is called after the refund commits, outside any transaction."""

    automatic = False
    label = "Payout"

    @property
    def path(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def send(self, *, payout, details: PayoutDetails, currency: str) -> PayoutResult:
        raise TypeError(f"{self.path} pays nothing out by itself.")


class ManualBackend(PayoutBackend):
    """Staff transfer the money themselves and confirm it by pressing Refund."""

    automatic = False
    label = "Manual transfer (confirmed by staff)"


class GatewayBackend(PayoutBackend):
    """A payment gateway pays the refund out through a small HTTP client."""

    automatic = True
    label = "Payment gateway"

    def __init__(self, client=None):
        self.client = client or import_string(getattr(settings, "REFUNDS_GATEWAY_CLIENT", DEFAULT_CLIENT))()

    def send(self, *, payout, details: PayoutDetails, currency: str) -> PayoutResult:
        try:
            result = self.client.send_payout(
                idempotency_key=f"payout:{payout.pk}", amount=payout.amount, currency=currency,
                account_holder=details.account_holder, bank_name=details.bank_name,
                account_number=details.account_number, reference=f"refund-request-{payout.request_id}",
            )
        except Exception as exc:  # a client bug or the network: a failed attempt, never a crash
            log.warning("payout %s: gateway client raised %s", payout.pk, type(exc).__name__)
            return PayoutResult(ok=False, error=mask(f"{type(exc).__name__}: {exc}", details))
        return PayoutResult(ok=result.ok, reference=result.reference, error=mask(result.error, details))


def get_backend(path: str | None = None) -> PayoutBackend:
    """The backend at `path` (a payout's stored backend) or the configured one."""
    path = path or getattr(settings, "REFUNDS_PAYOUT_BACKEND", "") or DEFAULT_BACKEND
    return import_string(path)()


def max_retries() -> int:
    return int(getattr(settings, "REFUNDS_PAYOUT_MAX_RETRIES", 3))


# --------------------------------------------------------------------------- the HTTP client

class HttpGatewayClient:
    """POST {REFUNDS_GATEWAY_URL}/payouts with a JSON body and an Idempotency-Key header
    (so a retried or repeated call never pays twice). The gateway answers 2xx with
    {"id": "...", "status": "paid" | "failed", "error": "..."}; anything else, a timeout
    or a network error is a failed attempt."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 10.0):
        self.base_url = (base_url or getattr(settings, "REFUNDS_GATEWAY_URL", "")).rstrip("/")
        self.api_key = api_key if api_key is not None else getattr(settings, "REFUNDS_GATEWAY_API_KEY", "")
        self.timeout = timeout

    def send_payout(self, *, idempotency_key, amount, currency, account_holder, bank_name, account_number,
                    reference) -> PayoutResult:
        if not self.base_url:
            return PayoutResult(ok=False, error="REFUNDS_GATEWAY_URL is not set.")
        body = json.dumps({
            "amount": amount, "currency": currency, "reference": reference,
            "destination": {"account_holder": account_holder, "bank_name": bank_name,
                            "account_number": account_number},
        }).encode()
        req = urllib.request.Request(
            f"{self.base_url}/payouts", data=body, method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "Idempotency-Key": idempotency_key, "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (configured URL)
                data = json.loads(resp.read().decode() or "{}")
        except urllib.error.HTTPError as exc:
            return PayoutResult(ok=False, error=f"Gateway answered HTTP {exc.code}.")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            return PayoutResult(ok=False, error=f"Gateway unreachable: {getattr(exc, 'reason', exc)}.")
        except ValueError:
            return PayoutResult(ok=False, error="Gateway answered something that is not JSON.")
        if data.get("status") == "paid":
            return PayoutResult(ok=True, reference=str(data.get("id", ""))[:200])
        return PayoutResult(ok=False, reference=str(data.get("id", ""))[:200],
                            error=str(data.get("error") or f"Gateway status {data.get('status')!r}.")[:500])
