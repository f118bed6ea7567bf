"""Legit travel: weekend trips inside the country and holidays abroad, at plausible speed.

Travel is what makes "far from home", "new country" and "foreign IP" ambiguous signals: a
quarter of the customers travel several times a year. Each trip has an outbound journey, a stay
and a return journey; rows that fall inside a journey are moved to its arrival, so consecutive
transactions of a traveller never imply more than ~800 km/h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fraudops_simulator.customers import Customers
from fraudops_simulator.geography import CITIES, HOME_CITIES, haversine_km, travel_duration_s
from fraudops_simulator.params import DAY_S

HOME, OUTBOUND, AWAY, RETURN = 0, 1, 2, 3
_KEY_SHIFT = 34  # customer << 34 | seconds: 2**34 s is ~544 years


@dataclass(frozen=True)
class Trips:
    """Struct of arrays over trips, sorted by (customer, departure)."""

    customer: np.ndarray
    depart_s: np.ndarray
    arrive_s: np.ndarray
    return_s: np.ndarray  # departure of the journey home
    back_s: np.ndarray  # arrival at home
    city: np.ndarray
    key: np.ndarray

    @property
    def n(self) -> int:
        return len(self.customer)

    def find(self, customer: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each (customer, time): the trip index (-1 none) and the phase (HOME..RETURN)."""
        customer = np.asarray(customer, dtype=np.int64)
        t = np.asarray(t, dtype=np.float64)
        if self.n == 0:
            return np.full(len(t), -1, dtype=np.int64), np.zeros(len(t), dtype=np.int8)
        key = (customer << _KEY_SHIFT) | np.clip(t, 0, None).astype(np.int64)
        index = np.searchsorted(self.key, key, side="right") - 1
        safe = np.clip(index, 0, None)
        inside = (
            (index >= 0)
            & (self.customer[safe] == customer)
            & (t < self.back_s[safe])
            & (t >= self.depart_s[safe])
        )
        phase = np.select(
            [t < self.arrive_s[safe], t < self.return_s[safe]], [OUTBOUND, AWAY], default=RETURN
        ).astype(np.int8)
        return np.where(inside, index, -1), np.where(inside, phase, HOME).astype(np.int8)

    def is_away(self, customer: int, t0: float, t1: float) -> bool:
        """Whether the customer is travelling at any time in [t0, t1] (for choosing fraud victims)."""
        lo = np.searchsorted(self.key, customer << _KEY_SHIFT)
        hi = np.searchsorted(self.key, (customer + 1) << _KEY_SHIFT)
        return bool(np.any((self.depart_s[lo:hi] <= t1) & (self.back_s[lo:hi] >= t0)))

    def has_travelled_abroad(self, customer: int, before_s: float, home_country: int) -> bool:
        lo = np.searchsorted(self.key, customer << _KEY_SHIFT)
        hi = np.searchsorted(self.key, (customer + 1) << _KEY_SHIFT)
        abroad = CITIES.country[self.city[lo:hi]] != home_country
        return bool(np.any(abroad & (self.depart_s[lo:hi] < before_s)))


def plan_trips(customers: Customers, span_s: float, rng: np.random.Generator) -> Trips:
    """Trips of every customer over the span (a quarter of them are frequent travellers)."""
    n = customers.n
    per_year = np.where(rng.random(n) < 0.25, 5.0, 0.8)
    count = rng.poisson(per_year * span_s / (365 * DAY_S))
    customer = np.repeat(np.arange(n, dtype=np.int64), count)
    m = len(customer)
    stay_days = np.clip(np.round(rng.lognormal(np.log(5), 0.5, m)), 2, 16)
    local_hour = rng.uniform(5, 20, m)
    depart_day = np.floor(rng.uniform(0, span_s / DAY_S, m))
    offset = customers.utc_offset_h[customer].astype(np.float64)
    depart = depart_day * DAY_S + (local_hour - offset) * 3600.0
    depart = np.maximum(depart, customers.opened_s[customer] + DAY_S)

    home_city = customers.home_city[customer]
    home_country = customers.home_country[customer]
    domestic = rng.random(m) < 0.35
    domestic_city = rng.choice(
        HOME_CITIES, size=m, p=CITIES.home_weight[HOME_CITIES] / CITIES.home_weight[HOME_CITIES].sum()
    )
    abroad_city = rng.choice(CITIES.n, size=m, p=CITIES.travel_weight / CITIES.travel_weight.sum())
    city = np.where(domestic & (CITIES.country[domestic_city] == home_country), domestic_city, abroad_city)
    city = np.where(city == home_city, rng.choice(HOME_CITIES[:3], size=m), city)
    city = np.where(city == home_city, HOME_CITIES[4], city).astype(np.int16)

    journey = travel_duration_s(
        haversine_km(customers.lat[customer], customers.lon[customer], CITIES.lat[city], CITIES.lon[city])
    )
    arrive = depart + journey
    leave = depart + stay_days * DAY_S
    back = leave + journey

    order = np.lexsort((depart, customer))
    columns = [a[order] for a in (customer, depart, arrive, leave, back, city)]
    keep = np.ones(m, dtype=bool)
    for _ in range(8):  # drop trips that start before the previous kept trip is over
        kept = [c[keep] for c in columns]
        overlap = np.zeros(len(kept[0]), dtype=bool)
        overlap[1:] = (kept[0][1:] == kept[0][:-1]) & (kept[1][1:] < kept[4][:-1] + DAY_S)
        if not overlap.any():
            break
        keep[np.flatnonzero(keep)[overlap]] = False
    kept = [c[keep] for c in columns]
    customer = kept[0].astype(np.int64)
    return Trips(
        customer=customer,
        depart_s=kept[1],
        arrive_s=kept[2],
        return_s=kept[3],
        back_s=kept[4],
        city=kept[5],
        key=(customer << _KEY_SHIFT) | np.clip(kept[1], 0, None).astype(np.int64),
    )
