"""Staff writes of the credits program: program settings, expiry policy, allocation rules.
Each runs in one transaction and writes an audit event with before/after. (Storefront
events are applied by rules.engine.)"""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import IntegrityError, transaction

from credits_admin.audit import record_change
from credits_admin.models import StoreSettings
from credits_admin.money import MAX_AMOUNT, forget_store_currency
from ledger.models import LedgerEntry

from .exceptions import CurrencyLocked, DuplicateRule, InvalidRule
from .models import MAX_TIERS, AllocationRule, ExpiryMode, Method, Mode, ProgramSettings

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
    if "currency" in changed or "store_name" in changed:  # this process shows the change at once
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


RULE_MODES = {
    Method.FIRST_ORDER: (Mode.FIXED, Mode.PER_VALUE),
    Method.PAID_ORDER: (Mode.FIXED, Mode.PER_VALUE),
    Method.REGISTRATION: (Mode.FIXED,),
    Method.ORDER_HISTORY: (Mode.FIXED,),
    Method.SPEND_HISTORY: (Mode.EVERY, Mode.TIERS),
}


def _money(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < MAX_AMOUNT


def check_rule(rule: AllocationRule) -> None:
    """Raise InvalidRule unless `rule` (saved or not) is one the engine can apply: a mode
    its method has, positive amounts where the mode needs them, 1-5 tiers with strictly
    increasing thresholds, a complete expiry."""
    modes = RULE_MODES.get(rule.method)
    if modes is None:
        raise InvalidRule(f"Unknown method {rule.method!r}.")
    if rule.mode not in modes:
        raise InvalidRule(f"A {rule.get_method_display().lower()} rule cannot use the mode {rule.mode!r}.")
    uses_tiers = rule.method == Method.ORDER_HISTORY or rule.mode == Mode.TIERS
    if not uses_tiers and not _money(rule.amount):
        raise InvalidRule("The amount of credits must be a whole number of minor units greater than zero.")
    if rule.mode in (Mode.PER_VALUE, Mode.EVERY) and not _money(rule.per_amount):
        raise InvalidRule("The amount X (for every X) must be a whole number of minor units greater than zero.")
    min_spend = rule.min_spend or 0
    if isinstance(min_spend, bool) or not isinstance(min_spend, int) or not 0 <= min_spend < MAX_AMOUNT:
        raise InvalidRule("The minimum spend must be zero or more minor units.")
    if uses_tiers:
        tiers = rule.tiers
        if not isinstance(tiers, list) or not 1 <= len(tiers) <= MAX_TIERS:
            raise InvalidRule(f"A tiered rule has 1 to {MAX_TIERS} tiers.")
        previous = 0
        for n, tier in enumerate(tiers, start=1):
            if not isinstance(tier, dict) or set(tier) != {"threshold", "amount"}:
                raise InvalidRule(f"Tier {n} must have a threshold and an amount, nothing else.")
            if not _money(tier["threshold"]) or not _money(tier["amount"]):
                raise InvalidRule(f"Tier {n}: the threshold and the credits must be greater than zero.")
            if tier["threshold"] <= previous:
                raise InvalidRule(f"Tier {n}: thresholds must increase from one tier to the next.")
            previous = tier["threshold"]
    elif rule.tiers:
        raise InvalidRule("Only order history and spend history tiers take tiers.")
    if rule.expiry_mode not in ExpiryMode.values:
        raise InvalidRule(f"Unknown expiry {rule.expiry_mode!r}.")
    if rule.expiry_mode == ExpiryMode.DAYS and not (isinstance(rule.expiry_days, int) and rule.expiry_days > 0):
        raise InvalidRule("Give for how many days the credits are valid.")
    if rule.expiry_mode == ExpiryMode.DATE and rule.expiry_date is None:
        raise InvalidRule("Give the last day the credits are valid.")


def _rule_values(rule: AllocationRule) -> dict:
    return _jsonable({name: getattr(rule, name) for name in RULE_FIELDS})


@transaction.atomic
def create_rule(*, actor, method: str, **values) -> AllocationRule:
    """Add the rule of `method`. Raises DuplicateRule when that method already has one,
    InvalidRule when the values do not make a rule (see check_rule)."""
    if AllocationRule.objects.filter(method=method).exists():
        raise DuplicateRule(method)
    rule = AllocationRule(method=method, updated_by=actor if getattr(actor, "is_authenticated", False) else None,
                          **{k: v for k, v in values.items() if k in RULE_FIELDS})
    check_rule(rule)
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
    check_rule(rule)
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
