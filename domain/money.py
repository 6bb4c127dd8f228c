"""Money rules: ISO 4217 currencies, their decimal places, and amounts as ``Decimal``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["CURRENCY_DECIMALS", "money_problem", "normalize_amount"]

_TWO_DECIMALS = [
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BOV",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHE",
    "CHF",
    "CHW",
    "CNY",
    "COP",
    "COU",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MXV",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "USN",
    "UYU",
    "UZS",
    "VED",
    "VES",
    "WST",
    "XCD",
    "XCG",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]
_ZERO_DECIMALS = [
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
]
_THREE_DECIMALS = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
_FOUR_DECIMALS = ["CLF", "UYW"]

CURRENCY_DECIMALS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS, 2),
    **dict.fromkeys(_ZERO_DECIMALS, 0),
    **dict.fromkeys(_THREE_DECIMALS, 3),
    **dict.fromkeys(_FOUR_DECIMALS, 4),
}


def _places(amount: Decimal) -> int:
    """Decimal places an amount needs, counted exactly: 10.500 -> 1, 1.000...001 -> 30.

    ``Decimal.normalize()`` would round to the context's 28 digits first, so that
    1.000000000000000000000000000001 would pass for 1 and be recorded as 1.00.
    """
    _sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite, so never 'n', 'N' or 'F'
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros) if any(digits) else 0


def money_problem(amount: Decimal, currency: str) -> str | None:
    """Say what is wrong with an amount in a currency, or None when it is acceptable.

    An amount may not have more decimal places than its currency (SPEC §2: at most 2 for
    2-decimal currencies, ISO 4217's minor units otherwise); zeros after the last significant
    place do not count (10.500 USD is 10.50). Nothing is ever rounded.
    """
    places = CURRENCY_DECIMALS.get(currency)
    if places is None:
        return f"{currency!r} is not an ISO 4217 currency code (such as USD, EUR, CAD)"
    if not amount.is_finite():
        return "the amount must be a finite number"
    if amount <= 0:
        return "the amount must be greater than zero"
    if amount.adjusted() >= 15:
        return "the amount is too large"
    if _places(amount) > places:
        return f"{currency} amounts have at most {places} decimal places"
    return None


def normalize_amount(amount: Decimal, currency: str) -> Decimal:
    """Write an acceptable amount with exactly the currency's decimal places (10.5 USD -> 10.50).

    Only zeros are added or dropped: :func:`money_problem` has refused any amount with more
    significant places, and at most 15 + 4 digits fit the context's 28 without rounding.
    """
    try:
        return amount.quantize(Decimal(1).scaleb(-CURRENCY_DECIMALS[currency]))
    except InvalidOperation:  # pragma: no cover - money_problem() refuses what cannot quantize
        return amount
