"""The store's expiry policy. The ledger asks it (settings.LEDGER_EXPIRY_POLICY points at
`expiry_for`) when it posts credits without an explicit expiry; the engine asks it for each
rule grant. The answer is fixed on the lot when it is granted: changing the policy later
never touches existing lots."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .models import AllocationRule, ExpiryMode, ProgramSettings, end_of_day


@dataclass(frozen=True)
class ExpiryPolicy:
    mode: str = ExpiryMode.NEVER
    days: int | None = None
    date: dt.date | None = None

    def expires_at(self, now: dt.datetime) -> dt.datetime | None:
        """When credits granted at `now` expire (None: never). A fixed date that has passed
        gives a moment in the past; callers must not grant such credits."""
        if self.mode == ExpiryMode.DAYS and self.days:
            return now + dt.timedelta(days=self.days)
        if self.mode == ExpiryMode.DATE and self.date:
            return end_of_day(self.date)
        return None

    def describe(self) -> str:
        if self.mode == ExpiryMode.DAYS and self.days:
            return f"Credits expire {self.days} day{'s' if self.days != 1 else ''} after they are granted."
        if self.mode == ExpiryMode.DATE and self.date:
            return f"Credits expire at the end of {self.date:%Y-%m-%d}."
        return "Credits never expire."

    def as_dict(self) -> dict:
        return {"mode": self.mode, "days": self.days, "date": self.date.isoformat() if self.date else None}

    def has_passed(self, now: dt.datetime) -> bool:
        at = self.expires_at(now)
        return at is not None and at <= now


def _policy(obj, prefix: str = "") -> ExpiryPolicy:
    return ExpiryPolicy(mode=getattr(obj, f"{prefix}expiry_mode"), days=getattr(obj, f"{prefix}expiry_days"),
                        date=getattr(obj, f"{prefix}expiry_date"))


def rule_policy(*, settings: ProgramSettings | None = None, rule: AllocationRule | None = None) -> ExpiryPolicy:
    """The expiry of credits granted by `rule`: the shared policy, or the rule's own while
    "all store credits share the same expiry" is off."""
    settings = settings or ProgramSettings.current()
    if settings.same_expiry_for_all or rule is None:
        return _policy(settings)
    return _policy(rule)


def staff_policy(settings: ProgramSettings | None = None) -> ExpiryPolicy:
    return _policy(settings or ProgramSettings.current(), "staff_")


def refund_policy(settings: ProgramSettings | None = None) -> ExpiryPolicy:
    return _policy(settings or ProgramSettings.current(), "refund_")


def expiry_for(*, source: str, now: dt.datetime, purpose: str | None = None, rule=None,
               **context) -> dt.datetime | None:
    """settings.LEDGER_EXPIRY_POLICY: the expiry of credits posted at `now`.

    purpose="refund"  refunds with store credits (default permanent)
    source="rule"     rule credits; `rule` is a method name ("first_order") or an
                      AllocationRule; per rule when the shared policy is off
    source="staff"/"bulk"  staff credits (default permanent)
    anything else     never expires
    """
    settings = ProgramSettings.current()
    if purpose == "refund":
        return refund_policy(settings).expires_at(now)
    if source == "rule":
        if isinstance(rule, str):
            rule = AllocationRule.objects.filter(method=rule).first()
        return rule_policy(settings=settings, rule=rule).expires_at(now)
    if source in ("staff", "bulk"):
        return staff_policy(settings).expires_at(now)
    return None
