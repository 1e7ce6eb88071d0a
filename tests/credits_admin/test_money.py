import pytest

from credits_admin.money import MoneyParseError, format_amount, input_value, parse_amount

NOT_A_NUMBER = "Enter a number, such as 12.50."


@pytest.fixture
def usd(settings):
    settings.STORE_CURRENCY = "USD"


@pytest.fixture(params=["KRW", "JPY"])
def no_fraction_currency(settings, request):
    settings.STORE_CURRENCY = request.param
    return request.param


@pytest.mark.parametrize(("text", "minor"), [
    ("12.34", 1234), ("12", 1200), ("12.3", 1230), ("0.01", 1), (" 12.34 ", 1234), ("$1,234.50", 123450),
    ("1_000", 100000), ("9999999999999.99", 999_999_999_999_999), ("0", 0), (12, 1200),
])
def test_parse_amount_in_usd_gives_cents(usd, text, minor):
    # when / then
    assert parse_amount(text) == minor


@pytest.mark.parametrize(("text", "message"), [
    ("12.345", "Use at most 2 decimal places."),
    ("0.001", "Use at most 2 decimal places."),
    ("abc", NOT_A_NUMBER),
    ("12,34.5.6", NOT_A_NUMBER),
    ("", "Enter an amount."),
    ("   ", "Enter an amount."),
    ("$", "Enter an amount."),
    ("NaN", NOT_A_NUMBER),
    ("sNaN", NOT_A_NUMBER),
    ("Infinity", NOT_A_NUMBER),
    ("-Infinity", NOT_A_NUMBER),
    ("inf", NOT_A_NUMBER),
    ("-5", "Enter a positive amount."),
    ("-0.01", "Enter a positive amount."),
    ("1e400", NOT_A_NUMBER),  # no amount a person types has an exponent
    ("1e-400", NOT_A_NUMBER),
    ("1E999999999", NOT_A_NUMBER),
    ("1" * 33, "That amount is too large."),
    ("10000000000000", "That amount is too large."),
    ("99999999999999999999999999", "That amount is too large."),
])
def test_parse_amount_in_usd_of_bad_text_raises_a_message_for_the_field(usd, text, message):
    # when
    with pytest.raises(MoneyParseError) as excinfo:
        parse_amount(text)
    # then
    assert str(excinfo.value) == message


@pytest.mark.parametrize(("text", "minor"), [("-5", -500), ("-0.01", -1), ("5", 500)])
def test_parse_amount_with_negatives_allowed_keeps_the_sign(usd, text, minor):
    # when / then
    assert parse_amount(text, allow_negative=True) == minor


def test_parse_amount_with_negatives_allowed_still_rejects_huge_values(usd):
    # when
    with pytest.raises(MoneyParseError) as excinfo:
        parse_amount("-10000000000000", allow_negative=True)
    # then
    assert str(excinfo.value) == "That amount is too large."


@pytest.mark.parametrize(("text", "minor"), [("1,000", 1000), ("1000", 1000), ("1.0", 1), ("₩5,000", 5000),
                                             ("¥5,000", 5000)])
def test_parse_amount_in_a_currency_without_fractions_gives_whole_units(no_fraction_currency, text, minor):
    # when / then
    assert parse_amount(text) == minor


@pytest.mark.parametrize("text", ["1.5", "0.1", "1000.01"])
def test_parse_amount_in_a_currency_without_fractions_rejects_fractions(no_fraction_currency, text):
    # when
    with pytest.raises(MoneyParseError) as excinfo:
        parse_amount(text)
    # then
    assert str(excinfo.value) == "This currency has no fractional units; enter a whole number."


def test_parse_amount_in_a_currency_without_fractions_rejects_huge_values(no_fraction_currency):
    # when
    with pytest.raises(MoneyParseError) as excinfo:
        parse_amount("1000000000000000")
    # then
    assert str(excinfo.value) == "That amount is too large."


def test_parse_amount_with_an_explicit_currency_ignores_the_store_currency(usd):
    # when / then
    assert parse_amount("1,000", currency="KRW") == 1000
    assert parse_amount("1", currency="KWD") == 1000


@pytest.mark.parametrize(("minor", "kwargs", "text"), [
    (1234, {}, "$12.34"),
    (1234, {"signed": True}, "+$12.34"),
    (-1234, {}, "−$12.34"),
    (-1234, {"signed": True}, "−$12.34"),
    (0, {"signed": True}, "$0.00"),
    (5, {}, "$0.05"),
    (123456789, {}, "$1,234,567.89"),
    (1234, {"symbol": False}, "12.34"),
    (1234, {"currency": "EUR"}, "€12.34"),
    (1234, {"currency": "CHF"}, "12.34 CHF"),
    (None, {}, ""),
])
def test_format_amount_in_usd(usd, minor, kwargs, text):
    # when / then
    assert format_amount(minor, **kwargs) == text


def test_format_amount_in_won_and_yen_has_no_decimals(settings):
    # given
    settings.STORE_CURRENCY = "KRW"
    # when / then
    assert format_amount(1000) == "₩1,000"
    assert format_amount(-1000, signed=True) == "−₩1,000"
    assert format_amount(1000, currency="JPY", signed=True) == "+¥1,000"


@pytest.mark.parametrize(("currency", "minor", "text"), [
    ("USD", 1234, "12.34"), ("USD", 1200, "12.00"), ("USD", 5, "0.05"), ("USD", -5, "-0.05"),
    ("USD", 123456789, "1234567.89"), ("KRW", 1000, "1000"), ("JPY", 7, "7"), ("USD", None, ""),
])
def test_input_value_is_a_plain_number_that_parses_back(settings, currency, minor, text):
    # given
    settings.STORE_CURRENCY = currency
    # when
    value = input_value(minor)
    # then
    assert value == text
    if minor is not None:
        assert parse_amount(value, allow_negative=True) == minor
