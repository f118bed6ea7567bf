"""The toolkit every episode generator uses: choosing victims and times, and making rows.

An episode is a short story told in rows: a victim (or a mule, or a synthetic account), a time,
and a handful of transactions that break some of the victim's habits while keeping others.
The helpers here keep each pattern's code down to that story.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fraudops_simulator.geography import (
    CITIES,
    DATACENTER_FIRST_OCTETS,
    HOME_CITIES,
    haversine_km,
    ip_prefix_24,
    isp_first_octets,
)
from fraudops_simulator.merchants import MEDIAN_AMOUNT
from fraudops_simulator.pacing import ANCHOR, IGNORED
from fraudops_simulator.params import DAY_S
from fraudops_simulator.rows import AUTH, CAT, CH, EXTERNAL_BENEFICIARY_BASE, TT, Part, Rows, part
from fraudops_simulator.world import World


@dataclass
class Ring:
    """Infrastructure that fraud rings reuse across episodes: what delayed-label features can learn.

    A device farm, proxy address ranges, mule and scam payee accounts and the online merchants
    with weak checks are each shared by several episodes, so an entity's past fraud labels say
    something about its next transaction, as in real life; the first use of each stays unknown.
    """

    devices: np.ndarray
    ip_prefixes: np.ndarray
    mule_payees: np.ndarray
    scam_payees: np.ndarray
    testing_merchants: np.ndarray
    cashout_merchants: np.ndarray  # online: gambling, gift cards, crypto, money transfer


def build_ring(world: World, rng: np.random.Generator, expected_episodes: int) -> Ring:
    """A ring sized so that each piece of infrastructure serves about six episodes."""
    size = max(3, expected_episodes // 6)
    m = world.merchants
    digital = m.online([CAT["DIGITAL_GOODS"]])
    cashout = m.online([CAT["GAMBLING"], CAT["GIFT_CARDS"], CAT["CRYPTO"], CAT["MONEY_TRANSFER"]])
    proxies = ip_prefix_24(DATACENTER_FIRST_OCTETS[rng.integers(0, len(DATACENTER_FIRST_OCTETS), size)], rng)
    return Ring(
        devices=world.new_device_ids(rng, size),
        ip_prefixes=proxies,
        mule_payees=EXTERNAL_BENEFICIARY_BASE + rng.integers(10**11, 10**12, size),
        scam_payees=EXTERNAL_BENEFICIARY_BASE + rng.integers(10**11, 10**12, max(2, size // 2)),
        testing_merchants=m.risky_choice(rng, digital, size=min(4, len(digital))),
        cashout_merchants=cashout,
    )


@dataclass
class Kit:
    """The world, the planning random stream and the ring: everything an episode generator needs."""

    world: World
    rng: np.random.Generator
    ring: Ring
    #: episodes start no earlier than this (the emerging pattern of a harder run starts at mid-history)
    not_before_s: float = 0.0

    # --- who and when ---------------------------------------------------------------------------
    def victim(
        self,
        duration_s: float,
        *,
        min_account_age_days: float = 30.0,
        earliest_s: float = DAY_S,
        at_home: bool = True,
        pool: np.ndarray | None = None,
        accept: Callable[[int, float], bool] | None = None,
        attempts: int = 80,
    ) -> tuple[int, float] | None:
        """A customer free for `duration_s` from a random start time (and that time), or None.

        Busy customers (already in an episode around then) are skipped so episodes never overlap
        on one card; `at_home` also skips customers who travel then, so "far from home" really
        means the card is somewhere its owner is not.
        """
        c, span = self.world.customers, self.world.config.span_s
        for _ in range(attempts):
            customer = int(self.rng.choice(pool) if pool is not None else self.rng.integers(c.n))
            lo = max(earliest_s, self.not_before_s, c.opened_s[customer] + min_account_age_days * DAY_S)
            hi = span - duration_s - DAY_S
            if hi <= lo:
                continue
            t0 = float(self.rng.uniform(lo, hi))
            if c.closed_s[customer] < t0 + duration_s + DAY_S or self.world.is_busy(
                customer, t0 - DAY_S, t0 + duration_s + DAY_S
            ):
                continue
            if at_home and self.world.trips.is_away(customer, t0 - 2 * DAY_S, t0 + duration_s + DAY_S):
                continue
            if accept is not None and not accept(customer, t0):
                continue
            # episodes place rows at a local hour of t0's day, so the whole day around is reserved
            self.world.mark_busy(customer, t0 - DAY_S, t0 + duration_s + DAY_S)
            return customer, t0
        return None

    def victim_at(
        self, t: float, duration_s: float, *, min_account_age_days: float = 3.0, attempts: int = 40
    ) -> int | None:
        """A customer free at a given time (the second and later accounts of a multi-account episode)."""
        c = self.world.customers
        for _ in range(attempts):
            customer = int(self.rng.integers(c.n))
            if (
                c.opened_s[customer] > t - min_account_age_days * DAY_S
                or c.closed_s[customer] < t + duration_s + DAY_S
            ):
                continue
            if self.world.is_busy(customer, t - DAY_S, t + duration_s + DAY_S):
                continue
            self.world.mark_busy(customer, t, t + duration_s)
            return customer
        return None

    def at_local_hour(self, customer: int, t: float, hour_lo: float, hour_hi: float) -> float:
        """A time on the local day of t, at a local hour in [hour_lo, hour_hi) (may pass midnight)."""
        offset = float(self.world.customers.utc_offset_h[customer])
        day = np.floor((t / 3600.0 + offset) / 24.0)
        hour = self.rng.uniform(hour_lo, hour_hi)
        return float(day * DAY_S + (hour - offset) * 3600.0)

    # --- amounts ---------------------------------------------------------------------------------
    def typical_amount(self, customer: int, category: int) -> float:
        """What this customer usually spends in the category (the median of their background)."""
        return float(MEDIAN_AMOUNT[category] * np.exp(0.8 * self.world.customers.amount_log_scale[customer]))

    def amounts(self, low: float, high: float, k: int, *, step: float = 0.01) -> np.ndarray:
        """k log-uniform amounts in [low, high], rounded to `step` (cash: 10 or 20)."""
        values = np.exp(self.rng.uniform(np.log(low), np.log(high), k))
        return np.maximum(np.round(values / step) * step, step)

    # --- identities ------------------------------------------------------------------------------
    def card(self, customer: int) -> int:
        """One of the customer's cards (the second, where there is one, 30% of the time)."""
        cards = self.world.customers.cards[customer]
        return int(cards[1] if cards[1] >= 0 and self.rng.random() < 0.3 else cards[0])

    def own_device(self, customer: int, t: float) -> int:
        return int(self.world.phone(np.array([customer]), np.array([t]))[0])

    def own_ip(self, customer: int, k: int = 1) -> np.ndarray:
        return self.world.customers.ip_prefix[customer] | self.rng.integers(1, 255, k)

    def fraud_device(self) -> int:
        """A fraudster's device: from the ring's farm half the time, else a fresh one."""
        if self.rng.random() < 0.5:
            return int(self.rng.choice(self.ring.devices))
        return int(self.world.new_device_ids(self.rng)[0])

    def fraud_origin(self, domestic_share: float = 0.5) -> int:
        """Where a fraudster appears to be: a residential proxy in a home city or a cash-out city."""
        if self.rng.random() < domestic_share:
            return int(self.rng.choice(HOME_CITIES))
        return int(self.rng.choice(CITIES.n, p=CITIES.fraud_weight / CITIES.fraud_weight.sum()))

    def fraud_ip(self, city: int, k: int = 1) -> np.ndarray:
        """Addresses of a fraudster in `city`: a ring proxy range or a local ISP."""
        host = self.rng.integers(1, 255, k)
        if self.rng.random() < 0.4:
            return self.rng.choice(self.ring.ip_prefixes) | host
        return ip_prefix_24(isp_first_octets(np.array([CITIES.country[city]])), self.rng) | host

    def foreign_city(
        self, home_country: int, *, min_km: float = 0.0, home_lat: float = 0.0, home_lon: float = 0.0
    ) -> int:
        """A fraud cash-out city abroad, at least `min_km` from a point."""
        far = haversine_km(home_lat, home_lon, CITIES.lat, CITIES.lon) >= min_km
        allowed = (CITIES.country != home_country) & far & (CITIES.fraud_weight > 0)
        weights = np.where(allowed, CITIES.fraud_weight, 0.0)
        return int(self.rng.choice(CITIES.n, p=weights / weights.sum()))

    # --- rows -------------------------------------------------------------------------------------
    # Parts only record what is special about them; location, category, terminal and credential
    # columns are derived for all episode rows at once in `resolve_rows` (per-part NumPy was slow).

    def at_merchants(
        self, customer: int, t: ArrayLike, merchant: ArrayLike, amount: ArrayLike, *, card: int, fraud: bool,
        **overrides: Any,
    ) -> Part:  # fmt: skip
        """Card-present rows at shops or ATMs (POS / ATM with one of the merchant's terminals)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        values = dict(t=t, customer=customer, card=card, merchant=merchant, amount=amount, is_fraud=int(fraud),
                      terminal=_PICK_TERMINAL, derive=_CARD_PRESENT)  # fmt: skip
        values.update(overrides)
        return part(len(t), **values)

    def online(
        self, customer: int, t: ArrayLike, amount: ArrayLike, *, device: ArrayLike, ip: ArrayLike,
        city: int | None, fraud: bool, **overrides: Any,
    ) -> Part:  # fmt: skip
        """App / web rows seen from `city` (None: the customer's home) with the given device and IP."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        values = dict(t=t, customer=customer, amount=amount, channel=CH["WEB"], device=device, ip=ip,
                      credential_change=_CURRENT_CREDENTIALS, is_fraud=int(fraud), derive=_ONLINE,
                      place_city=-1 if city is None else city)  # fmt: skip
        values.update(overrides)
        return part(len(t), **values)

    def transfers(
        self, customer: int, t: ArrayLike, amount: ArrayLike, payee: ArrayLike, *, device: ArrayLike,
        ip: ArrayLike, city: int | None, fraud: bool, **overrides: Any,
    ) -> Part:  # fmt: skip
        """P2P transfers to payees (our account numbers or external codes)."""
        channel = overrides.pop(
            "channel", CH["MOBILE_APP"] if self.world.customers.app_user[customer] else CH["WEB"]
        )
        return self.online(
            customer, t, amount, device=device, ip=ip, city=city, fraud=fraud, beneficiary=payee,
            category=CAT["P2P"], ttype=TT["TRANSFER"], channel=channel, **overrides,
        )  # fmt: skip

    def new_payees(self, k: int) -> np.ndarray:
        return EXTERNAL_BENEFICIARY_BASE + self.rng.integers(10**11, 10**12, k)


