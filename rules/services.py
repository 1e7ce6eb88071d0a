"""Staff writes of the credits program: program settings, expiry policy, allocation rules.
Each runs in one transaction and writes an audit event with before/after. (Storefront
events are applied by rules.engine.)"""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import IntegrityError, transaction

from credits_admin.audit import record_change
from credits_admin.models import StoreSettings
from credits_admin.money import forget_store_currency
from ledger.models import LedgerEntry

from .exceptions import CurrencyLocked, DuplicateRule
from .models import AllocationRule, ProgramSettings

RULE_FIELDS = ("mode", "amount", "per_amount", "min_spend", "tiers", "expiry_mode", "expiry_days", "expiry_date")
EXPIRY_FIELDS = ("same_expiry_for_all", "expiry_mode", "expiry_days", "expiry_date",
                 "staff_expiry_mode", "staff_expiry_days", "staff_expiry_date",
                 "refund_expiry_mode", "refund_expiry_days", "refund_expiry_date")


def effective_store_values(store: StoreSettings) -> dict:
    """What the store settings mean, with the environment's defaults for empty values."""
    return {
        "credits_enabled": store.credits_enabled,
        "store_name": store.store_name or django_settings.STORE_NAME,
        "currency": (store.currency or django_settings.STORE_CURRENCY).upper(),
        "refund_note": store.refund_note,
    }


def currency_lock_reason(current: str) -> str | None:
    """Why the currency cannot change now (None: it can)."""
    if LedgerEntry.objects.exists():
        return (f"The currency cannot change once credits have been posted: every amount is stored in minor "
                f"units of {current}.")
    if AllocationRule.objects.exists():
        return (f"Delete the allocation rules first: their amounts are stored in minor units of {current}.")
    return None


def _jsonable(values: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


@transaction.atomic
def update_program_settings(*, actor, credits_enabled: bool, store_name: str, currency: str,
                            refund_note: str) -> dict:
    """Save the program switch, store name, currency and refund note. Returns the changes
    {field: [before, after]} (empty: nothing written). Raises CurrencyLocked."""
    StoreSettings.load()
    store = StoreSettings.objects.select_for_update().get(pk=1)
    before = effective_store_values(store)
    after = {"credits_enabled": bool(credits_enabled), "store_name": store_name.strip(),
             "currency": currency.upper(), "refund_note": refund_note.strip()}
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if not changed:
        return {}
    if "currency" in changed:
        reason = currency_lock_reason(before["currency"])
        if reason:
            raise CurrencyLocked(reason)
    for name in changed:
        setattr(store, name, after[name])
    store.save()
    parts = []
    if "credits_enabled" in changed:
        parts.append("credits program switched " + ("on" if after["credits_enabled"] else "off"))
    parts.extend(f"{name.replace('_', ' ')} changed" for name in changed if name != "credits_enabled")
    record_change(actor=actor, action="rules.program_settings_changed", target=store,
                  summary="; ".join(parts).capitalize(),
                  before={k: v[0] for k, v in changed.items()}, after={k: v[1] for k, v in changed.items()})
    if "currency" in changed:
        forget_store_currency()
        transaction.on_commit(forget_store_currency)
    return changed


@transaction.atomic
def update_expiry_policy(*, actor, **values) -> dict:
    """Save the expiry policy (EXPIRY_FIELDS). Existing lots keep the expiry they were
    granted with. Returns the changes {field: [before, after]}."""
    unknown = set(values) - set(EXPIRY_FIELDS)
    if unknown:
        raise TypeError(f"Unknown expiry settings: {', '.join(sorted(unknown))}")
    ProgramSettings.objects.get_or_create(pk=1)
    program = ProgramSettings.objects.select_for_update().get(pk=1)
    before = _jsonable({k: getattr(program, k) for k in values})
    for name, value in values.items():
        setattr(program, name, value)
    after = _jsonable({k: getattr(program, k) for k in values})
    changed = {k: [before[k], after[k]] for k in values if before[k] != after[k]}
    if not changed:
        return {}
    program.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    program.save()
    record_change(actor=actor, action="rules.expiry_policy_changed", target=program,
                  summary=f"Expiry policy changed ({', '.join(sorted(changed))})",
                  before={k: v[0] for k, v in changed.items()}, after={k: v[1] for k, v in changed.items()})
    return changed


def _rule_values(rule: AllocationRule) -> dict:
    return _jsonable({name: getattr(rule, name) for name in RULE_FIELDS})


@transaction.atomic
def create_rule(*, actor, method: str, **values) -> AllocationRule:
    """Add the rule of `method`. Raises DuplicateRule when that method already has one."""
    if AllocationRule.objects.filter(method=method).exists():
        raise DuplicateRule(method)
    rule = AllocationRule(method=method, updated_by=actor if getattr(actor, "is_authenticated", False) else None,
                          **{k: v for k, v in values.items() if k in RULE_FIELDS})
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:  # added by someone else a moment ago
        raise DuplicateRule(method) from None
    record_change(actor=actor, action="rules.rule_added", target=rule, summary=f"{rule} added",
                  after={"method": method, **_rule_values(rule)})
    return rule


@transaction.atomic
def update_rule(*, actor, rule: AllocationRule, **values) -> dict:
    """Change a rule's parameters; it applies to events from now on (grants already made
    keep the parameters they recorded). Returns the changes."""
    rule = AllocationRule.objects.select_for_update().get(pk=rule.pk)
    before = _rule_values(rule)
    for name, value in values.items():
        if name in RULE_FIELDS:
            setattr(rule, name, value)
    after = _rule_values(rule)
    changed = {k: [before[k], after[k]] for k in RULE_FIELDS if before[k] != after[k]}
    if not changed:
        return {}
    rule.version += 1
    rule.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    rule.save()
    record_change(actor=actor, action="rules.rule_changed", target=rule,
                  summary=f"{rule} changed (version {rule.version})",
                  before={k: v[0] for k, v in changed.items()}, after={k: v[1] for k, v in changed.items()})
    return changed


@transaction.atomic
def delete_rule(*, actor, rule: AllocationRule) -> None:
    """Remove a rule. Grants it made keep its parameters in their details."""
    rule = AllocationRule.objects.select_for_update().get(pk=rule.pk)
    record_change(actor=actor, action="rules.rule_deleted", target=rule, summary=f"{rule} deleted",
                  before={"method": rule.method, "version": rule.version, **_rule_values(rule)})
    rule.delete()
