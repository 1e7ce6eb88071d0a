import pytest

from crm.cards import generate_card_number, luhn_check_digit, luhn_valid
from tests.factories import CustomerFactory


def test_generated_card_numbers_are_16_digit_store_cards_passing_luhn_and_unique():
    # when
    numbers = [generate_card_number() for _ in range(2000)]
    # then
    assert all(len(number) == 16 and number.isdigit() and number.startswith("9") for number in numbers)
    assert all(luhn_valid(number) for number in numbers)
    assert len(set(numbers)) == 2000


@pytest.mark.parametrize("number", ["4539578763621486", "4111111111111111", "79927398713", "5555555555554444",
                                    "0000000000000000"])
def test_luhn_valid_with_a_correct_check_digit_is_true(number):
    # when / then
    assert luhn_valid(number) is True


@pytest.mark.parametrize("number", ["4539578763621487", "4111111111111112", "79927398710", "5555555555554443",
                                    "0", "", "4539 5787 6362 1486", "453957876362148a", "-4539578763621486"])
def test_luhn_valid_with_a_wrong_check_digit_or_not_digits_is_false(number):
    # when / then
    assert luhn_valid(number) is False


@pytest.mark.parametrize(("partial", "digit"), [("7992739871", "3"), ("453957876362148", "6"),
                                                ("411111111111111", "1")])
def test_luhn_check_digit_of_known_numbers(partial, digit):
    # when / then
    assert luhn_check_digit(partial) == digit


def test_luhn_valid_catches_every_single_digit_typo_and_adjacent_swap():
    # given
    number = "4539578763621486"
    typos = {number[:i] + d + number[i + 1:] for i in range(16) for d in "0123456789"} - {number}
    swaps = {number[:i] + number[i + 1] + number[i] + number[i + 2:] for i in range(15)
             if number[i] != number[i + 1] and {number[i], number[i + 1]} != {"0", "9"}} - {number}
    # when / then
    assert not any(luhn_valid(typo) for typo in typos)
    assert not any(luhn_valid(swap) for swap in swaps)


@pytest.mark.django_db
def test_customer_created_with_member_id_name_and_email_gets_a_valid_card_number():
    # when
    customer = CustomerFactory(member_id="M-1", name="Ada", email="ada@example.com")
    # then
    customer.refresh_from_db()
    assert len(customer.card_number) == 16
    assert luhn_valid(customer.card_number)
    assert customer.card_last4 == customer.card_number[-4:]
