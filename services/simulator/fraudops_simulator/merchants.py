"""Merchants, their terminals and the spending character of each category.

Card-present merchants sit in a city (with 1–4 POS terminals, or several ATMs for the `cash`
operators); online merchants have no location and a country of their own. Each merchant has an
intrinsic risk: fraud episodes choose merchants in proportion to it, so some merchants collect
many frauds over time, as real cash-out merchants do, while legit traffic ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fraudops_simulator.geography import CITIES, COUNTRIES, HOME_CITIES, country_index
from fraudops_simulator.rows import CAT, CATEGORIES

N_CATEGORIES = len(CATEGORIES)


def _by_category(values: dict[str, float], default: float = 0.0) -> np.ndarray:
    array = np.full(N_CATEGORIES, default, dtype=np.float64)
    for name, value in values.items():
        array[CAT[name]] = value
    return array


#: Median purchase amount (EUR) and log-normal sigma of each category.
MEDIAN_AMOUNT = _by_category(
    {
        "GROCERY": 32, "RESTAURANT": 26, "FUEL": 55, "RETAIL": 45, "ELECTRONICS": 110, "TRAVEL": 260,
        "HOTEL": 170, "ENTERTAINMENT": 28, "UTILITIES": 85, "HEALTHCARE": 38, "ONLINE_MARKETPLACE": 42,
        "DIGITAL_GOODS": 8, "JEWELRY": 140, "GAMBLING": 35, "GIFT_CARDS": 35, "CRYPTO": 150,
        "MONEY_TRANSFER": 180, "CASH": 100, "P2P": 80, "OTHER": 30,
    },
    30.0,
)  # fmt: skip
AMOUNT_SIGMA = _by_category(
    {"GROCERY": 0.7, "FUEL": 0.4, "UTILITIES": 0.5, "GIFT_CARDS": 0.6, "CASH": 0.6, "RESTAURANT": 0.6},
    0.9,
)
#: POS merchants per 1,000 customers living in a home city.
POS_PER_1K = _by_category(
    {
        "GROCERY": 25, "RESTAURANT": 40, "FUEL": 10, "RETAIL": 30, "ELECTRONICS": 7, "TRAVEL": 4,
        "HOTEL": 3, "ENTERTAINMENT": 12, "HEALTHCARE": 10, "JEWELRY": 2, "GAMBLING": 1.5,
        "GIFT_CARDS": 1.5, "MONEY_TRANSFER": 1, "CASH": 6, "OTHER": 10,
    }
)  # fmt: skip
#: POS merchants in each destination city (tourists, business travellers, cash-out crews).
POS_PER_DESTINATION = _by_category(
    {
        "GROCERY": 3, "RESTAURANT": 6, "FUEL": 1, "RETAIL": 4, "ELECTRONICS": 2, "HOTEL": 4,
        "ENTERTAINMENT": 3, "JEWELRY": 2, "GAMBLING": 1, "GIFT_CARDS": 1, "MONEY_TRANSFER": 1, "CASH": 3,
    }
)  # fmt: skip
#: Online merchants per category (a fixed market, independent of the population size).
ONLINE_MERCHANTS = _by_category(
    {
        "GROCERY": 3, "RESTAURANT": 4, "RETAIL": 25, "ELECTRONICS": 12, "TRAVEL": 15, "HOTEL": 6,
        "ENTERTAINMENT": 10, "UTILITIES": 20, "HEALTHCARE": 3, "ONLINE_MARKETPLACE": 8,
        "DIGITAL_GOODS": 40, "JEWELRY": 4, "GAMBLING": 10, "GIFT_CARDS": 8, "CRYPTO": 8,
        "MONEY_TRANSFER": 6, "OTHER": 10,
    }
)  # fmt: skip
#: Probability that a purchase in the category is made online when both kinds of merchant exist.
ONLINE_SHARE = _by_category(
    {
        "GROCERY": 0.03, "RESTAURANT": 0.1, "RETAIL": 0.35, "ELECTRONICS": 0.5, "TRAVEL": 0.8, "HOTEL": 0.6,
        "ENTERTAINMENT": 0.4, "HEALTHCARE": 0.1, "JEWELRY": 0.3, "GAMBLING": 0.85, "GIFT_CARDS": 0.6,
        "MONEY_TRANSFER": 0.7, "OTHER": 0.3,
    }
)  # fmt: skip
#: Intrinsic fraud attractiveness by category (multiplied by per-merchant noise).
BASE_RISK = _by_category(
    {
        "ELECTRONICS": 1.5, "JEWELRY": 2.0, "GAMBLING": 3.0, "GIFT_CARDS": 3.0, "CRYPTO": 3.0,
        "MONEY_TRANSFER": 2.5, "DIGITAL_GOODS": 1.5, "ONLINE_MARKETPLACE": 1.2, "TRAVEL": 0.8, "CASH": 1.0,
    },
    0.3,
)  # fmt: skip

_ONLINE_COUNTRIES = {
    "GAMBLING": ("MT", "GI", "CY", "DE"),
    "CRYPTO": ("MT", "CY", "US", "GB", "DE", "DE"),
    "DIGITAL_GOODS": ("IE", "US", "LU", "GB", "DE", "DE", "DE", "DE"),
    "ONLINE_MARKETPLACE": ("DE", "DE", "DE", "DE", "LU", "IE", "CN"),
    "MONEY_TRANSFER": ("GB", "US", "DE"),
}
_DEFAULT_ONLINE_COUNTRIES = ("DE",) * 8 + ("NL", "IE", "GB", "US", "CN")


@dataclass(frozen=True)
class Merchants:
    """Struct of arrays over merchants (POS merchants first, sorted by city and category)."""

    category: np.ndarray  # int8
    city: np.ndarray  # int16, -1 for online merchants
    country: np.ndarray  # int16
    lat: np.ndarray
    lon: np.ndarray
    utc_offset_h: np.ndarray  # int8 (online: 0, never used for a row's local time)
    risk: np.ndarray
    terminal_start: np.ndarray  # int32 into the terminal index space
    n_terminals: np.ndarray  # int16
    pos_start: np.ndarray  # [city * N_CATEGORIES + category] -> first merchant
    pos_count: np.ndarray
    online_start: np.ndarray  # [category] -> first online merchant
    online_count: np.ndarray

    @property
    def n(self) -> int:
        return len(self.category)

    @property
    def is_online(self) -> np.ndarray:
        return self.city < 0

    def pick_pos(self, city: np.ndarray, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A POS merchant of `category` in `city` for each row (-1 where the city has none)."""
        key = np.asarray(city, dtype=np.int64) * N_CATEGORIES + category
        count = self.pos_count[key]
        chosen = self.pos_start[key] + np.floor(u * count).astype(np.int64)
        return np.where(count > 0, chosen, -1).astype(np.int32)

    def pick_online(self, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """An online merchant of `category` for each row (-1 where the category has none)."""
        count = self.online_count[category]
        chosen = self.online_start[category] + np.floor(u * count).astype(np.int64)
        return np.where(count > 0, chosen, -1).astype(np.int32)

    def pick_terminal(self, merchant: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One of the merchant's terminals (-1 for online merchants)."""
        merchant = np.asarray(merchant)
        count = self.n_terminals[merchant]
        chosen = self.terminal_start[merchant] + np.floor(u * count).astype(np.int64)
        return np.where(count > 0, chosen, -1).astype(np.int32)

    def risky_choice(self, rng: np.random.Generator, candidates: np.ndarray, size: int = 1) -> np.ndarray:
        """Merchants chosen the way fraudsters choose: in proportion to intrinsic risk."""
        weights = self.risk[candidates]
        return rng.choice(candidates, size=size, p=weights / weights.sum())

    def in_city(self, city: int, categories: list[int]) -> np.ndarray:
        """All POS merchants of the given categories in one city."""
        parts = [
            np.arange(self.pos_start[city * N_CATEGORIES + c], self.pos_start[city * N_CATEGORIES + c]
                      + self.pos_count[city * N_CATEGORIES + c])
            for c in categories
        ]  # fmt: skip
        return np.concatenate(parts).astype(np.int32)

    def online(self, categories: list[int]) -> np.ndarray:
        """All online merchants of the given categories."""
        parts = [
            np.arange(self.online_start[c], self.online_start[c] + self.online_count[c]) for c in categories
        ]
        return np.concatenate(parts).astype(np.int32)


def build_merchants(customers_per_city: np.ndarray, rng: np.random.Generator) -> Merchants:
    """Merchants for every city (scaled by its customers) plus a fixed online market."""
    n_cities = CITIES.n
    counts = np.zeros((n_cities, N_CATEGORIES), dtype=np.int64)
    home = np.zeros(n_cities, dtype=bool)
    home[HOME_CITIES] = True
    scaled = np.ceil(np.outer(customers_per_city / 1000.0, POS_PER_1K)).astype(np.int64)
    counts[home] = np.maximum(scaled[home], (POS_PER_1K > 0).astype(np.int64))
    counts[~home] = POS_PER_DESTINATION.astype(np.int64)

    pos_count = counts.reshape(-1)
    pos_start = np.concatenate([[0], np.cumsum(pos_count)[:-1]])
    n_pos = int(pos_count.sum())
    pos_city = np.repeat(np.repeat(np.arange(n_cities), N_CATEGORIES), pos_count).astype(np.int16)
    pos_category = np.repeat(np.tile(np.arange(N_CATEGORIES), n_cities), pos_count).astype(np.int8)

    online_count = ONLINE_MERCHANTS.astype(np.int64)
    online_start = n_pos + np.concatenate([[0], np.cumsum(online_count)[:-1]])
    online_category = np.repeat(np.arange(N_CATEGORIES), online_count).astype(np.int8)
    online_country = np.empty(len(online_category), dtype=np.int16)
    for i, code in enumerate(online_category):
        choices = _ONLINE_COUNTRIES.get(CATEGORIES[code].name, _DEFAULT_ONLINE_COUNTRIES)
        online_country[i] = country_index(choices[rng.integers(len(choices))])

    category = np.concatenate([pos_category, online_category])
    city = np.concatenate([pos_city, np.full(len(online_category), -1, dtype=np.int16)])
    n = len(category)
    jitter = rng.normal(0.0, 0.04, size=(n_pos, 2))
    lat = np.concatenate([CITIES.lat[pos_city] + jitter[:, 0], np.full(len(online_category), np.nan)])
    lon = np.concatenate([CITIES.lon[pos_city] + jitter[:, 1] * 1.5, np.full(len(online_category), np.nan)])
    # A few "magnet" merchants (lax checks, resellable goods) attract a large share of fraud.
    risk = BASE_RISK[category] * rng.lognormal(0.0, 0.5, size=n)
    risk[rng.random(n) < 0.03] *= 8.0

    n_terminals = np.where(pos_category == CAT["CASH"], rng.integers(2, 7, n_pos), rng.integers(1, 5, n_pos))
    n_terminals = np.concatenate([n_terminals, np.zeros(len(online_category), dtype=np.int64)])
    terminal_start = np.concatenate([[0], np.cumsum(n_terminals)[:-1]])
    return Merchants(
        category=category,
        city=city,
        country=np.concatenate([CITIES.country[pos_city], online_country]).astype(np.int16),
        lat=np.round(lat, 5),
        lon=np.round(lon, 5),
        utc_offset_h=np.concatenate([CITIES.utc_offset_h[pos_city], np.zeros(len(online_category), np.int8)]),
        risk=risk,
        terminal_start=terminal_start.astype(np.int32),
        n_terminals=n_terminals.astype(np.int16),
        pos_start=pos_start.astype(np.int64),
        pos_count=pos_count,
        online_start=online_start.astype(np.int64),
        online_count=online_count,
    )


def terminal_count(merchants: Merchants) -> int:
    return int(merchants.terminal_start[-1] + merchants.n_terminals[-1]) if merchants.n else 0


__all__ = ["COUNTRIES", "Merchants", "build_merchants"]
