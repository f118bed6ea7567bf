"""The simulated world: population, merchants, trips and the account events between them.

Built once per run from the seed. Fraud planning adds events (credential changes, closed
accounts) before any legit traffic is generated, so the background of a victim agrees with what
happened to the account.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fraudops_simulator.customers import Customers, build_customers
from fraudops_simulator.geography import CITIES, HOME_CITIES
from fraudops_simulator.merchants import Merchants, build_merchants, terminal_count
from fraudops_simulator.params import DAY_S, SimulationConfig
from fraudops_simulator.trips import AWAY, OUTBOUND, RETURN, Trips, plan_trips

#: Device codes at or above this belong to fraudsters or are one-off (a work PC, a friend's phone).
TRANSIENT_DEVICE_BASE = 1 << 40
_KEY_SHIFT = 34


def of_trip(values: np.ndarray, trip: np.ndarray) -> np.ndarray:
    """`values` of each row's trip; rows on no trip (-1) get a filler their caller masks out. A small
    world (a few dozen customers over a few days) may plan no trip at all: nothing to index then."""
    if not len(values):
        return np.zeros(len(trip), dtype=values.dtype)
    return values[np.clip(trip, 0, None)]


@dataclass(frozen=True)
class Place:
    """Where each of a batch of (customer, time) pairs is: home, on a journey, or away."""

    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray
    utc_offset_h: np.ndarray
    phase: np.ndarray
    trip: np.ndarray


@dataclass
class World:
    config: SimulationConfig
    customers: Customers
    merchants: Merchants
    trips: Trips
    n_terminals: int
    _credential_events: list[tuple[int, float]] = field(default_factory=list)
    _credential_key: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _credential_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _busy: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    # --- account events ----------------------------------------------------------------------
    def add_credential_change(self, customer: int, t: float) -> None:
        """Record a password / phone / e-mail change; later digital rows carry it."""
        self._credential_events.append((customer, t))

    def freeze_events(self) -> None:
        """Index the recorded events for vectorised look-ups (call once, after planning)."""
        events = sorted(self._credential_events)
        customer = np.array([c for c, _ in events], dtype=np.int64)
        time = np.array([t for _, t in events], dtype=np.float64)
        self._credential_key = (customer << _KEY_SHIFT) | np.clip(time, 0, None).astype(np.int64)
        self._credential_time = time

    def credential_change_before(self, customer: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The last credential change at or before t (seconds since start) of each customer."""
        customer = np.asarray(customer, dtype=np.int64)
        t = np.asarray(t, dtype=np.float64)
        initial = self.customers.credential_change_s[customer]
        if len(self._credential_key) == 0:
            return initial
        key = (customer << _KEY_SHIFT) | np.clip(t, 0, None).astype(np.int64)
        index = np.searchsorted(self._credential_key, key, side="right") - 1
        safe = np.clip(index, 0, None)
        same = (index >= 0) & ((self._credential_key[safe] >> _KEY_SHIFT) == customer)
        return np.where(same & (self._credential_time[safe] <= t), self._credential_time[safe], initial)

    def close_account(self, customer: int, t: float) -> None:
        """No legit traffic after the day of t (bust-out and new-account fraud end the account)."""
        self.customers.closed_s[customer] = min(self.customers.closed_s[customer], t)

    def is_busy(self, customer: int, t0: float, t1: float) -> bool:
        return any(a <= t1 and t0 <= b for a, b in self._busy.get(customer, ()))

    def mark_busy(self, customer: int, t0: float, t1: float) -> None:
        """Reserve a customer for one episode so two episodes never interleave on one card."""
        self._busy.setdefault(customer, []).append((t0, t1))

    # --- where and with what ---------------------------------------------------------------------
    def place(self, customer: np.ndarray, t: np.ndarray) -> Place:
        """Home or trip destination of each customer at each time (journeys count as the origin)."""
        customer = np.asarray(customer, dtype=np.int64)
        c = self.customers
        trip, phase = self.trips.find(customer, t)
        away = phase == AWAY
        city = np.where(away, of_trip(self.trips.city, trip), c.home_city[customer])
        return Place(
            city=city,
            lat=np.where(away, CITIES.lat[city], c.lat[customer]),
            lon=np.where(away, CITIES.lon[city], c.lon[customer]),
            country=np.where(away, CITIES.country[city], c.home_country[customer]).astype(np.int16),
            utc_offset_h=np.where(away, CITIES.utc_offset_h[city], c.utc_offset_h[customer]).astype(np.int8),
            phase=phase,
            trip=trip,
        )

    def settle_journeys(self, customer: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Times moved out of journeys: nobody pays by card in a plane, so such rows happen on arrival."""
        trip, phase = self.trips.find(customer, t)
        after = rng.uniform(600.0, 3 * 3600.0, len(t))
        t = np.where(phase == OUTBOUND, of_trip(self.trips.arrive_s, trip) + after, t)
        return np.where(phase == RETURN, of_trip(self.trips.back_s, trip) + after, t)

    def phone(self, customer: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The customer's phone at time t (a new one after the purchase date)."""
        c = self.customers
        return np.where(t >= c.new_device_s[customer], c.new_device[customer], c.devices[customer, 0])

    def local_time_s(self, customer: int, day: float, hour: float) -> float:
        """Seconds since start of `hour` (local, may be fractional) on simulation day `day`."""
        return float(day * DAY_S + (hour - self.customers.utc_offset_h[customer]) * 3600.0)

    def new_device_ids(self, rng: np.random.Generator, k: int = 1) -> np.ndarray:
        """Device codes never used before (fraudster phones and PCs, one-off legit devices)."""
        return TRANSIENT_DEVICE_BASE + rng.integers(0, 1 << 39, size=k, dtype=np.int64)


def build_world(config: SimulationConfig, rng: np.random.Generator) -> World:
    """Merchants for the population's cities, then customers, then their trips."""
    n = config.n_customers
    weights = np.zeros(CITIES.n)
    weights[HOME_CITIES] = CITIES.home_weight[HOME_CITIES]
    customers_per_city = n * weights / weights.sum()
    merchants = build_merchants(customers_per_city, rng)
    customers = build_customers(n, config.span_s, merchants, rng)
    trips = plan_trips(customers, config.span_s, rng)
    world = World(config, customers, merchants, trips, terminal_count(merchants))
    # legit credential changes: a new phone means re-enrolling half the time, plus password resets
    changes = np.flatnonzero((customers.new_device >= 0) & (rng.random(n) < 0.5))
    for customer in changes:
        world.add_credential_change(int(customer), float(customers.new_device_s[customer]))
    resets = np.flatnonzero(rng.random(n) < 0.06)
    reset_s = np.maximum(rng.uniform(0, config.span_s, len(resets)), customers.opened_s[resets] + DAY_S)
    for customer, t in zip(resets, reset_s, strict=True):
        world.add_credential_change(int(customer), float(t))
    return world
