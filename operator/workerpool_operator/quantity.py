"""Kubernetes resource quantities ("500m", "1Gi", "1e3") as exact decimals.

Only what the spec checks need: parse and compare. Pure; must not import kubernetes (whose
`parse_quantity` would drag the client into the functional core).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}

# Same grammar as the CRD's pattern (apimachinery resource.Quantity).
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?$"
)


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Exact value of a quantity: parse_quantity("500m") == Decimal("0.5")."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity (examples: 500m, 2, 512Mi, 1Gi)")
    number, suffix = match["number"], match["suffix"] or ""
    try:
        # "E" and "Ei" are suffixes (exa, exbi); only "e"/"E" followed by digits is an exponent.
        if suffix in _SUFFIXES:
            return Decimal(number) * _SUFFIXES[suffix]
        return Decimal(number) * (Decimal(10) ** Decimal(suffix[1:]))
    except InvalidOperation as error:
        raise QuantityError(f"{value!r} is not a quantity") from error
