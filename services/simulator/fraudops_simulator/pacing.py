"""Keeps each customer's genuine whereabouts physically possible: no legit teleporting between shops.

Legit rows are drawn independently, so two of them can land seconds apart at shops 10 km apart —
an "impossible travel" that real customers never produce and that would drown the real signal.
This pass moves background rows later until every consecutive pair of a customer's genuine
located rows leaves time to get there (a walk or drive in town, a train, a flight), keeping
episode rows fixed. Fraud rows and VPN exits are not the customer's whereabouts and are ignored:
their jumps are exactly what detection should see.
"""

from __future__ import annotations

import numpy as np

from fraudops_simulator.geography import haversine_km, travel_duration_s
from fraudops_simulator.rows import Rows

IGNORED, ANCHOR, MOVABLE = 0, 1, 2
_PASSES = 6


def min_gap_s(distance_km: np.ndarray) -> np.ndarray:
    """The least time to cover a distance: 40 km/h across town, door-to-door journeys beyond 60 km."""
    return np.where(distance_km < 60.0, distance_km / 40.0 * 3600.0, travel_duration_s(distance_km))


def _by_customer_then_time(customer: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One int64 sort key: customer, then time at 1/8 s (one argsort beats a two-key lexsort)."""
    return (customer.astype(np.int64) << 34) + np.clip(t * 8.0, 0, (1 << 34) - 1).astype(np.int64)


class Pacer:
    """Per-customer last genuine location carried across output chunks."""

    def __init__(self, n_customers: int) -> None:
        self.last_t = np.full(n_customers, -np.inf)
        self.last_lat = np.zeros(n_customers)
        self.last_lon = np.zeros(n_customers)

    def pace(self, rows: Rows, rng: np.random.Generator) -> None:
        """Shift movable rows (in place) until no customer moves implausibly fast."""
        chain = np.flatnonzero(rows["paced"] != IGNORED)
        for _ in range(_PASSES):
            if len(chain) == 0:
                return
            chain = chain[
                np.argsort(_by_customer_then_time(rows["customer"][chain], rows["t"][chain]), kind="stable")
            ]
            customer, t = rows["customer"][chain], rows["t"][chain]
            lat, lon = rows["lat"][chain], rows["lon"][chain]
            first = np.ones(len(chain), dtype=bool)
            first[1:] = customer[1:] != customer[:-1]
            prev_t = np.where(first, self.last_t[customer], np.roll(t, 1))
            prev_lat = np.where(first, self.last_lat[customer], np.roll(lat, 1))
            prev_lon = np.where(first, self.last_lon[customer], np.roll(lon, 1))
            need = prev_t + min_gap_s(haversine_km(prev_lat, prev_lon, lat, lon))
            late = np.flatnonzero(t < need - 1.0)
            kind = rows["paced"][chain[late]]
            # a movable row waits until it can be there; a fixed episode row instead pushes the
            # movable row before it to after the whole run of episode rows it belongs to
            move_self = late[kind == MOVABLE]
            rows["t"][chain[move_self]] = need[move_self] + rng.uniform(60.0, 900.0, len(move_self))
            blocked = late[(kind == ANCHOR) & ~first[late]]
            pushed = blocked[rows["paced"][chain[blocked - 1]] == MOVABLE] - 1
            if len(pushed):
                breaks = np.flatnonzero((rows["paced"][chain] != ANCHOR) | first)
                breaks = np.append(breaks, len(chain))
                run_end = breaks[np.searchsorted(breaks, pushed + 1, side="right")] - 1
                gap = min_gap_s(haversine_km(lat[run_end], lon[run_end], lat[pushed], lon[pushed]))
                rows["t"][chain[pushed]] = t[run_end] + gap + rng.uniform(60.0, 900.0, len(pushed))
            moved = np.concatenate([move_self, pushed])
            if len(moved) == 0:
                return
            # only the customers whose rows moved can have new conflicts
            chain = chain[np.isin(customer, np.unique(customer[moved]))]

    def remember(self, rows: Rows) -> None:
        """Record the last genuine location of each customer from rows that were emitted."""
        chain = np.flatnonzero(rows["paced"] != IGNORED)
        if len(chain) == 0:
            return
        chain = chain[
            np.argsort(_by_customer_then_time(rows["customer"][chain], rows["t"][chain]), kind="stable")
        ]
        customer = rows["customer"][chain]
        last = np.ones(len(chain), dtype=bool)
        last[:-1] = customer[:-1] != customer[1:]
        chain, customer = chain[last], customer[last]
        self.last_t[customer] = rows["t"][chain]
        self.last_lat[customer] = rows["lat"][chain]
        self.last_lon[customer] = rows["lon"][chain]
