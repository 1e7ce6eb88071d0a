"""Domain errors of the credits program, raised by rules.services."""


class CurrencyLocked(Exception):
    """The store currency cannot change: amounts already stored are minor units of it."""


class DuplicateRule(Exception):
    """There is already a rule for this method (at most one per method)."""


class InvalidRule(ValueError):
    """The parameters of an allocation rule do not make a rule the engine can apply. The
    pages validate with RuleForm first; this is the services' own guard."""
