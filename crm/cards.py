"""Membership card numbers: 16 digits, the last a Luhn check digit."""

import secrets


def luhn_check_digit(partial: str) -> str:
    total = 0
    # Walking from the right of the partial number, every first digit gets doubled
    # (it becomes every second digit once the check digit is appended).
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) >= 2 and luhn_check_digit(number[:-1]) == number[-1]


def generate_card_number() -> str:
    # "9" marks a store card (ISO/IEC 7812 major industry identifier for national use).
    body = "9" + "".join(secrets.choice("0123456789") for _ in range(14))
    return body + luhn_check_digit(body)
