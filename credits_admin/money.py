"""Money is an int of minor units everywhere inside. This is the one place that turns
text typed by a person into minor units and minor units into text for a page, using the
store currency's exponent (KRW and JPY have none). Floats never touch money."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 exponents that differ from 2.
_EXPONENTS = {"KRW": 0, "JPY": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "KWD": 3, "BHD": 3, "JOD": 3}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "KRW": "₩", "JPY": "¥"}
MAX_AMOUNT = 10**15  # minor units; far above any real credit, far below BIGINT
MAX_INPUT_CHARS = 32


class MoneyParseError(ValueError):
    pass


def store_currency() -> str:
    """The currency chosen on the program settings page, else settings.STORE_CURRENCY."""
    from .store import store_facts

    return store_facts().currency


def forget_store_currency() -> None:
    """Call after changing StoreSettings (currency or name)."""
    from .store import forget_store_facts

    forget_store_facts()


def exponent(currency: str | None = None) -> int:
    return _EXPONENTS.get((currency or store_currency()).upper(), 2)


def parse_amount(text, *, currency: str | None = None, allow_negative: bool = False) -> int:
    """'12.34' -> 1234 (USD); '1,000' -> 1000 (KRW). Raises MoneyParseError with a message
    fit to show next to a form field."""
    exp = exponent(currency)
    raw = str(text if text is not None else "").strip()
    if len(raw) > MAX_INPUT_CHARS:
        raise MoneyParseError("That amount is too large.")
    if "e" in raw.lower():  # no amount a person types has an exponent ('1e999999' overflows)
        raise MoneyParseError("Enter a number, such as 12.50.")
    raw = raw.replace(",", "").replace("_", "")
    for symbol in _SYMBOLS.values():
        raw = raw.replace(symbol, "")
    raw = raw.strip()
    if not raw:
        raise MoneyParseError("Enter an amount.")
    try:
        value = Decimal(raw)
    except (InvalidOperation, ArithmeticError):
        raise MoneyParseError("Enter a number, such as 12.50.") from None
    if not value.is_finite():
        raise MoneyParseError("Enter a number, such as 12.50.")
    if value < 0 and not allow_negative:
        raise MoneyParseError("Enter a positive amount.")
    try:
        scaled = value.scaleb(exp)
        fractional = scaled != scaled.to_integral_value()
    except ArithmeticError:
        raise MoneyParseError("That amount is too large.") from None
    if fractional:
        if exp == 0:
            raise MoneyParseError("This currency has no fractional units; enter a whole number.")
        raise MoneyParseError(f"Use at most {exp} decimal places.")
    minor = int(scaled.to_integral_value(rounding=ROUND_HALF_UP))
    if abs(minor) >= MAX_AMOUNT:
        raise MoneyParseError("That amount is too large.")
    return minor


def to_major(minor: int, *, currency: str | None = None) -> Decimal:
    return Decimal(int(minor)).scaleb(-exponent(currency))


def format_amount(minor: int | None, *, currency: str | None = None, signed: bool = False,
                  symbol: bool = True) -> str:
    """1234 -> '$12.34'; with signed=True, '+$12.34' / '−$12.34'."""
    if minor is None:
        return ""
    minor = int(minor)
    exp = exponent(currency)
    cur = (currency or store_currency()).upper()
    major = Decimal(abs(minor)).scaleb(-exp)
    body = f"{major:,.{exp}f}"
    sym = _SYMBOLS.get(cur, "") if symbol else ""
    text = f"{sym}{body}" if sym else (f"{body} {cur}" if symbol else body)
    if minor < 0:
        return f"−{text}"
    if signed and minor > 0:
        return f"+{text}"
    return text


def input_value(minor: int | None, *, currency: str | None = None) -> str:
    """Minor units as a plain number for an <input> value: 1234 -> '12.34'."""
    if minor is None:
        return ""
    exp = exponent(currency)
    return f"{Decimal(int(minor)).scaleb(-exp):.{exp}f}"
