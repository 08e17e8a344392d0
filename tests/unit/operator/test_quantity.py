"""Quantity parsing, for the request-within-limit check."""

from __future__ import annotations

from decimal import Decimal

import pytest
from workerpool_operator.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)), ("1.5", Decimal("1.5")),
        ("512Mi", Decimal(512 * 2**20)), ("1Gi", Decimal(2**30)), ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)), ("100k", Decimal(100_000)), (".5", Decimal("0.5")),
        # Exa suffixes start with the exponent's letter (issue 24: "1Ei" was "not a quantity").
        ("1Ei", Decimal(2**60)), ("2E", Decimal(2 * 10**18)), ("1E3", Decimal(1000)),
    ],
)  # fmt: skip
def test_quantities_parse_to_exact_values(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "1 Gi", "1GB", "", "Mi", True])
def test_non_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_binary_and_decimal_units_compare_correctly() -> None:
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("1024Mi") == parse_quantity("1Gi")
