"""What a task costs in the sandbox: PixVerse's price list ($1 = 100 credits).

Money is kept in integer micro-dollars so that thousands of charges add up exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

MICRO = 1_000_000

#: USD per (quality, duration).
PRICES_USD: dict[tuple[str, str], float] = {
    ("360p", "5"): 0.45,
    ("360p", "8"): 0.90,
    ("540p", "5"): 0.45,
    ("540p", "8"): 0.90,
    ("720p", "5"): 0.60,
    ("720p", "8"): 1.20,
    ("1080p", "5"): 1.20,
    ("1080p", "8"): 2.40,
}


def to_micro(usd: float) -> int:
    return round(usd * MICRO)


def to_usd(micro: int) -> float:
    return round(micro / MICRO, 6)


def price_micro(parameters: Mapping[str, str]) -> int:
    """The price of a task with these resolved parameters, in micro-dollars."""
    key = (parameters.get("quality", "540p"), parameters.get("duration", "5"))
    return to_micro(PRICES_USD[key])


def concurrency_limit_for(balance_micro: int) -> int | None:
    """The service's formula: ``max(1, floor(balance * 0.10))`` up to $250, else no limit."""
    if balance_micro > 250 * MICRO:
        return None
    return max(1, balance_micro // (10 * MICRO))