_CARD_PRESENT, _ONLINE = 1, 2
_PICK_TERMINAL = -2
_CURRENT_CREDENTIALS = -np.inf


def resolve_rows(world: World, rows: Rows, rng: np.random.Generator) -> Rows:
    """Fill the derived columns of episode rows and drop the episode-only columns."""
    m, c = world.merchants, world.customers
    derive, city = rows.pop("derive"), rows.pop("place_city")
    present = np.flatnonzero(derive == _CARD_PRESENT)
    merchant = rows["merchant"][present]
    if m.is_online[merchant].any():
        raise AssertionError("card-present episode rows at an online merchant")
    cash = m.category[merchant] == CAT["CASH"]
    rows["category"][present] = m.category[merchant]
    rows["channel"][present] = np.where(cash, CH["ATM"], CH["POS"])
    rows["ttype"][present] = np.where(cash, TT["WITHDRAWAL"], TT["PURCHASE"])
    for column in ("country", "lat", "lon", "utc_offset_h"):
        rows[column][present] = getattr(m, column)[merchant]
    pick = present[rows["terminal"][present] == _PICK_TERMINAL]
    rows["terminal"][pick] = m.pick_terminal(rows["merchant"][pick], rng.random(len(pick)))

    online = np.flatnonzero(derive == _ONLINE)
    customer, place = rows["customer"][online], city[online]
    home = place < 0
    safe = np.clip(place, 0, None)
    away_noise = np.where(home, 0.0, 1.0)  # a fraudster's IP geolocates somewhere in the city
    rows["lat"][online] = np.round(
        np.where(home, c.lat[customer], CITIES.lat[safe]) + away_noise * rng.normal(0, 0.03, len(online)), 4
    )
    rows["lon"][online] = np.round(
        np.where(home, c.lon[customer], CITIES.lon[safe]) + away_noise * rng.normal(0, 0.045, len(online)), 4
    )
    rows["utc_offset_h"][online] = np.where(home, c.utc_offset_h[customer], CITIES.utc_offset_h[safe])
    shop = rows["merchant"][online]
    at_shop = shop >= 0
    safe_shop = np.clip(shop, 0, None)
    rows["country"][online] = np.where(
        at_shop, m.country[safe_shop], np.where(home, c.home_country[customer], CITIES.country[safe])
    )
    rows["category"][online] = np.where(at_shop, m.category[safe_shop], rows["category"][online])
    current = online[rows["credential_change"][online] == _CURRENT_CREDENTIALS]
    rows["credential_change"][current] = world.credential_change_before(
        rows["customer"][current], rows["t"][current]
    )
    genuine = (rows["is_fraud"] == 0) & ~np.isnan(rows["lat"])
    rows["paced"] = np.where(genuine, ANCHOR, IGNORED).astype(np.int8)
    return rows


def spread(rng: np.random.Generator, t0: float, k: int, low_s: float, high_s: float) -> np.ndarray:
    """k increasing times from t0 with gaps drawn uniformly in [low_s, high_s]."""
    return t0 + np.concatenate([[0.0], np.cumsum(rng.uniform(low_s, high_s, k - 1))]) if k else np.zeros(0)


#: What a wrong card number, expiry or CVV earns in card testing.
DECLINES = np.array([AUTH["DECLINED_INVALID_CARD"], AUTH["DECLINED_OTHER"]])
